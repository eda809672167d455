"""``python -m rerank.retrieval index build|add|search ...``: the index commands before ``rerank`` wires them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from .cli import EXIT_USAGE, add_index_parser


class _OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line on stderr (exit 2), as ``rerank`` reports them."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"rerank: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _OneLineParser(prog="rerank", description="First-stage retrieval commands of rerank.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    add_index_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        sys.stderr.write("rerank: error: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
