"""One request object behind every face (rerank/request.py): the same matrix of valid and invalid requests
sent through gRPC (the generated stub), HTTP (Cohere v2 JSON), the CLI (``rerank rank``), Python
(:func:`rerank.pipeline.run`) and :mod:`rerank.client` gives the same ranking, or the same error: the same
detail, under each face's own name of the same field. Real MiniLM and a setwise model (a tiny random Flan-T5
replica exported as kind ``setwise``, its labels single tokens) on a real server on 127.0.0.1.

Matrix: 29 requests (12 valid, 17 invalid) x 5 faces = 145 calls; 142 compared exactly (the CLI's argument parser
refuses 3 of the invalid ones itself, naming the flag: :data:`CLI_PARSE_ERRORS`)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import grpc
import httpx
import pytest

from rerank.client import RerankClient, RerankError
from rerank.offline import CLI_NAMES
from rerank.pipeline import run
from rerank.request import GRPC_NAMES, PYTHON_NAMES, RankOptions, RequestError, RerankRequest, parse_path
from rerank.server.http import http_names
from rerank.wire import options_from_fields

TEXTS = [
    "The lobster roll is a sandwich of lobster meat served on a grilled hot dog bun.",
    "Maine is known for its rocky coastline and lobster fishing industry.",
    "A hot dog bun is a soft bread roll shaped for sausages.",
    "Lobsters are marine crustaceans with long bodies and muscular tails.",
    "The stock market closed higher on Friday after strong earnings reports.",
    "Connecticut style lobster rolls are served warm with butter.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "New England seafood shacks sell lobster rolls in summer.",
]
QUERY = "what is a lobster roll"

# name, request fields in the request object's terms (options by their proto/JSON names, stages as MODEL:DEPTH)
MATRIX: list[tuple[str, dict[str, Any]]] = [
    ("defaults", {}),
    ("window sampler", {"options": {"sampler": "window", "window": 3}}),
    ("random budget", {"options": {"sampler": "random", "comparisons": 12, "seed": 1}}),
    ("borda top_n", {"options": {"aggregator": "borda"}, "top_n": 3}),
    # issue 23 items 10 and 11: a cascade with sampler settings, the same model in both stages
    ("cascade with sampler settings", {"stages": ["minilm:6", "minilm:4"],
                                       "options": {"sampler": "window", "window": 2}}),
    ("cascade", {"stages": ["minilm:8", "minilm:3"]}),
    ("blank query", {"query": "   "}),
    ("blank text", {"texts": [*TEXTS[:2], "  ", *TEXTS[3:]]}),
    ("unknown sampler", {"options": {"sampler": "nope"}}),
    ("unknown aggregator", {"options": {"aggregator": "nope"}}),
    ("parameter the sampler does not take", {"options": {"sampler": "all", "window": 3}}),
    ("zero rounds", {"options": {"rounds": 0}}),
    ("zero budget", {"options": {"comparisons": 0}}),
    ("stage depth 0", {"stages": ["minilm:8", "minilm:0"]}),
    ("cascade: sampler parameter the last sampler does not take",
     {"stages": ["minilm:6", "minilm:4"], "options": {"sampler": "all", "skip": 2}}),
    # issue 26 item 4: a setwise model ranks by K-wise calls on every face
    ("setwise heapsort", {"models": ["setwise"], "options": {"set_size": 3}}),
    ("setwise kwise-random plackett-luce", {"models": ["setwise"], "options": {
        "sampler": "kwise-random", "set_size": 4, "comparisons": 6, "aggregator": "plackett-luce", "seed": 2}}),
    ("setwise kwise-active slot calibration", {"models": ["setwise"], "options": {
        "sampler": "kwise-active", "calibration": "slot", "comparisons": 5, "aggregator": "bt"}}),
    ("cascade to a setwise stage", {"stages": ["minilm:8", "setwise:5"], "options": {"set_size": 3}}),
    # the middle stage compares all pairs (K = 2 calls) with the pairwise defaults, the last runs the K-wise options
    ("cascade: setwise pairs, then setwise K-wise", {"stages": ["minilm:8", "setwise:6", "setwise:4"], "options": {
        "sampler": "kwise-random", "calibration": "slot", "comparisons": 3, "set_size": 3}}),
    ("setwise: a pairwise sampler", {"models": ["setwise"], "options": {"sampler": "active"},
                                     "expect": "options.sampler"}),
    ("setwise: set_size over the candidates", {"models": ["setwise"], "options": {"set_size": 9},
                                               "expect": "options.set_size"}),
    ("setwise: a pairwise-only parameter", {"models": ["setwise"], "options": {"rounds": 2},
                                            "expect": "options.rounds"}),
    ("setwise: a pairwise calibration", {"models": ["setwise"], "options": {"calibration": "logodds"},
                                         "expect": "options.calibration"}),
    ("pairwise model: set_size", {"options": {"set_size": 3}, "expect": "options.set_size"}),
    # issue 27 item 1: selective escalation in a cascade (``escalate``: the last stage's escalation_threshold)
    ("cascade with escalation", {"stages": ["minilm:8", "minilm:6"], "escalate": 0.99}),
    ("escalation threshold below 0.5", {"stages": ["minilm:8", "minilm:6"], "escalate": 0.3,
                                        "expect": "stages[1].escalation_threshold"}),
    ("escalation without a stage before", {"stages": ["minilm:8"], "escalate": 0.9,
                                           "expect": "stages[0].escalation_threshold"}),
    ("escalation to a setwise stage", {"stages": ["minilm:8", "setwise:5"], "escalate": 0.9,
                                       "expect": "stages[1].escalation_threshold"}),
]

#: Rows that ``rerank rank``'s argument parser refuses itself (a click choice of registry names, the budget's
#: syntax), one line naming the flag, before any request is built: there the CLI is checked for the flag only.
CLI_PARSE_ERRORS = frozenset({"unknown sampler", "unknown aggregator", "zero budget"})

Outcome = tuple[str, ...]


def _fields(row: dict[str, Any]) -> tuple[str, list[str], list[str], dict[str, Any], int]:
    return (row.get("query", QUERY), row.get("texts", TEXTS), row.get("stages", []), row.get("options", {}),
            row.get("top_n", 0))


def _request(row: dict[str, Any]) -> RerankRequest:
    from rerank.request import Candidate, StageSpec

    query, texts, stages, options, top_n = _fields(row)
    opts, _ = options_from_fields(options)
    specs = tuple(StageSpec(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1]),
                            row.get("escalate") if i == len(stages) - 1 else None) for i, s in enumerate(stages))
    return RerankRequest(query, tuple(Candidate(str(i), t) for i, t in enumerate(texts)), tuple(row.get("models", ())),
                         specs, opts, top_n)


def _error(field: str | None, detail: str) -> Outcome:
    return ("error", field or "", detail)


@pytest.fixture(scope="module")
def setwise_folder(tmp_path_factory):
    """A tiny random Flan-T5 replica exported as kind ``setwise`` (its labels A..J single tokens)."""
    pytest.importorskip("torch")
    pytest.importorskip("sentencepiece")
    from rerank.models import export_model
    from rerank.models.setwise import CHARACTERS, setwise_prompt
    from rerank.models.testing import build_castorini_t5

    base = tmp_path_factory.mktemp("parity-setwise")
    extra = [setwise_prompt("what", list("xyzwvutsrq")) + " <pad> Passage " + " ".join(CHARACTERS[:10]), *TEXTS]
    src = build_castorini_t5(base / "flan-t5", extra_lines=extra)
    export_model(src, "setwise", base / "setwise", max_query_tokens=12, max_passage_tokens=24, parity_queries=1,
                 parity_passages=3, name="setwise")
    return base / "setwise"


@pytest.fixture(scope="module")
def server(minilm_store, setwise_folder, tmp_path_factory):
    from rerank.models import load_model
    from rerank.retrieval import build_index
    from rerank.server.app import RerankServer
    from rerank.server.config import ServerConfig

    model = load_model("minilm", store=minilm_store)  # the variant `rerank rank --model minilm` loads
    setwise = load_model(setwise_folder)  # the variant `rerank rank --model FOLDER` loads
    folder = tmp_path_factory.mktemp("parity-index")  # TEXTS as an index, for RetrieveAndRerank
    (folder / "docs.jsonl").write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n"
                                               for i, t in enumerate(TEXTS)))
    build_index(folder / "docs.jsonl", folder / "idx", model)
    config = ServerConfig(port=0, http_port=0, warmup=False, index=str(folder / "idx"))
    srv = RerankServer(config, models={"minilm": model, "setwise": setwise})
    srv.start()
    yield srv
    srv.stop(grace=1.0)


# --- the faces ----------------------------------------------------------------------------------------
def python_face(server, row) -> Outcome:
    try:
        out = run(_request(row), {name: served.model for name, served in server.service.models.items()})
    except RequestError as exc:
        exc = PYTHON_NAMES.error(exc)
        return _error(exc.field, exc.detail)
    return ("ok", *[r.id for r in out.results])


def grpc_face(server, row) -> Outcome:
    from rerank.server import _proto

    pb2, pb2_grpc = _proto.load()
    query, texts, stages, options, top_n = _fields(row)
    message = pb2.RerankRequest(query=query, top_n=top_n, models=row.get("models", []))
    for i, text in enumerate(texts):
        message.candidates.add(id=str(i), text=text)
    for key, value in options.items():
        setattr(message.options, key, value)
    for stage in stages:
        model, depth = stage.rsplit(":", 1)
        message.options.stages.add(model=model, depth=int(depth))
    if "escalate" in row:
        message.options.stages[-1].escalation_threshold = row["escalate"]
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        try:
            call = pb2_grpc.RerankerStub(channel).Rerank.with_call(message, timeout=60)
        except grpc.RpcError as exc:
            field = dict(exc.trailing_metadata() or ()).get("rerank-field")
            return _error(field, exc.details().partition(": ")[2])
    return ("ok", *[r.id for r in call[0].results])


def client_face(server, row) -> Outcome:
    query, texts, stages, options, top_n = _fields(row)
    kwargs = {k: v for k, v in options.items() if k != "comparisons"}
    if "comparisons" in options:
        kwargs["budget"] = options["comparisons"]
    if "escalate" in row:
        stages = [*stages[:-1], (*stages[-1].rsplit(":", 1), row["escalate"])]
    with RerankClient(f"127.0.0.1:{server.port}", timeout=60) as client:
        try:
            reply = client.rerank(query, list(enumerate(texts)), top_n=top_n, stages=stages,
                                  models=row.get("models"), **kwargs)
        except RerankError as exc:
            return _error(exc.field, exc.details.partition(": ")[2])
    assert len(reply.usage.stages) == len(stages)  # the client keeps each stage's usage
    return ("ok", *[r.id for r in reply.results])


def http_face(server, row) -> Outcome:
    query, texts, stages, options, top_n = _fields(row)
    body: dict[str, Any] = {"query": query, "documents": texts, **options}
    if row.get("models"):
        body["model"] = row["models"][0]
    if stages:
        body["stages"] = [{"model": s.rsplit(":", 1)[0], "depth": int(s.rsplit(":", 1)[1])} for s in stages]
        if "escalate" in row:
            body["stages"][-1]["escalation_threshold"] = row["escalate"]
    if top_n:
        body["top_n"] = top_n
    response = httpx.post(f"http://127.0.0.1:{server.http_port}/v2/rerank", json=body, timeout=60)
    if response.status_code != 200:
        error = response.json()
        return _error(error["field"], error["message"].partition(": ")[2])
    return ("ok", *[str(r["index"]) for r in response.json()["results"]])


_CLI_FLAGS = {"comparisons": "--budget", "sampler_top_n": "--sampler-top-n"}


def cli_face(cli, rerank_home, tmp_path, row, setwise_folder) -> Outcome:
    query, texts, stages, options, top_n = _fields(row)
    stages = [s.replace("setwise:", f"{setwise_folder}:") for s in stages]
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"qid": "q", "query": query,
                                  "candidates": [{"id": str(i), "text": t} for i, t in enumerate(texts)]}) + "\n")
    out = tmp_path / "out.jsonl"
    argv = ["rank", "--input", str(source), "--output", str(out), "--overwrite", "--quiet"]
    model = str(setwise_folder) if row.get("models") == ["setwise"] else "minilm"
    argv += [a for s in stages for a in ("--stage", s)] or ["--model", model]
    for key, value in options.items():
        argv += [_CLI_FLAGS.get(key, "--" + key.replace("_", "-")), str(value)]
    if top_n:
        argv += ["--top-n", str(top_n)]
    if "escalate" in row:
        argv += ["--escalate-threshold", str(row["escalate"])]
    code, _, err = cli(argv, home=rerank_home)
    if code != 0:
        line = err.strip().splitlines()[-1].removeprefix("rerank: error: ")
        line = line.partition("query 'q': ")[2] or line.partition("line 1: ")[2] or line
        field, _, detail = line.partition(": ")
        return _error(field, detail)
    return ("ok", *[r["id"] for r in json.loads(out.read_text())["ranking"]])


@pytest.mark.parametrize(("name", "row"), MATRIX, ids=[m[0] for m in MATRIX])
def test_every_face_gives_the_same_ranking_or_the_same_error(server, cli, rerank_home, tmp_path, setwise_folder, name,
                                                            row) -> None:
    request = _request(row)
    outcomes = {
        "python": python_face(server, row),
        "grpc": grpc_face(server, row),
        "client": client_face(server, row),
        "http": http_face(server, row),
        "cli": cli_face(cli, rerank_home, tmp_path, row, setwise_folder),
    }
    reference = outcomes["python"]
    if "expect" in row:  # an invalid request, refused naming this field (not ranked by another path)
        assert reference[:2] == ("error", row["expect"]), reference
    if reference[0] == "ok":
        assert all(o == reference for o in outcomes.values()), outcomes
        return
    path = parse_path(reference[1])
    names = {"python": PYTHON_NAMES, "grpc": GRPC_NAMES, "client": GRPC_NAMES, "http": http_names("documents", True),
             "cli": CLI_NAMES}
    for face, outcome in outcomes.items():
        if face == "cli" and name in CLI_PARSE_ERRORS:  # click refuses it before a request exists
            assert outcome[0] == "error" and names[face].name(path, request) in outcome[1] + outcome[2], outcome
            continue
        assert outcome == _error(names[face].name(path, request), reference[2]), (face, outcomes)


def test_the_error_names_differ_by_face_as_documented() -> None:
    request = RerankRequest("q", (), options=RankOptions(budget=0.5))
    path = ("options", "budget")
    assert (GRPC_NAMES.name(path, request), http_names("documents", True).name(path, request),
            CLI_NAMES.name(path, request), PYTHON_NAMES.name(path, request)) == (
        "options.fraction", "fraction", "--budget", "options.budget")
    stage = ("stages", 1, "depth")
    assert GRPC_NAMES.name(stage) == "options.stages[1].depth" and CLI_NAMES.name(stage) == "--stage"
    text = ("candidates", 3, "text")
    assert http_names("texts", True).name(text) == "texts[3]" and GRPC_NAMES.name(text) == "candidates[3].text"


def test_importing_the_client_imports_neither_pipeline_nor_engine() -> None:
    code = ("import sys, rerank.client; bad = [m for m in ('rerank.pipeline', 'rerank.aggregation.engine', "
            "'scipy', 'rerank.models') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_setwise_usage_counts_calls_candidates_and_tokens_on_every_face(server, cli, rerank_home, tmp_path,
                                                                         setwise_folder) -> None:
    """A K-wise call is one model call: usage.comparisons counts calls, candidates_shown the candidates they
    showed (K each) and tokens their prompts, the same over gRPC, the client, HTTP (meta.usage), the CLI's
    records and Python."""
    row = {"models": ["setwise"], "options": {"sampler": "kwise-random", "set_size": 4, "comparisons": 6}}
    python = run(_request(row), {name: served.model for name, served in server.service.models.items()}).usage
    assert (python.comparisons, python.candidates_shown, python.budget) == (6, 24, 6) and python.tokens > 0
    with RerankClient(f"127.0.0.1:{server.port}", timeout=60) as client:
        reply = client.rerank(QUERY, list(enumerate(TEXTS)), models="setwise", sampler="kwise-random", set_size=4,
                              budget=6)
    body = {"query": QUERY, "documents": TEXTS, "model": "setwise", "sampler": "kwise-random", "set_size": 4,
            "comparisons": 6}
    http = httpx.post(f"http://127.0.0.1:{server.http_port}/v2/rerank", json=body, timeout=60).json()["meta"]["usage"]
    for usage in (reply.usage, http):
        got = usage if isinstance(usage, dict) else vars(usage)
        assert (got["comparisons"], got["candidates_shown"], got["budget"], got["tokens"]) == (
            6, 24, 6, python.tokens), got
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"qid": "q", "query": QUERY,
                                  "candidates": [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]}) + "\n")
    code, _, err = cli(["rank", "--input", str(source), "--output", str(tmp_path / "o.jsonl"), "--quiet", "--model",
                        str(setwise_folder), "--sampler", "kwise-random", "--set-size", "4", "--budget", "6"],
                       home=rerank_home)
    record = json.loads((tmp_path / "o.jsonl").read_text())
    assert code == 0 and (record["comparisons"], record["candidates_shown"], record["tokens"]) == (
        6, 24, python.tokens), err
    # the default: setwise heapsort with K = 4 (llm-rankers' sort), far fewer calls than the pairs of 8
    heap = run(_request({"models": ["setwise"]}), {"setwise": server.service.models["setwise"].model}).usage
    assert 1 <= heap.comparisons < 8 * 7 and heap.candidates_shown <= 4 * heap.comparisons


def test_bad_setwise_input_per_face(server, cli, rerank_home, tmp_path, setwise_folder) -> None:
    """Bad input on each face: gRPC INVALID_ARGUMENT naming the field (message and ``rerank-field``), HTTP 400
    naming the JSON path, the CLI's exit code 1 and one line naming the flag."""
    from rerank.server import _proto

    pb2, pb2_grpc = _proto.load()
    message = pb2.RerankRequest(query=QUERY, models=["setwise"])
    for i, text in enumerate(TEXTS):
        message.candidates.add(id=str(i), text=text)
    message.options.set_size = 11
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel, pytest.raises(grpc.RpcError) as caught:
        pb2_grpc.RerankerStub(channel).Rerank(message, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("options.set_size: must be between 2 and")
    assert dict(caught.value.trailing_metadata())["rerank-field"] == "options.set_size"
    response = httpx.post(f"http://127.0.0.1:{server.http_port}/v1/rerank", timeout=60,
                          json={"query": QUERY, "documents": TEXTS, "model": "setwise", "sampler": "heapsort"})
    assert response.status_code == 400 and response.json()["field"] == "sampler", response.text
    assert response.json()["message"].startswith("sampler: unknown kwise sampler 'heapsort'; known: kwise-active")
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"qid": "q", "query": QUERY,
                                  "candidates": [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]}) + "\n")
    code, _, err = cli(["rank", "--input", str(source), "--output", str(tmp_path / "o.jsonl"), "--quiet",
                        "--model", str(setwise_folder), "--window", "2"], home=rerank_home)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "--window: a setwise model does not take it" in err


