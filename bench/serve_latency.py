"""Service benchmark: p50/p99 latency and queries/s of Search (by vector, and by text with a bundle) under
concurrent load; micro-batching against none; the gRPC hop against the same work in-process.

    .venv/bin/python -m bench.serve_latency                 # vector search only
    .venv/bin/python -m bench.serve_latency --bundle B      # + search by text

The server runs as a separate process (`python -m omniembed.serve`), as in production; load comes from
client threads of a load process of its own, each with its own channel, each sending its next call when the
last returns (closed loop), and, where installed, from h2load (nghttp2's C load generator, `apt-get install
nghttp2-client`), whose own CPU leaves the 2 cores to the server. In-process numbers call Index.search /
Embedder.embed directly on one thread.
Writes bench/results/serve_latency.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss loads OpenMP: no spinning on a shared box

import numpy as np  # noqa: E402

from omniembed.index import Index  # noqa: E402
from bench.vectors import embedding_like  # noqa: E402
from omniembed.serve import Client  # noqa: E402

TEXTS = [f"a {size} {colour} {shape} moving {way}" for size in ("small", "large") for colour in ("red", "green", "blue")
         for shape in ("circle", "square", "triangle") for way in ("left", "right", "up")]


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def percentiles(latencies_s: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    a = np.asarray(latencies_s) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def closed_loop(call, concurrency: int, seconds: float, make_state=lambda: None) -> dict:
    """Run call(state, n) from `concurrency` threads for `seconds`; latency percentiles and throughput."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)
    stop_at = [0.0]
    errors: list[Exception] = []

    def worker(w):
        state = make_state()
        barrier.wait()
        n = w
        try:
            while time.perf_counter() < stop_at[0]:
                t = time.perf_counter()
                call(state, n)
                latencies[w].append(time.perf_counter() - t)
                n += concurrency
        except Exception as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)
        finally:
            if hasattr(state, "close"):
                state.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    start = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    flat = [x for lat in latencies for x in lat]
    p50, p99 = percentiles(flat)
    return {"concurrency": concurrency, "calls": len(flat), "p50_ms": p50, "p99_ms": p99, "qps": len(flat) / wall}


