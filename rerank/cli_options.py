"""Building blocks of the ``rerank`` command tree on click: parameter types, shared option groups (one
decorator each) and the runner that turns click's errors into one line on stderr.

A light module: it imports click and the registries' names only, never the engine, so that ``rerank --help``
and argument errors cost no more than parsing (tests/test_cli_startup.py).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

import click

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def fail(message: str, code: int) -> int:
    """Write ``rerank: error: MESSAGE`` (one line) to stderr and return ``code``."""
    sys.stderr.write(f"rerank: error: {message}\n")
    sys.stderr.flush()
    return code


# click >= 8.2: a group called without a command raises this (8.1 prints the help and exits 0)
_NO_ARGS: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def run_command(command: click.Command, argv: Sequence[str] | None, prog: str = "rerank") -> int:
    """Run a click command as a program: its exit code; usage errors one line with exit 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = command.main(args=args, prog_name=prog, standalone_mode=False, obj={"argv": args, "prog": prog})
    except _NO_ARGS as exc:
        group = exc.ctx.command if exc.ctx else command
        names = ", ".join(getattr(group, "list_commands", lambda _ctx: [])(exc.ctx))
        return fail(f"give a command: {names} (see {exc.ctx.command_path if exc.ctx else prog} --help)", EXIT_USAGE)
    except click.UsageError as exc:
        return fail(" ".join(exc.format_message().split()), EXIT_USAGE)
    except click.Abort:
        return fail("interrupted", EXIT_INTERRUPTED)
    except click.ClickException as exc:
        return fail(" ".join(exc.format_message().split()), exc.exit_code)
    except BrokenPipeError:
        return EXIT_OK
    return int(code or 0)


def command_line(ctx: click.Context) -> str:
    """The command line this run was given (``rerank bench budgets ...``), for results files."""
    import shlex

    root = ctx.find_root().obj or {}
    return shlex.join([str(root.get("prog", "rerank")), *root.get("argv", [])])


def namespace(params: dict[str, Any]) -> types.SimpleNamespace:
    """A command's parameters as ``args.flag``; a repeatable option given no value is None (as unset)."""
    return types.SimpleNamespace(**{k: (list(v) or None) if isinstance(v, tuple) else v for k, v in params.items()})


def deprecated_alias(command: click.Command, name: str, instead: str) -> click.Command:
    """``command`` under an old ``name`` for one more release: it works and warns on stderr."""

    def callback(**params: Any) -> Any:
        sys.stderr.write(f"rerank: warning: `{name}` is deprecated and goes in the next release; use `{instead}`\n")
        return command.callback(**params) if command.callback else 0

    return click.Command(
        name.split()[-1], params=command.params, callback=callback, context_settings=command.context_settings,
        help=f"Deprecated spelling of `{instead}` (kept for one release). {command.help or ''}",
        short_help=f"deprecated: use `{instead}`",
    )


# --- parameter types -------------------------------------------------------------------------------------
def _flag(param: click.Parameter | None) -> str:
    return param.opts[0] if param is not None and param.opts else "value"


class RegistryChoice(click.Choice):
    """A method name from a registry (``aggregation.registry.names(kind)``); an unknown one is a usage error
    listing the known names."""

    def __init__(self, choices: Sequence[str]) -> None:
        super().__init__(list(choices))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in self.choices:
            return value
        raise click.UsageError(f"unknown {_flag(param)} {value!r}; known: {', '.join(map(str, self.choices))}", ctx)


class NameList(click.ParamType):
    """Names separated by commas (the option may be repeated), each one of ``choices``."""

    name = "names"

    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = list(choices)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        found = [v.strip() for v in str(value).split(",") if v.strip()]
        bad = [v for v in found if v not in self.choices]
        if bad or not found:
            flag = _flag(param)
            raise click.UsageError(f"unknown {flag} name(s) {', '.join(map(repr, bad))}; known: "
                                   f"{', '.join(self.choices)}" if bad else f"{flag} needs at least one name", ctx)
        return found

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        head, _, last = incomplete.rpartition(",")
        prefix = f"{head}," if head else ""
        return [CompletionItem(prefix + c) for c in self.choices if c.startswith(last)]


