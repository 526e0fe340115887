"""Index benchmark: recall@10 vs queries/s for flat, HNSW and IVF-PQ, and Matryoshka adaptive retrieval
against full-dimension exact search at equal recall@10.

    python -m bench.index --n 1000000 --dim 256          # the committed run (slow: builds three 1M indexes)
    python -m bench.index --n 100000 --out /tmp/ix_bench # a quick look

Everything goes through omniembed.index.Index (WAL, metadata store and all), built in a temp dir.
Vectors: bench.vectors.embedding_like (clustered, per-dimension std (1+j)^-0.5, L2-normalised).
Queries are a batch searched in one call; QPS = queries / wall seconds of that call.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss loads OpenMP: no spinning on a shared box

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from omniembed.index import Index  # noqa: E402
from omniembed.index.matryoshka import exact_topk  # noqa: E402
from bench.vectors import embedding_like, neighbour_recall  # noqa: E402


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _fill(ix: Index, x: np.ndarray, batch: int = 100_000) -> float:
    t = time.perf_counter()
    for start in range(0, len(x), batch):
        stop = min(len(x), start + batch)
        ix.upsert([str(i) for i in range(start, stop)], x[start:stop],
                  [{"modality": "image" if i % 2 else "text"} for i in range(start, stop)])
    return time.perf_counter() - t


CPU_MS: dict[tuple[str, str], float] = {}  # (method, setting) -> CPU ms per query, best of the repeats


def _measure(ix: Index, q: np.ndarray, truth: np.ndarray, repeats: int, key: tuple[str, str], **knobs
             ) -> tuple[float, float]:
    """(recall@10, queries/s): best wall time of `repeats` batch searches. Also records the best process CPU
    time per query under `key`: other jobs on the shared box stretch wall time far more than CPU time."""
    best, best_cpu, hits = float("inf"), float("inf"), None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        hits = ix.search(q, k=10, **knobs)
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    CPU_MS[key] = min(CPU_MS.get(key, float("inf")), 1000 * best_cpu / len(q))
    found = np.array([[int(h.id) for h in row] + [-1] * (10 - len(row)) for row in hits])
    return neighbour_recall(found, truth, 10), len(q) / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--kinds", default="flat,hnsw,ivfpq")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decay", type=float, default=0.5, help="per-dimension std (1+j)^-decay; 0 = isotropic")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--hnsw-efc", type=int, default=100)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--refines", default="10,50", help="IVF-PQ candidates per hit re-ranked exactly, swept")
    ap.add_argument("--nprobes", default="1,4,16,64",
                    help="IVF lists probed, swept with the first refine; later refines sweep the middle ones")
    ap.add_argument("--efs", default="32,64,128,256,512", help="HNSW efSearch values to sweep")
    ap.add_argument("--pq-m", type=int, default=0, help="PQ sub-quantizers (0: the index default, dim // 4)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "results"))
    ap.add_argument("--prefixes", default="32,64", help="adaptive shortlist prefix dims to sweep")
    ap.add_argument("--shortlists", default="50,100,200,400", help="adaptive shortlist sizes to sweep")
    ap.add_argument("--stem", default="index_recall_qps", help="result file name, without .md/.png")
    ap.add_argument("--workdir", default=None, help="where the temporary indexes go (default: system temp)")
    args = ap.parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    kinds = args.kinds.split(",")
    command = "python -m bench.index " + " ".join(argv if argv is not None else sys.argv[1:])

    _log(f"generating {args.n} x {args.dim} embedding-like vectors")
    x = embedding_like(args.n, args.dim, seed=0, decay=args.decay)
    q = embedding_like(args.queries, args.dim, seed=1, decay=args.decay)
    t = time.perf_counter()
    _, truth = exact_topk(q, x, 10)
    exact_raw_qps = args.queries / (time.perf_counter() - t)
    _log(f"ground truth done ({exact_raw_qps:.1f} q/s raw faiss.knn)")

    rows: list[tuple[str, str, float, float]] = []  # (method, setting, recall, qps)
    builds: dict[str, float] = {}
    work = tempfile.mkdtemp(prefix="ixbench-", dir=args.workdir)
    try:
        for kind in kinds:
            params = {"flat": {}, "hnsw": {"M": args.hnsw_m, "ef_construction": args.hnsw_efc},
                      "ivfpq": {"nlist": args.nlist, "pq_m": args.pq_m}}[kind]
            ix = Index.create(os.path.join(work, kind), args.dim, kind, snapshot_bytes=0, **params)
            builds[kind] = _fill(ix, x)
            _log(f"{kind}: built in {builds[kind]:.0f}s")
            if kind == "flat":
                exact_row = len(rows)
                rows.append(("flat (exact)", "-", *_measure(ix, q, truth, args.repeats, ("flat (exact)", "-"))))
                _log(f"flat exact: {rows[-1][3]:.1f} q/s")
                for prefix in map(int, args.prefixes.split(",")):
                    ix.search(q[:1], adaptive={"prefix": prefix, "shortlist": 10})  # builds the prefix index
                    for shortlist in map(int, args.shortlists.split(",")):
                        ad = {"prefix": prefix, "shortlist": shortlist}
                        key = ("adaptive", f"prefix={prefix} shortlist={shortlist}")
                        r, qps = _measure(ix, q, truth, args.repeats, key, adaptive=ad)
                        rows.append((*key, r, qps))
                        _log(f"adaptive p={prefix} s={shortlist}: recall {r:.4f} {qps:.1f} q/s")
                # Timings drift with the shared machine's load: time exact again after the sweep and keep
                # its best, so the adaptive speed-up is not flattered by one slow exact measurement.
                r, qps = _measure(ix, q, truth, args.repeats, ("flat (exact)", "-"))
                rows[exact_row] = ("flat (exact)", "-", r, max(qps, rows[exact_row][3]))
                _log(f"flat exact again: {qps:.1f} q/s")
            elif kind == "hnsw":
                for ef in map(int, args.efs.split(",")):
                    key = ("hnsw", f"M={args.hnsw_m} efC={args.hnsw_efc} efSearch={ef}")
                    r, qps = _measure(ix, q, truth, args.repeats, key, ef_search=ef)
                    rows.append((*key, r, qps))
                    _log(f"hnsw ef={ef}: recall {r:.4f} {qps:.1f} q/s")
            else:
                pq = f"{'rotation + ' if ix.params['rotate'] else ''}PQ{ix.params['pq_m']}x8"
                nprobes = list(map(int, args.nprobes.split(",")))
                for i, refine in enumerate(map(int, args.refines.split(","))):
                    for nprobe in nprobes if i == 0 else nprobes[1:-1] or nprobes:
                        key = (f"ivfpq refine={refine}", f"nlist={args.nlist} {pq} refine={refine} nprobe={nprobe}")
                        r, qps = _measure(ix, q, truth, args.repeats, key, nprobe=nprobe, refine=refine)
                        rows.append((*key, r, qps))
                        _log(f"ivfpq refine={refine} nprobe={nprobe}: recall {r:.4f} {qps:.1f} q/s")
            ix.close()
            shutil.rmtree(os.path.join(work, kind))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    _write_report(args, command, rows, builds, exact_raw_qps)
    return 0


def _write_report(args, command, rows, builds, exact_raw_qps) -> None:
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, args.stem)
    exact = next((r for r in rows if r[0] == "flat (exact)"), None)
    lines = [
        "# Index: recall@10 vs queries/s, and Matryoshka adaptive retrieval",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()} {os.cpu_count()}-core CPU shared with other jobs (noisy timings), "
        f"{args.threads} FAISS threads, no GPU; faiss {faiss.__version__}",
        f"- data: {args.n} x {args.dim} embedding-like vectors (1000 clusters, per-dimension std (1+j)^-0.5, "
        f"L2-normalised); {args.queries} queries from the same clusters, searched as one batch; "
        f"QPS = best of {args.repeats} runs, through `Index.search` (metadata lookup included)",
        "- recall@10 is against exact full-dimension inner-product search",
        "- IVF-PQ: a fixed random orthogonal rotation precedes the coarse quantizer and PQ (`rotate=True`, the "
        "index default): these vectors keep most variance in the first dimensions, and unrotated PQ spent equal "
        "codes on every sub-space, so recall@10 stopped near 0.6 at any nprobe; the candidates (k x refine) "
        "are re-ranked exactly on the stored vectors",
        f"- build time through `Index.upsert` (WAL + metadata + FAISS): "
        + ", ".join(f"{k} {v:.0f}s" for k, v in builds.items()),
        f"- raw `faiss.knn` exact search (no Index overhead): {exact_raw_qps:.1f} q/s",
        "",
        "| method | setting | recall@10 | queries/s | CPU ms/query |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {m} | {s} | {r:.4f} | {qps:.1f} | {CPU_MS[m, s]:.2f} |" for m, s, r, qps in rows]
    adaptive = [r for r in rows if r[0] == "adaptive"]
    if exact and adaptive:
        lines += ["", "## Matryoshka adaptive vs full-dimension exact search", ""]
        for floor in (exact[2], 0.999, 0.99):
            ok = [r for r in adaptive if r[2] >= floor - 1e-9]
            if ok:
                best = max(ok, key=lambda r: r[3])
                lines.append(f"- at recall@10 >= {floor:.3f}: fastest adaptive is {best[1]} "
                             f"(recall {best[2]:.4f}, {best[3]:.1f} q/s) = **{best[3] / exact[3]:.1f}x** "
                             f"the exact search's {exact[3]:.1f} q/s (recall {exact[2]:.4f})")
                cheapest = min(ok, key=lambda r: CPU_MS[r[0], r[1]])
                ex_cpu, ad_cpu = CPU_MS[exact[0], exact[1]], CPU_MS[cheapest[0], cheapest[1]]
                lines.append(f"  - in CPU time: cheapest adaptive is {cheapest[1]} ({ad_cpu:.2f} ms/query) = "
                             f"**{ex_cpu / ad_cpu:.1f}x** less than exact ({ex_cpu:.2f} ms/query)")
            else:
                lines.append(f"- no adaptive setting reached recall@10 >= {floor:.3f}")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    _plot(rows, stem + ".png", args)
    _log(f"wrote {stem}.md and .png")


def _plot(rows, path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups: dict[str, list] = {}
    for m, s, r, qps in rows:
        label = m if m != "adaptive" else "Matryoshka adaptive " + s.split()[0]
        groups.setdefault(label, []).append((r, qps))
    for label, pts in groups.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("recall@10 (vs exact)")
    ax.set_ylabel("queries / s (batch, 2 threads)")
    ax.set_title(f"omniembed.index, {args.n:,} x {args.dim} embedding-like vectors")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