def remote_loop(target: str, kind: str, concurrency: int, seconds: float) -> dict:
    """closed_loop over gRPC from a client process of its own (`--load`): the load generator shares no GIL,
    no loaded model and no thread pools with this process, as a real client would not. kind: text | vector:DIM
    | health."""
    cmd = [sys.executable, "-m", "bench.serve_latency", "--load", target, kind, str(concurrency), str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 120)
    if out.returncode != 0:
        raise RuntimeError(f"load client failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load_main(target: str, kind: str, concurrency: int, seconds: float) -> int:
    from omniembed.serve.stubs import pb2

    if kind == "health":
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        class Probe:
            def __init__(self):
                self.channel = grpc.insecure_channel(target)
                self.stub = health_pb2_grpc.HealthStub(self.channel)

            def __call__(self, _n):
                return self.stub.Check(health_pb2.HealthCheckRequest(), timeout=60)

            def close(self):
                self.channel.close()

        make = Probe
    elif kind == "text":
        requests = _text_requests()
        make = lambda: RawSearch(target, random.choice(requests))  # noqa: E731
    else:
        dim = int(kind.split(":")[1])
        queries = embedding_like(64, dim, seed=1)
        requests = [pb2.SearchRequest(vector=pb2.Vector(values=q.tolist()), k=10) for q in queries]
        make = lambda: RawSearch(target, random.choice(requests))  # noqa: E731
    print(json.dumps(closed_loop(lambda st, n: st(n), concurrency, seconds, make_state=make)))
    return 0


def h2load_loop(target: str, method: str, request, concurrency: int, seconds: float) -> dict | None:
    """closed_loop from h2load (nghttp2's HTTP/2 load generator, C: `apt-get install nghttp2-client`), which
    speaks gRPC's wire format when given the framed request and headers: a client whose own CPU is a few
    percent of a core, where Python clients on the same 2 cores take half of one from the server. Each of
    `concurrency` connections keeps one call in flight. None when h2load is not installed."""
    exe = shutil.which("h2load")
    if exe is None:
        return None
    body = request.SerializeToString()
    with tempfile.TemporaryDirectory() as tmp:
        data, log = os.path.join(tmp, "request"), os.path.join(tmp, "log")
        with open(data, "wb") as f:
            f.write(b"\0" + len(body).to_bytes(4, "big") + body)  # gRPC framing: uncompressed, length, message
        cmd = [exe, "-D", f"{int(seconds * 1000)}ms", "--warm-up-time", "1s", "-c", str(concurrency), "-m", "1", "-t", "1",
               "-d", data, "-H", "content-type: application/grpc", "-H", "te: trailers", "--log-file", log,
               f"http://{target}{method}"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 60)
        rows = [line.split("\t") for line in open(log).read().splitlines()] if os.path.exists(log) else []
    if out.returncode != 0 or not rows:
        raise RuntimeError(f"h2load failed: {out.stdout[-1000:]} {out.stderr[-1000:]}")
    status = {r[1] for r in rows}
    if status != {"200"}:
        raise RuntimeError(f"h2load saw HTTP statuses {sorted(status)}")
    start = [int(r[0]) for r in rows]
    wall = (max(s + int(r[2]) for s, r in zip(start, rows)) - min(start)) / 1e6
    p50, p99 = percentiles([int(r[2]) / 1e6 for r in rows])
    return {"concurrency": concurrency, "calls": len(rows), "p50_ms": p50, "p99_ms": p99, "qps": len(rows) / wall}


class ServerProcess:
    def __init__(self, index_dir: str, *extra: str):
        cmd = [sys.executable, "-m", "omniembed.serve", "--index", index_dir, "--port", "0", "--host", "127.0.0.1",
               "--log-level", "WARNING", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.target = match.group(1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


def bench_vectors(args, work: str) -> list[str]:
    dim, k = args.dim, 10
    _log(f"index: {args.n} x {dim} embedding-like vectors, flat")
    x = embedding_like(args.n, dim, seed=0)
    queries = embedding_like(1000, dim, seed=1)
    index_dir = os.path.join(work, "vec-ix")
    with Index.create(index_dir, dim=dim, kind="flat") as ix:
        for s in range(0, args.n, 50_000):
            ix.upsert([f"v{i}" for i in range(s, min(args.n, s + 50_000))], x[s : s + 50_000])
        ix.snapshot()
        local = closed_loop(lambda _s, n: ix.search(queries[n % len(queries)], k=k), 1, args.seconds)
    _log(f"in-process Index.search: p50 {local['p50_ms']:.2f} ms, {local['qps']:.0f} QPS")
    server = ServerProcess(index_dir)
    rows = []
    try:
        for c in args.concurrency:
            r = remote_loop(server.target, f"vector:{dim}", c, args.seconds)
            rows.append(r)
            _log(f"gRPC Search by vector, {c} clients: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                 f"{r['qps']:.0f} QPS")
    finally:
        server.stop()
    one, top = rows[0], rows[-1]
    lines = [
        f"## Search by vector ({args.n:,} x {dim} flat index, k={k})", "",
        "| path | clients | p50 ms | p99 ms | queries/s |", "|---|---:|---:|---:|---:|",
        f"| in-process `Index.search` | 1 | {local['p50_ms']:.2f} | {local['p99_ms']:.2f} | {local['qps']:.0f} |",
        *[f"| gRPC `Search` (vector) | {r['concurrency']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['qps']:.0f} |"
          for r in rows],
        "",
        f"- {top['concurrency']} clients over 1: **{top['qps'] / one['qps']:.2f}x** the queries/s (target >= 2x: "
        "concurrent queries merged into one FAISS search)",
        f"- gRPC hop at 1 client: p50 {one['p50_ms'] - local['p50_ms']:+.2f} ms per call "
        f"({one['p50_ms'] / local['p50_ms']:.1f}x the in-process time)", "",
    ]
    return lines


class RawSearch:
    """A client of bare generated stubs, one channel, the request built once: the load a client that is not
    ours puts on the server, without our Client's per-call conversions."""

    def __init__(self, target: str, request, method: str = "Search"):
        import grpc
        from omniembed.serve.stubs import pb2_grpc

        self.channel = grpc.insecure_channel(target)
        self.call = getattr(pb2_grpc.OmniEmbedStub(self.channel), method)
        self.request = request

    def __call__(self, _n=None):
        return self.call(self.request, timeout=120)

    def close(self):
        self.channel.close()


def _text_requests():
    from omniembed.serve.stubs import pb2

    return [pb2.SearchRequest(item=pb2.Item(text=t), k=10) for t in TEXTS]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def bench_text(args, work: str) -> list[str]:
    from omniembed.serve.embedding import ModelEmbedder

    model = ModelEmbedder.load(args.bundle, threads=args.threads)
    dim = model.full_dim
    _log(f"bundle {args.bundle}: dim {dim}; indexing {args.text_n} embedded texts")
    index_dir = os.path.join(work, "text-ix")
    texts = [TEXTS[i % len(TEXTS)] + f" #{i}" for i in range(args.text_n)]
    with Index.create(index_dir, dim=dim, kind="flat") as ix:
        for s in range(0, len(texts), 256):
            chunk = texts[s : s + 256]
            ix.upsert([f"t{i}" for i in range(s, s + len(chunk))], model.embedder.embed(chunk))
        ix.snapshot()

        def local_call(_s, n):
            ix.search(model.embedder.embed([TEXTS[n % len(TEXTS)]])[0], k=10)

        def local_batch(_s, n):
            batch = [TEXTS[(n + j) % len(TEXTS)] for j in range(32)]
            ix.search(model.embedder.embed(batch), k=10)

        local = closed_loop(local_call, 1, args.seconds)
        batched = closed_loop(local_batch, 1, args.seconds)
        batched["qps"] *= 32
    _log(f"in-process embed+search: p50 {local['p50_ms']:.2f} ms, {local['qps']:.0f} QPS; "
         f"in batches of 32: {batched['qps']:.0f} QPS")
    threads = ["--threads", str(args.threads)] if args.threads else []
    results = {}
    from omniembed.serve.stubs import pb2
    from grpc_health.v1 import health_pb2

    text_request = pb2.SearchRequest(item=pb2.Item(text=TEXTS[0]), k=10)
    loads = {"python": {}, "h2load": {}}  # load generator -> {(label, clients) or "health": result}
    for label, extra in (("micro-batched", ["--max-batch", "32", "--max-wait-ms", str(args.max_wait_ms)]),
                         ("no batching", ["--no-batching"])):
        server = ServerProcess(index_dir, "--bundle", args.bundle, *threads, *extra)
        try:
            with Client(server.target) as probe:  # the request h2load sends, answered OK with hits
                assert probe.search(TEXTS[0], k=10), "the h2load request found nothing"
            for gen in loads:
                if "health" not in loads[gen]:
                    loads[gen]["health"] = (remote_loop(server.target, "health", max(args.concurrency), args.seconds)
                                            if gen == "python" else
                                            h2load_loop(server.target, "/grpc.health.v1.Health/Check",
                                                        health_pb2.HealthCheckRequest(), max(args.concurrency),
                                                        args.seconds))
                for c in args.concurrency:
                    with Client(server.target) as probe:
                        before = probe.stats()
                    r = (remote_loop(server.target, "text", c, args.seconds) if gen == "python" else
                         h2load_loop(server.target, "/omniembed.v1.OmniEmbed/Search", text_request, c, args.seconds))
                    if r is None:
                        break
                    with Client(server.target) as probe:
                        after = probe.stats()
                    items = after["embedded_items"] - before["embedded_items"]
                    if items < r["calls"]:  # HTTP/2 answers are 200 whatever the gRPC status: count the work
                        raise RuntimeError(f"{gen}: {r['calls']} calls answered but {items} queries embedded")
                    r["mean_batch"] = items / max(1, after["embed_batches"] - before["embed_batches"])
                    loads[gen][(label, c)] = r
                    _log(f"gRPC Search by text ({gen}), {label}, {c} clients: p50 {r['p50_ms']:.1f} ms, "
                         f"p99 {r['p99_ms']:.1f} ms, {r['qps']:.1f} QPS (mean batch {r['mean_batch']:.1f})")
        finally:
            server.stop()
    top, first = max(args.concurrency), args.concurrency[0]
    lines = [
        f"## Search by text (bundle `{args.bundle}`, dim {dim}, {args.text_n:,} items, k=10)", "",
        "| path | load from | clients | p50 ms | p99 ms | queries/s | mean items per model call |",
        "|---|---|---:|---:|---:|---:|---:|",
        f"| in-process `Embedder.embed` + `Index.search`, one at a time | - | 1 | {local['p50_ms']:.2f} | "
        f"{local['p99_ms']:.2f} | {local['qps']:.1f} | 1 |",
        f"| in-process, batches of 32 | - | 1 | {batched['p50_ms']:.2f} (per batch) | {batched['p99_ms']:.2f} | "
        f"{batched['qps']:.1f} | 32 |",
    ]
    for gen, results in loads.items():
        lines += [f"| gRPC `Search` (text), {label} | {gen} | {c} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                  f"{r['qps']:.1f} | {r['mean_batch']:.1f} |" for (label, c), r in
                  ((key, r) for key, r in results.items() if key != "health")]
    lines.append("")
    for gen, results in loads.items():
        if ("no batching", top) not in results:
            lines += [f"- {gen}: not installed (`apt-get install nghttp2-client`), no rows", ""]
            continue
        ceiling = results["health"]
        lines += [
            f"Load from {gen}:",
            f"- text Search at {top} clients: **{results[('micro-batched', top)]['qps'] / batched['qps']:.2f}x** the "
            "in-process batched throughput (target >= 0.7x)",
            f"- micro-batched over no batching at {top} clients: **"
            f"{results[('micro-batched', top)]['qps'] / results[('no batching', top)]['qps']:.2f}x** (target >= 3x)",
            f"- 1-client p50 overhead over in-process: **{results[('micro-batched', first)]['p50_ms'] - local['p50_ms']:+.2f}"
            " ms** (target < 1 ms)",
            f"- the ceiling of any call: health `Check` (no work) at {top} clients, **{ceiling['qps']:.0f} queries/s**; "
            f"the 0.7x target ({0.7 * batched['qps']:.0f}/s) is {0.7 * batched['qps'] / ceiling['qps']:.2f}x of it", "",
        ]
    lines += [
        "Clients: `python`, bare generated stubs, one channel each, one prebuilt request each (a client that is not "
        "ours, without our Client's conversions), threads of a load process of their own on the same 2 cores as the "
        "server; `h2load`, nghttp2's C load generator sending the same framed request over one connection per "
        "client (a few percent of a core), so its rows measure the server more than the client. h2load sends one "
        "caption every time; the Python clients pick among 54.", "",
    ]
    lines += bench_big_text(args, index_dir, threads)
    return lines


FLOOD = """
import sys, time, grpc
from omniembed.serve.stubs import pb2, pb2_grpc
stub = pb2_grpc.OmniEmbedStub(grpc.insecure_channel(sys.argv[1]))
big = pb2.EmbedRequest(items=[pb2.Item(text="a large green triangle moving slowly to the left " * 200_000)])
end, sent = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    stub.Embed(big, timeout=120)
    sent += 1
print(sent)
"""


def bench_big_text(args, index_dir: str, threads: list[str]) -> list[str]:
    """Health and small-query latency while one client keeps sending 10 MB texts; server RSS around it."""
    server = ServerProcess(index_dir, "--bundle", args.bundle, *threads)
    try:
        idle_small = remote_loop(server.target, "text", 1, args.seconds)
        idle_health = remote_loop(server.target, "health", 1, args.seconds)
        rss_before = _rss_mb(server.proc.pid)
        # the sender is a process of its own: serialising 10 MB holds its GIL, which would stall the probes here
        sender = subprocess.Popen([sys.executable, "-c", FLOOD, server.target, str(2 * args.seconds + 1)],
                                  stdout=subprocess.PIPE, text=True)
        peak = [rss_before]

        def watch():
            while sender.poll() is None:
                peak[0] = max(peak[0], _rss_mb(server.proc.pid))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        time.sleep(0.5)
        busy_health = remote_loop(server.target, "health", 1, args.seconds)
        busy_small = remote_loop(server.target, "text", 1, args.seconds)
        sent = [int(sender.communicate(timeout=300)[0].strip() or 0)]
        watcher.join()
        time.sleep(1.5)
        rss_after = _rss_mb(server.proc.pid)
    finally:
        server.stop()
    mb = 10
    _log(f"{mb:.0f} MB texts: {sent[0]} sent; health p99 {busy_health['p99_ms']:.1f} ms, small query p99 "
         f"{busy_small['p99_ms']:.1f} ms (idle {idle_small['p99_ms']:.1f}); RSS {rss_before:.0f} -> peak "
         f"{peak[0]:.0f} -> {rss_after:.0f} MB")
    return [
        f"## One client sending {mb:.0f} MB texts to Embed, back to back ({sent[0]} sent)", "",
        "| probe | p50 ms idle | p99 ms idle | p50 ms during | p99 ms during |", "|---|---:|---:|---:|---:|",
        f"| health Check | {idle_health['p50_ms']:.2f} | {idle_health['p99_ms']:.2f} | {busy_health['p50_ms']:.2f} | "
        f"{busy_health['p99_ms']:.2f} |",
        f"| small text Search | {idle_small['p50_ms']:.2f} | {idle_small['p99_ms']:.2f} | {busy_small['p50_ms']:.2f} | "
        f"{busy_small['p99_ms']:.2f} |", "",
        f"- health p99 during: **{busy_health['p99_ms']:.1f} ms** (target < 100 ms)",
        f"- small-query p99 during / idle: **{busy_small['p99_ms'] / idle_small['p99_ms']:.2f}x** (target within 2x)",
        f"- server RSS: {rss_before:.0f} MB before, {peak[0]:.0f} MB at the peak seen, {rss_after:.0f} MB 1.5 s after",
        "",
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="vectors in the vector-search index")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    p.add_argument("--concurrency", default="1,4,16")
    p.add_argument("--bundle", help="an exported bundle: adds search by text and the micro-batching ratio")
    p.add_argument("--text-n", type=int, default=2000, help="embedded texts in the text-search index")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads in server and in-process")
    p.add_argument("--max-wait-ms", type=float, default=0.0, help="the server's --max-wait-ms (its default: 0)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                 "serve_latency.md"))
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--load":  # a load client (remote_loop)
        return _load_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    args = p.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    work = tempfile.mkdtemp(prefix="serve-bench-")
    try:
        sections = bench_vectors(args, work)
        if args.bundle:
            sections += bench_text(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = [
        "# Service latency and throughput", "",
        f"`{' '.join(['python -m bench.serve_latency', *(argv if argv is not None else sys.argv[1:])])}` on "
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs shared with "
        "other jobs (numbers are noisy; compare rows of one run, not runs). Server: `python -m omniembed.serve` in "
        "its own process; clients: threads of the bench process, one channel each, closed loop, "
        f"{args.seconds:g} s per row.", "",
    ]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(header + sections))
    _log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