def parse_budget(text: str) -> int | float:
    """A comparison budget: a whole number of comparisons (``250``), a fraction of the k(k-1) ordered pairs
    in (0, 1] (``0.1``) or a percentage in (0, 100] (``10%``). Raises ``ValueError`` with the reason."""
    text = text.strip()
    try:
        if text.endswith("%"):
            value: int | float = float(text[:-1]) / 100.0
        elif text.isdigit():
            value = int(text)
        else:
            value = float(text)
    except ValueError:
        raise ValueError(f"invalid budget {text!r}: use a count (250), a fraction (0.1) or a percentage "
                         "(10%)") from None
    if (value < 1) if isinstance(value, int) else not 0.0 < value <= 1.0:  # also NaN
        raise ValueError(f"invalid budget {text!r}: a count must be >= 1, a fraction in (0, 1], a percentage in "
                         "(0%, 100%]")
    return value


class Budget(click.ParamType):
    """``--budget``: :func:`parse_budget` at parse time; the command gets the parsed int or float."""

    name = "budget"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        try:
            return parse_budget(str(value))
        except ValueError as exc:
            raise click.UsageError(f"{_flag(param)}: {exc}", ctx) from None


class Fractions(click.ParamType):
    """``bench budgets --budgets``: fractions or percentages separated by commas (repeatable)."""

    name = "fractions"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        out = []
        for part in (p.strip() for p in str(value).split(",")):
            if not part:
                continue
            try:
                out.append(float(part[:-1]) / 100.0 if part.endswith("%") else float(part))
            except ValueError:
                raise click.UsageError(f"{_flag(param)}: {part!r} is not a fraction or a percentage", ctx) from None
        return out


BUDGET = Budget()
IN_FILE = click.Path(dir_okay=False, allow_dash=True)
OUT_FILE = click.Path(dir_okay=False, writable=False, allow_dash=True)
FOLDER = click.Path(file_okay=False)


def positive(_ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """Callback of integer options that must be >= 1 when given."""
    if value is not None and value < 1:
        raise click.UsageError(f"{_flag(param)} must be an integer >= 1, got {value}", _ctx)
    return value


# --- shared option groups ---------------------------------------------------------------------------------
def _stack(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(func: Any) -> Any:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


ENGINES = ("local", "ray")

engine_options = _stack(
    click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
                 help="local: this process; ray: a pool of Ray actors (extra 'distributed')"),
    click.option("--address", default=None,
                 help="--engine ray: join this Ray cluster (host:port or ray://...); default: start a local Ray on "
                      "this machine"),
    click.option("--workers", type=int, default=None,
                 help="--engine ray: actors, each loading the model once (default: one per CPU)"),
)
"""``--engine``, ``--address``, ``--workers`` of ``rank``, ``bench budgets`` and ``index build``."""

store_option = click.option("--store", type=FOLDER, default=None,
                            help="model store folder (default $RERANK_HOME/models)")
"""``--store``: the model store."""

quiet_option = click.option("--quiet", "-q", is_flag=True, default=False,
                            help="no progress lines on stderr (errors and the final summary still show)")
"""``--quiet``: no progress output."""

quantize_option = click.option("--quantize", type=click.Choice(["int8"]), default=None,
                               help="also write an int8 variant (default: the model's own choice)")
"""``--quantize int8``."""

verify_option = click.option(
    "--verify/--no-verify", "verify", default=True, show_default=True,
    help="check the index files against the sha256 checksums in its manifest (the check hashes every byte "
         "once, about as long as reading the index: skip it only for huge indexes)",
)
"""``--no-verify``: skip checking an index's files against its manifest."""
