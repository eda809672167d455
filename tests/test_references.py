"""docs/references.md is the project's own reference: every pointer at it names a section that exists, and
nothing in the repository points at files outside it (the shared test data, found through RERANK_DATA or
../shared/data, is the one exception)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = ROOT / "docs" / "references.md"
POINTER = re.compile(r"docs/references\.md#([A-Za-z0-9_-]+)")
# paths outside the repository: the shared folder except its data/, and a bare REFERENCES.md
OUTSIDE = re.compile(
    r"REFERENCES\.md"
    r"|\.\./shared(?!/data)"
    r"|/work/shared(?!/data)"
    r"|[\"']shared[\"']\s*/(?!\s*[\"']data[\"'])"
)


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors() -> set[str]:
    return {_slug(line.lstrip("#")) for line in REFERENCES.read_text().splitlines() if line.startswith("#")}


def _tracked_texts() -> list[Path]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    out = []
    for name in files.splitlines():
        path = ROOT / name
        if path.is_file() and path.suffix not in {".onnx", ".png", ".gz", ".bin", ".pkl"}:
            out.append(path)
    return out


def test_slug_follows_github():
    assert _slug("Enhanced Borda Count") == "enhanced-borda-count"
    assert _slug("duoT5 and monoT5") == "duot5-and-monot5"
    assert _slug("First-stage prior") == "first-stage-prior"


def test_every_pointer_names_a_section():
    anchors = _anchors()
    pointers: dict[str, list[str]] = {}
    for path in _tracked_texts():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for anchor in POINTER.findall(text):
            pointers.setdefault(anchor, []).append(str(path.relative_to(ROOT)))
    assert len(pointers) >= 20, "the method docstrings point at their sections"
    missing = {a: files for a, files in pointers.items() if a not in anchors}
    assert not missing, f"pointers at sections docs/references.md does not have: {missing}"


@pytest.mark.parametrize(
    "section",
    ["borda", "enhanced-borda-count", "bradley-terry", "hodgerank", "greedy", "pagerank", "kwiksort", "copeland",
     "duobert-sum", "symmetric", "log-odds", "prp-vote", "position-bias", "active", "sorting-samplers",
     "borda-fusion", "reciprocal-rank-fusion", "kemeny", "first-stage-prior", "duot5-and-monot5", "prp",
     "duobert-and-cross-encoders", "evaluation-measures", "bibliography"],
)
def test_each_method_has_a_section(section):
    assert section in _anchors()


def test_nothing_points_outside_the_repository():
    this = Path(__file__).resolve()
    bad = []
    for path in _tracked_texts():
        if path.resolve() == this:
            continue
        try:
            lines = path.read_text().splitlines()
        except UnicodeDecodeError:
            continue
        bad += [f"{path.relative_to(ROOT)}:{i}: {line.strip()}" for i, line in enumerate(lines, 1)
                if OUTSIDE.search(line)]
    assert not bad, "pointers outside the repository:\n" + "\n".join(bad)
