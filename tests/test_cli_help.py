"""`--help` of every command and sub-command describes the command and explains every option; shell
completion works."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from rerank.cli import cli

Command = tuple[tuple[str, ...], click.Command]


def commands(command: click.Command, path: tuple[str, ...] = ()) -> list[Command]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += commands(sub, (*path, name))
    return found


COMMANDS = commands(cli)


def test_every_command_is_listed() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"aggregate", "export", "models list", "models ensure", "models export", "rank", "bench budgets",
            "bench load", "index build", "index add", "index search", "serve", "arena", "arena next"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "rerank" for p, _ in COMMANDS])
def test_help_describes_the_command_and_every_option(path, command, cli) -> None:
    assert command.help, f"rerank {' '.join(path)} has no description"
    silent = [p.opts for p in command.params if isinstance(p, click.Option) and not p.help]
    assert not silent, f"rerank {' '.join(path)}: options without help: {silent}"
    code, text, err = cli([*path, "--help"])
    assert code == 0, err
    for param in command.params:
        for flag in [*param.opts, *param.secondary_opts]:
            if flag.startswith("-"):
                assert flag in text, (path, flag)


@pytest.mark.parametrize(("path", "phrase"), [
    (("serve",), "restart the server to search documents added later with `rerank index add`"),
    (("index", "add"), "`rerank serve --index` on this folder keeps serving the index it opened: restart it"),
])
def test_help_says_a_server_needs_a_restart_to_see_added_documents(path, phrase, cli) -> None:
    code, text, _ = cli([*path, "--help"])
    assert code == 0 and phrase in " ".join(text.split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give a command: aggregate, arena, bench,"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["models"], "give a command: ensure, export, list"),
        (["rank", "--budget", "0"], "--budget: invalid budget '0': a count must be >= 1, a fraction in (0, 1]"),
        (["rank", "--sampler", "nope"], "unknown --sampler 'nope'; known: "),
        (["models", "export", "--model", "x", "--kind", "triple-encoder"], "unknown --kind 'triple-encoder'"),
        (["bench", "budgets", "--dataset", "d", "--out", "o", "--aggregators", "bt,elo"],
         "unknown --aggregators name(s) 'elo'; known: "),
        (["index", "search", "--index", "i", "--queries", "q", "--k", "0"], "--k must be an integer >= 1, got 0"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(argv, message, cli) -> None:
    code, out, err = cli(argv)
    assert code == 2 and out == ""
    assert err.startswith("rerank: error: ") and err.count("\n") == 1 and message in err, err


def test_the_old_export_spelling_still_works_and_warns(tmp_path, cli) -> None:
    code, _, err = cli(["export", "--model", str(tmp_path / "absent"), "--kind", "duo-t5", "--out",
                        str(tmp_path / "o")])
    lines = err.strip().splitlines()
    assert lines[0].startswith("rerank: warning: `rerank export` is deprecated") and "rerank models export" in lines[0]
    assert code == 1 and lines[1].startswith("rerank: error: export failed") and len(lines) == 2


def test_shell_completion_script_and_answers() -> None:
    def complete(**env: str) -> str:
        done = CliRunner().invoke(cli, [], prog_name="rerank", env=env)
        assert done.exit_code == 0, done.output
        return done.output

    script = complete(_RERANK_COMPLETE="bash_source")
    assert "_rerank_completion()" in script and "complete " in script
    assert complete(_RERANK_COMPLETE="bash_complete", COMP_WORDS="rerank rank --sampler he",
                    COMP_CWORD="3").split() == ["plain,heapsort"]
    assert complete(_RERANK_COMPLETE="bash_complete", COMP_WORDS="rerank mo", COMP_CWORD="1").split() == [
        "plain,models"]
    assert complete(_RERANK_COMPLETE="bash_complete", COMP_WORDS="rerank bench budgets --samplers all,wi",
                    COMP_CWORD="4").split() == ["plain,all,window"]
