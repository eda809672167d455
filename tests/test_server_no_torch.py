"""Issue 23 item 9: `rerank serve` of an embedded model on a machine without the export tools (no torch) says
in one line how a serving machine gets models, instead of a 38-line traceback."""

from __future__ import annotations

import subprocess
import sys

NO_TORCH = "import sys; sys.modules['torch'] = None; from rerank.cli import main; sys.exit(main(sys.argv[1:]))"


def test_serving_an_unexported_embedded_model_without_torch_is_one_line(tmp_path) -> None:
    store = tmp_path / "models"
    store.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH, "serve", "--store", str(store), "--port", "0", "--log-level", "ERROR"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "needs torch" in lines[0] and "rerank models ensure minilm" in lines[0] and "export" in lines[0]
