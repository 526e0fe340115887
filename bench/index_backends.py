"""FAISS vs Milvus Lite through the same omniembed.index API: build time, recall@10 and queries/s.

    python -m bench.index_backends                      # the committed run: 100k x 256, flat and HNSW
    python -m bench.index_backends --n 20000 --out /tmp/ib   # a quick look

Both backends are built in temp dirs from the same vectors (bench.vectors.embedding_like) with the same
metadata; queries are held-out vectors searched in batches of `--batch` per call, for plain search, a
modality filter (half the items), a Matryoshka prefix (dim/4, a stored field on Milvus) and adaptive search.
Recall@10 is against exact search on the same vectors (at the prefix for the prefix row).
QPS = queries / wall seconds (best of `--repeats`); the ratio column is Milvus Lite / FAISS in this run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from bench.common import RESULTS, command_line, results_header  # noqa: E402
from bench.vectors import embedding_like, neighbour_recall  # noqa: E402
from omniembed.index import open_index  # noqa: E402
from omniembed.index.matryoshka import exact_topk, truncate  # noqa: E402


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _build(uri: str, kind: str, x: np.ndarray, prefixes) -> tuple[object, float]:
    ix = open_index(uri, x.shape[1], kind, prefixes=prefixes)
    t = time.perf_counter()
    for start in range(0, len(x), 10_000):
        stop = min(len(x), start + 10_000)
        ix.upsert([str(i) for i in range(start, stop)], x[start:stop],
                  [{"modality": "image" if i % 2 else "text"} for i in range(start, stop)])
    ix.snapshot()  # FAISS: a snapshot of the folder; Milvus: a flush into indexed segments
    ix.search(x[:1], k=10)  # the first search after writes builds or loads what it needs: part of the build
    return ix, time.perf_counter() - t


def _measure(ix, q, truth, batch, repeats, **kw) -> tuple[float, float]:
    best, found = float("inf"), []
    for _ in range(repeats):
        t, rows = time.perf_counter(), []
        for start in range(0, len(q), batch):
            rows.extend(ix.search(q[start:start + batch], k=10, **kw))
        best = min(best, time.perf_counter() - t)
        found = rows
    ids = np.array([[int(h.id) for h in r] + [-1] * (10 - len(r)) for r in found])
    return neighbour_recall(ids, truth, 10), len(q) / best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--kinds", default="flat,hnsw")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    x = embedding_like(args.n, args.dim, seed=0)
    q = embedding_like(args.queries, args.dim, seed=1)
    p = args.dim // 4
    modal = np.flatnonzero(np.arange(args.n) % 2 == 1)
    truths = {"search": exact_topk(q, x, 10)[1],
              "filter modality": modal[exact_topk(q, x[modal], 10)[1]],
              f"prefix dim {p}": exact_topk(truncate(q, p), truncate(x, p), 10)[1]}
    truths["adaptive"] = truths["search"]
    cases = {"search": {}, "filter modality": {"filter": {"modality": "image"}}, f"prefix dim {p}": {"dim": p},
             "adaptive": {"adaptive": True}}
    rows = []
    tmp = tempfile.mkdtemp(prefix="ixb-")
    try:
        for kind in args.kinds.split(","):
            results = {}
            for backend, uri in (("faiss", f"{tmp}/{kind}-faiss"), ("milvus-lite", f"milvus-lite://{tmp}/{kind}.db")):
                _log(f"build {backend} {kind} {args.n} x {args.dim}")
                ix, build = _build(uri, kind, x, prefixes=(p,))
                results[backend] = {"build": build}
                for case, kw in cases.items():
                    results[backend][case] = _measure(ix, q, truths[case], args.batch, args.repeats, **kw)
                    _log(f"  {case}: recall {results[backend][case][0]:.3f}, {results[backend][case][1]:.0f} q/s")
                ix.close()
            f, m = results["faiss"], results["milvus-lite"]
            rows.append(f"| {kind} | build (s) | {f['build']:.1f} | {m['build']:.1f} | {m['build'] / f['build']:.2f} | | |")
            for case in cases:
                rows.append(f"| {kind} | {case} | {f[case][1]:.0f} | {m[case][1]:.0f} | {m[case][1] / f[case][1]:.2f} "
                            f"| {f[case][0]:.3f} | {m[case][0]:.3f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = results_header(f"Index backends: FAISS vs Milvus Lite at {args.n:,} x {args.dim}",
                           command_line(argv, "bench.index_backends"))
    lines += [f"Queries: {args.queries} held-out vectors in batches of {args.batch}; best of {args.repeats}. "
              "Recall@10 against exact search. Ratio: Milvus Lite / FAISS (queries/s, or build seconds).", "",
              "| kind | measure | FAISS q/s (build s) | Milvus Lite q/s (build s) | ratio | FAISS recall@10 | Milvus Lite recall@10 |",
              "|---|---|---|---|---|---|---|", *rows, ""]
    out = os.path.join(args.out, "index_backends.md")
    os.makedirs(args.out, exist_ok=True)
    with open(out, "w") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
