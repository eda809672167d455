"""`--help` of every command and sub-command describes the command and explains every option."""

from __future__ import annotations

import argparse

import pytest

from rerank.cli import build_parser, main

Command = tuple[tuple[str, ...], argparse.ArgumentParser]


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[Command]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, (*path, name))
    return found


COMMANDS = commands(build_parser())


def test_every_command_is_listed() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"aggregate", "export", "models list", "models ensure", "rank", "bench budgets", "bench load",
            "index build", "index add", "index search", "serve"} <= names


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(p) or "rerank" for p, _ in COMMANDS])
def test_help_describes_the_command_and_every_option(path, parser, capsys) -> None:
    assert parser.description, f"rerank {' '.join(path)} has no description"
    silent = [action.option_strings or action.dest for action in parser._actions
              if not isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))
              and (not action.help or action.help == argparse.SUPPRESS)]
    assert not silent, f"rerank {' '.join(path)}: options without help: {silent}"
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for action in parser._actions:
        for flag in action.option_strings:
            assert flag in text


@pytest.mark.parametrize(("path", "phrase"), [
    (("serve",), "restart the server to search documents added later with `rerank index add`"),
    (("index", "add"), "`rerank serve --index` on this folder keeps serving the index it opened: restart it"),
])
def test_help_says_a_server_needs_a_restart_to_see_added_documents(path, phrase, capsys) -> None:
    with pytest.raises(SystemExit):
        main([*path, "--help"])
    assert phrase in " ".join(capsys.readouterr().out.split())
