"""The transport floor of grpcio on this machine: what a unary call costs around a handler that does nothing
but spin for as long as a real request takes, with the real ``RerankRequest``/``RerankResponse`` messages.

    .venv/bin/python bench/grpc_floor.py --handler-ms 0 8 --calls 400 --out bench/results   # grpc_floor.json

For each server kind (``sync``: ``grpc.server`` on a thread pool, as ``rerank serve``; ``aio``: ``grpc.aio``)
and handler time, a server process answers ``Rerank`` after spinning ``handler-ms`` in Python, and the client
(this process, one channel, one call at a time) records client latency minus the handler time the server
reports in trailing metadata: the transport cost a server overhead figure cannot go below. The request is
the k = 20 DL 2019 request of ``rerank bench load``. Prints one JSON line per configuration.

``--versus-ours`` adds the decisive comparison: the same client alternates its calls between the floor server
(spinning as long as our handler takes) and our server (``python -m rerank.server.testing``: ``rerank serve``'s
code on a zero-cost fake model), so both see the same machine state, and prints each one's transport.

    .venv/bin/python bench/grpc_floor.py --versus-ours --calls 600 --out bench/results   # grpc_floor_vs_ours.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SERVER = r"""
import asyncio, sys, time, threading
from concurrent import futures
import grpc
from rerank.server._proto import load
pb2, pb2_grpc = load()
kind, spin_s = sys.argv[1], float(sys.argv[2]) / 1000.0
sys.setswitchinterval(0.001)

def answer(request, context):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < spin_s:
        pass
    results = [pb2.RankedCandidate(id=c.id, index=i, score=0.5, stderr=0.1) for i, c in enumerate(request.candidates)]
    reply = pb2.RerankResponse(results=results, usage=pb2.Usage(comparisons=380), models=["floor"])
    context.set_trailing_metadata((("rerank-server-ms", f"{(time.perf_counter() - t0) * 1000:.3f}"),))
    return reply

if kind == "sync":
    class Servicer(pb2_grpc.RerankerServicer):
        def Rerank(self, request, context):
            return answer(request, context)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64), maximum_concurrent_rpcs=256)
    pb2_grpc.add_RerankerServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    threading.Event().wait()
else:
    class Servicer(pb2_grpc.RerankerServicer):
        async def Rerank(self, request, context):
            return answer(request, context)
    async def main():
        server = grpc.aio.server()
        pb2_grpc.add_RerankerServicer_to_server(Servicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(port, flush=True)
        await server.wait_for_termination()
    asyncio.run(main())
"""


def timed_call(stub, request) -> tuple[float, float]:
    """One ``Rerank`` call: (client latency minus the handler time the server reports, that handler time), ms."""
    t0 = time.perf_counter()
    _, call = stub.Rerank.with_call(request, timeout=60)
    total = (time.perf_counter() - t0) * 1000.0
    handler = float(dict(call.trailing_metadata())["rerank-server-ms"])
    return total - handler, handler


def transport_summary(transport: list[float]) -> dict:
    t = np.asarray(transport)
    return {"transport_p50_ms": round(float(np.median(t)), 3),
            "transport_iqr_ms": [round(float(np.percentile(t, q)), 3) for q in (25, 75)]}


def measure(kind: str, handler_ms: float, calls: int, request, pb2_grpc) -> dict:
    import grpc

    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(handler_ms)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb2_grpc.RerankerStub(channel)
            for _ in range(20):
                stub.Rerank(request, timeout=60)
            transport = [timed_call(stub, request)[0] for _ in range(calls)]
    finally:
        proc.kill()
        proc.wait()
    return {"server": kind, "handler_ms": handler_ms, "calls": calls, **transport_summary(transport)}


def versus_ours(calls: int, r, pb2_grpc) -> dict:
    """Alternate the same k = 20 request between our server (fake model) and a floor server that spins for our
    handler's median time; client latency minus reported handler time for each."""
    import grpc

    from rerank.client import build_rerank_request

    request = build_rerank_request(r.query, list(zip(r.ids, r.texts, strict=True)), models=["fake"], sampler="all")
    ours = subprocess.Popen([sys.executable, "-m", "rerank.server.testing", "--port", "0"], stdout=subprocess.PIPE,
                            text=True)
    floor = None
    try:
        port = int(ours.stdout.readline().strip().rsplit(":", 1)[1])
        ours_stub = pb2_grpc.RerankerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        # warm-up, and our handler's time for the floor server to spin
        handler = [timed_call(ours_stub, request)[1] for _ in range(40)]
        spin_ms = float(np.median(handler[10:]))
        floor = subprocess.Popen([sys.executable, "-c", SERVER, "sync", str(spin_ms)], stdout=subprocess.PIPE,
                                 text=True)
        floor_stub = pb2_grpc.RerankerStub(grpc.insecure_channel(f"127.0.0.1:{int(floor.stdout.readline())}"))
        for _ in range(20):
            floor_stub.Rerank(request, timeout=60)
        out: dict[str, list[float]] = {"ours": [], "floor": []}
        hand: dict[str, list[float]] = {"ours": [], "floor": []}
        for i in range(calls):
            order = (("ours", ours_stub), ("floor", floor_stub))
            for name, stub in order if i % 2 == 0 else order[::-1]:
                transport, h = timed_call(stub, request)
                out[name].append(transport)
                hand[name].append(h)
    finally:
        for proc in (ours, floor):
            if proc is not None:
                proc.kill()
                proc.wait()
    row: dict = {"calls_each": calls, "floor_spin_ms": round(spin_ms, 3)}
    for name in ("ours", "floor"):
        row[name] = {**transport_summary(out[name]), "handler_p50_ms": round(float(np.median(hand[name])), 3)}
    gap = row["ours"]["transport_p50_ms"] - row["floor"]["transport_p50_ms"]
    row["ours_minus_floor_transport_p50_ms"] = round(gap, 3)
    return row


def run_meta(argv: list[str] | None) -> dict:
    import os
    import platform

    import grpc

    return {"command": "python bench/grpc_floor.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M"), "grpcio": grpc.__version__,
            "python": platform.python_version(), "cpus": os.cpu_count(), "loadavg_after": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handler-ms", type=float, nargs="+", default=[0.0, 8.0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--kinds", nargs="+", default=["sync", "aio"], choices=["sync", "aio"])
    parser.add_argument("--versus-ours", action="store_true",
                        help="alternate calls between the floor server and our server (fake model)")
    parser.add_argument("--out", default=None, help="folder for grpc_floor.json (default: print only)")
    args = parser.parse_args(argv)
    from rerank.bench.loadbench import data_folder, load_requests
    from rerank.client import build_rerank_request
    from rerank.server._proto import load

    _, pb2_grpc = load()
    r = load_requests(data_folder(None), 20)[0]
    if args.versus_ours:
        row = versus_ours(args.calls, r, pb2_grpc)
        print(json.dumps(row), flush=True)
        if args.out:
            (Path(args.out) / "grpc_floor_vs_ours.json").write_text(
                json.dumps({"meta": run_meta(argv), **row}, indent=2) + "\n")
        return 0
    request = build_rerank_request(r.query, list(zip(r.ids, r.texts, strict=True)), sampler="all")
    rows = []
    for handler_ms in args.handler_ms:
        for kind in args.kinds:
            rows.append(measure(kind, handler_ms, args.calls, request, pb2_grpc))
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        out = Path(args.out) / "grpc_floor.json"
        out.write_text(json.dumps({"meta": run_meta(argv), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
