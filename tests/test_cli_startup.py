"""Start-up cost of trivial commands: ``rerank --help`` and argument errors load no engine (no scipy).

The figures (wall time against ``python -c "import numpy"``) are in bench/results/startup.md; this test
checks the behaviour that makes them: which modules a trivial command imports.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from rerank.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"scipy", "onnxruntime", "torch", "faiss", "grpc"}
               or m in {"rerank.pipeline", "rerank.aggregation.aggregators.bt"})
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def probe(*argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60)
    return json.loads(out.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--help"], 0),
        (["aggregate", "--help"], 0),
        (["rank", "--budget", "lots"], 2),  # an argument error from the parser
        (["aggregate", "--method", "nope"], 2),  # an unknown method, found in the registry's names
        (["frobnicate"], 2),
    ],
)
def test_trivial_commands_import_no_engine(argv, code):
    seen = probe(*argv)
    assert seen["code"] == code
    assert seen["heavy"] == []


def test_registry_names_need_no_scipy_but_lookup_loads_the_method():
    script = (
        "import sys\n"
        "from rerank.aggregation.registry import lookup, names\n"
        "assert 'bt' in names('aggregator') and 'active' in names('sampler')\n"
        "assert not any(m.startswith('scipy') for m in sys.modules), 'names() imported scipy'\n"
        "bt = lookup('aggregator', 'bt')\n"
        "assert bt.__name__ == 'bradley_terry' and 'scipy.linalg' in sys.modules\n"
        "from rerank.aggregation.aggregators import bradley_terry\n"
        "assert bradley_terry is bt\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_lazy_exports_reject_unknown_names():
    import rerank.aggregation.aggregators as aggregators

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = aggregators.nope
    with pytest.raises(KeyError):
        _ = aggregators.AGGREGATORS["nope"]