def test_escalation_reports_each_stage_and_the_threshold_on_every_face(server) -> None:
    """A request's escalation threshold: the stage before answers the pairs it is sure of, the stage's model the
    rest; every face reports the pairs each judge answered and the threshold (gRPC StageUsage, the client's
    usage.stages, HTTP meta.usage.stages), as the Python run does."""
    row = {"stages": ["minilm:8", "minilm:6"], "escalate": 0.99}
    python = run(_request(row), {"minilm": server.service.models["minilm"].model}).usage.stages[-1]
    assert python.cheap_comparisons == 30 and python.escalation_threshold == 0.99
    assert 0 < python.cheap_answered < 30 and python.comparisons == 30 - python.cheap_answered
    expected = (python.cheap_comparisons, python.cheap_answered, python.comparisons, 0.99)
    with RerankClient(f"127.0.0.1:{server.port}", timeout=60) as client:
        reply = client.rerank(QUERY, list(enumerate(TEXTS)), stages=["minilm:8", ("minilm", 6, 0.99)])
    last = reply.usage.stages[-1]
    assert (last.cheap_comparisons, last.cheap_answered, last.comparisons, last.escalation_threshold) == expected
    last_stage = {"model": "minilm", "depth": 6, "escalation_threshold": 0.99}
    body = {"query": QUERY, "documents": TEXTS, "stages": [{"model": "minilm", "depth": 8}, last_stage]}
    http = httpx.post(f"http://127.0.0.1:{server.http_port}/v2/rerank", json=body, timeout=60).json()
    stage = http["meta"]["usage"]["stages"][-1]
    assert (stage["cheap_comparisons"], stage["cheap_answered"], stage["comparisons"],
            stage["escalation_threshold"]) == expected, stage
    assert http["meta"]["usage"]["stages"][0]["escalation_threshold"] is None


