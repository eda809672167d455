"""Every command in the README's ``bash`` blocks runs on ``examples/`` as written (from a copy of the
repository's layout: ``examples/`` and ``.venv``), the ``grpcurl`` calls of docs/api.md answer against the
README's server, and every file the commands write is ignored by git.

Left out, and why: ``make serve`` and ``make test`` (CI runs ``make install`` and ``make test`` itself; ``make
serve`` is ``rerank models ensure`` and ``rerank serve`` on port 50051, both run here). The server's port is
replaced by a free one, since other servers may hold the README's port on a shared machine; a second server
started on the same port checks the message for a taken port.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO as ROOT


def commands(markdown: str) -> list[str]:
    """Shell commands of the ```bash blocks: comment lines dropped, continued lines (a trailing backslash or
    an open quote) joined."""
    found: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.S):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending += line + "\n"
            if pending.rstrip().endswith("\\"):
                continue
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # an open quote: the command goes on
                continue
            found.append(pending.strip())
            pending = ""
    return found


def test_commands_joins_continued_lines() -> None:
    text = "```bash\n# note\na --x \\\n  --y\nb -d '{\"q\":\n 1}' z   # tail\n```\n"
    assert commands(text) == ["a --x \\\n  --y", "b -d '{\"q\":\n 1}' z   # tail"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    return proc


def check_server(serve: str, work: Path, env: dict[str, str]) -> None:
    """Start the README's server, run the grpcurl calls of docs/api.md against it, try a second server on
    the same port, and stop the first with SIGTERM."""
    port = str(free_port())
    command = re.sub(r"--port \d+", f"--port {port}", serve)
    assert f"--port {port}" in command
    log = (work / "serve.log").open("w")
    server = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=work, env=env, stdout=subprocess.PIPE,
                              stderr=log, text=True)
    try:
        line = server.stdout.readline() if server.stdout else ""
        assert line.startswith(f"rerank: serving on 127.0.0.1:{port}"), (line, (work / "serve.log").read_text())
        calls = [c for c in commands((ROOT / "docs" / "api.md").read_text()) if "grpcurl" in c]
        assert calls and all(c.startswith(".venv/bin/grpcurl ") for c in calls)
        answers = [run(c.replace("127.0.0.1:50051", f"127.0.0.1:{port}"), work, env).stdout for c in calls]
        assert "rerank.v1.Reranker" in answers[0]
        assert json.loads(answers[1])["results"][0]["id"] == "d1"
        assert "SERVING" in answers[2]
        second = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                                timeout=600)
        assert second.returncode == 1
        assert (f"cannot listen on 127.0.0.1:{port}: port {port} is taken" in second.stderr
                and "choose another with --port N" in second.stderr), second.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=120) == 0
        log.close()


def test_every_readme_command_runs_on_the_examples(tmp_path: Path, rerank_home: Path) -> None:
    readme = commands((ROOT / "README.md").read_text())
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {**os.environ, "RERANK_HOME": str(rerank_home)}
    ran = []
    for command in readme:
        if command.startswith("make "):
            continue
        if " serve " in command:
            check_server(command, work, env)
        else:
            ran.append((command, run(command, work, env)))
        assert ".venv/bin/" in command and "../" not in command  # the install's paths, no file outside the repo
    assert sum(" serve " in c and not c.startswith("make ") for c in readme) == 1 and len(ran) >= 6

    aggregate = next(p for c, p in ran if " aggregate " in c)
    assert json.loads(aggregate.stdout)["ranking"][0]["id"] == "d1"
    trec = (work / "minilm.trec").read_text().splitlines()
    assert len(trec) == 60 and {line.split()[0] for line in trec} == {"1", "2", "3"}
    assert [json.loads(x)["qid"] for x in (work / "ranked.jsonl").read_text().splitlines()] == ["1", "2", "3"]
    assert any("added 5 documents" in p.stdout for _, p in ran)
    assert len((work / "dense.trec").read_text().splitlines()) == 30

    written = sorted(p.name for p in work.iterdir() if p.name not in ("examples", ".venv", "serve.log"))
    assert {"minilm.trec", "ranked.jsonl", "examples.idx", "dense.trec"} <= set(written)
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot check .gitignore")
    check = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "--no-index", "--verbose", "--non-matching",
                            *written], capture_output=True, text=True)
    not_ignored = [line.split("\t")[1] for line in check.stdout.splitlines() if line.startswith("::")]
    assert not not_ignored, f"written by README commands but not git-ignored: {not_ignored}"
