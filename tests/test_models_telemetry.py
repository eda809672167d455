"""ONNX Runtime's own telemetry (1DS on Linux since 1.29: a DNS lookup of mobile.events.data.microsoft.com and an
upload when a session is created) is off in every process that loads a model through ``rerank.models``, unless
the user turned it on; seen with strace before the fix, on a real ``rerank serve``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LOAD_AND_REPORT = (
    "import os, sys\n"
    "from rerank.models import load_model\n"
    "assert 'onnxruntime' not in sys.modules or os.environ.get('ORT_DISABLE_TELEMETRY'), 'ORT imported first'\n"
    "load_model('minilm').compare('q', [('a', 'b')])\n"
    "print(os.environ.get('ORT_DISABLE_TELEMETRY'))\n"
)


@pytest.mark.parametrize("given, expected", [(None, "1"), ("0", "0")])
def test_onnxruntime_telemetry_is_off_unless_the_user_turns_it_on(rerank_home, given, expected) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env["RERANK_HOME"] = str(rerank_home)
    if given is not None:
        env["ORT_DISABLE_TELEMETRY"] = given
    done = subprocess.run([sys.executable, "-c", LOAD_AND_REPORT], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == expected