def test_bad_escalation_input_per_face(server, cli, rerank_home, tmp_path) -> None:
    """An escalation threshold below 0.5: gRPC INVALID_ARGUMENT naming options.stages[1].escalation_threshold,
    HTTP 400 naming stages[1].escalation_threshold, the CLI's exit code 1 and one line naming
    --escalate-threshold."""
    from rerank.server import _proto

    pb2, pb2_grpc = _proto.load()
    message = pb2.RerankRequest(query=QUERY)
    for i, text in enumerate(TEXTS):
        message.candidates.add(id=str(i), text=text)
    message.options.stages.add(model="minilm", depth=8)
    message.options.stages.add(model="minilm", depth=6, escalation_threshold=0.3)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel, pytest.raises(grpc.RpcError) as caught:
        pb2_grpc.RerankerStub(channel).Rerank(message, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == ("options.stages[1].escalation_threshold: must be >= 0.5 (a confidence "
                                      "max(p, 1 - p)), got 0.3")
    body = {"query": QUERY, "texts": TEXTS, "stages": [{"model": "minilm", "depth": 8},
                                                       {"model": "minilm", "depth": 6, "escalation_threshold": 0.3}]}
    response = httpx.post(f"http://127.0.0.1:{server.http_port}/rerank", json=body, timeout=60)
    assert response.status_code == 400 and response.json()["field"] == "stages[1].escalation_threshold"
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"qid": "q", "query": QUERY,
                                  "candidates": [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]}) + "\n")
    code, _, err = cli(["rank", "--input", str(source), "--output", str(tmp_path / "o.jsonl"), "--quiet",
                        "--stage", "minilm:8", "--stage", "minilm:6", "--escalate-threshold", "0.3"], home=rerank_home)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "--escalate-threshold: must be >= 0.5" in err


def test_retrieve_and_rerank_with_a_setwise_model(server) -> None:
    """RetrieveAndRerank checks a setwise model's K-wise options before it retrieves (as Rerank does) and ranks
    the retrieved documents by K-wise calls: gRPC (the client) and HTTP alike."""
    with RerankClient(f"127.0.0.1:{server.port}", timeout=60) as client:
        reply = client.retrieve_and_rerank(QUERY, k=8, models="setwise", sampler="kwise-random", set_size=4,
                                           budget=5)
        assert sorted(reply.ids) == sorted(f"t{i}" for i in range(8))
        assert (reply.usage.comparisons, reply.usage.candidates_shown) == (5, 20)
        with pytest.raises(RerankError) as caught:
            client.retrieve_and_rerank(QUERY, k=8, models="setwise", set_size=9)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT and caught.value.field == "options.set_size"
    body = {"query": QUERY, "k": 8, "model": "setwise", "sampler": "kwise-random", "set_size": 4, "comparisons": 5}
    http = httpx.post(f"http://127.0.0.1:{server.http_port}/v1/retrieve_and_rerank", json=body, timeout=60).json()
    assert [r["id"] for r in http["results"]] == reply.ids and http["usage"]["candidates_shown"] == 20
