"""Filtered search: exact scan of the allowed subset vs the ANN structure with an IDSelector, by subset size.

    python -m bench.index.filters --n 100000 --dim 256

The Index scans the allowed rows exactly when a filter leaves at most SUBSET_EXACT_MAX items and uses an
IDSelector above; this measures both strategies on each kind so that threshold is a measured choice.
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

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

import omniembed.index.core as core  # noqa: E402
from omniembed.index import Index  # noqa: E402
from omniembed.index.matryoshka import exact_topk  # noqa: E402
from bench.vectors import embedding_like, neighbour_recall  # noqa: E402

# Items get bucket = i % 1000; a filter on bucket < b keeps b/1000 of them.
FRACTIONS = (0.01, 0.05, 0.2, 0.5)


def _time_search(ix, q, flt, repeats):
    best, hits = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        hits = ix.search(q, k=10, filter=flt)
        best = min(best, time.perf_counter() - t)
    return hits, len(q) / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "results"))
    args = ap.parse_args(argv)
    faiss.omp_set_num_threads(2)
    x = embedding_like(args.n, args.dim, seed=0)
    q = embedding_like(args.queries, args.dim, seed=1)
    bucket = np.arange(args.n) % 1000
    rows = []
    work = tempfile.mkdtemp(prefix="ixfilters-")
    try:
        for kind, params in (("flat", {}), ("hnsw", {"M": 16, "ef_construction": 40}), ("ivfpq", {"nlist": 256})):
            ix = Index.create(os.path.join(work, kind), args.dim, kind, snapshot_bytes=0, **params)
            for start in range(0, args.n, 50_000):
                stop = min(args.n, start + 50_000)
                ix.upsert([str(i) for i in range(start, stop)], x[start:stop],
                          [{"payload": {"b": int(b)}} for b in bucket[start:stop]])
            for frac in FRACTIONS:
                allowed_b = list(range(int(frac * 1000)))
                allowed = np.flatnonzero(bucket < len(allowed_b))
                _, truth_rows = exact_topk(q, x[allowed], 10)
                truth = allowed[truth_rows]
                flt = {"payload": {"b": allowed_b}}
                for strategy, limit in (("exact subset", 10**12), ("IDSelector", 0)):
                    core.SUBSET_EXACT_MAX = limit
                    hits, qps = _time_search(ix, q, flt, args.repeats)
                    found = np.array([[int(h.id) for h in r] + [-1] * (10 - len(r)) for r in hits])
                    full = all(len(r) == 10 for r in hits)
                    rows.append((kind, frac, len(allowed), strategy, neighbour_recall(found, truth, 10), qps, full))
                    print(rows[-1], flush=True)
            ix.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python -m bench.index.filters " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Index: filtered search, exact subset scan vs IDSelector",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()} {os.cpu_count()}-core CPU shared with other jobs (noisy), no GPU; "
        f"faiss {faiss.__version__}",
        f"- data: {args.n} x {args.dim} embedding-like vectors; filter = payload field in a list of values "
        f"(SQLite json_extract); {args.queries} queries in one batch; recall@10 vs exact search within the subset",
        "- 'k results' = every query got 10 hits (the exact fallback refills short results)",
        "",
        "| kind | allowed fraction | allowed items | strategy | recall@10 | queries/s | k results |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {k} | {f:.2f} | {n} | {s} | {r:.4f} | {qps:.1f} | {'yes' if full else 'NO'} |"
              for k, f, n, s, r, qps, full in rows]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "index_filters.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
