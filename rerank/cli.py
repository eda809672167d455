"""The ``rerank`` command line: a thin face over :mod:`rerank.pipeline`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import IO, NoReturn

from . import __version__
from .aggregation.registry import names
from .comparison_io import InputError, read_comparison_groups
from .pipeline import aggregate_group

EXIT_BAD_INPUT = 1
EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line on stderr (exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _open_input(path: str) -> contextlib.AbstractContextManager[IO[str]]:
    if path == "-":
        return contextlib.nullcontext(sys.stdin)
    return open(path, encoding="utf-8")


def _write_output(path: str, lines: list[str]) -> None:
    """Write all lines to stdout, or atomically to a file (no half-written file on failure)."""
    text = "".join(line + "\n" for line in lines)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".rerank-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def cmd_aggregate(args: argparse.Namespace) -> int:
    methods, calibrations = names("aggregator"), names("calibration")
    if args.method not in methods:
        return _fail(f"unknown --method {args.method!r}; known: {', '.join(methods)}", EXIT_USAGE)
    if args.calibration not in calibrations:
        known = ", ".join(calibrations)
        return _fail(f"unknown --calibration {args.calibration!r}; known: {known}", EXIT_USAGE)
    try:
        handle = _open_input(args.input)
    except OSError as exc:
        return _fail(f"cannot read --input {args.input!r}: {exc.strerror}", EXIT_BAD_INPUT)
    try:
        with handle as lines:
            groups = read_comparison_groups(lines)
    except InputError as exc:
        return _fail(f"{args.input if args.input != '-' else 'stdin'}: {exc}", EXIT_BAD_INPUT)
    except UnicodeDecodeError:
        return _fail(f"cannot read --input {args.input!r}: not UTF-8 text", EXIT_BAD_INPUT)
    records = [aggregate_group(g, args.method, args.calibration, seed=args.seed) for g in groups]
    try:
        _write_output(args.output, [json.dumps(r) for r in records])
    except OSError as exc:
        return _fail(f"cannot write --output {args.output!r}: {exc.strerror}", EXIT_BAD_INPUT)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    return _fail("the gRPC server is not yet available (issue 4: the gRPC re-ranking service)", 1)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"rerank: error: {message}\n")
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="rerank", description="Pairwise ranking and re-ranking for retrieval.")
    parser.add_argument("--version", action="version", version=f"rerank {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    agg = sub.add_parser(
        "aggregate",
        help="turn pairwise preferences (JSON lines) into rankings",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            'Reads JSON lines {"a": id, "b": id, "p": float[, "group": g]} where p = P(a preferred to b)\n'
            "as the model saw (a, b) in that order, and writes one JSON line per group with the ranking,\n"
            "the number of comparisons and the order- and transitive-inconsistency rates."
        ),
        epilog=(
            f"methods (--method): {', '.join(names('aggregator'))}\n"
            f"calibrations (--calibration): {', '.join(names('calibration'))}"
        ),
    )
    agg.add_argument("--input", default="-", help="JSON-lines file, or - for stdin (default -)")
    agg.add_argument("--output", default="-", help="output file, or - for stdout (default -)")
    agg.add_argument("--method", default="bt",
                     help=f"aggregator, one of: {', '.join(names('aggregator'))} (default bt)")
    agg.add_argument("--calibration", default="symmetric",
                     help=f"order calibration, one of: {', '.join(names('calibration'))} (default symmetric)")
    agg.add_argument("--seed", type=int, default=0, help="seed for randomised methods (kwiksort)")
    agg.set_defaults(func=cmd_aggregate)

    serve = sub.add_parser("serve", help="start the gRPC re-ranking server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=50051)
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
