"""Bulk ingest: entries/s of `omniembed ingest` with 1 and 2 Ray actors against a single-process loop, one run.

    python -m bench.ingest --bundle runs/demo/bundle              # the committed run (a generated world)
    python -m bench.ingest --bundle B --n 48 --out /tmp/ib        # a quick look

One synthetic world (omniembed.data.synth, `--n` items with text, image, audio and video views, and its
documents) is ingested into a fresh FAISS index three times, each from an empty ledger: in this process
without Ray (`--actors 0`: one Embedder, the same reading and embedding code, threads = all cores), then with a
local Ray and 1 and 2 actors (threads = cores / actors). Wall seconds are the whole call, Ray start and actor
loading included, as a user waits for them; "steady" is entries/s after the first batch came back, which
is what a large ingest converges to. Ratios are against the single-process loop of the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.common import RESULTS, command_line, results_header  # noqa: E402


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_one(manifest: str, bundle: str, work: Path, actors: int, batch: int) -> dict:
    from omniembed.ingest import ingest

    t = time.perf_counter()
    result = ingest(manifest, bundle, str(work / f"ix-{actors}"), actors=actors, state=work / f"state-{actors}",
                    batch_size=batch, progress=False)
    wall = time.perf_counter() - t
    return {"entries": result.written, "wall": wall, "per_s": result.written / wall, "steady": result.steady_per_s,
            "rejected": result.rejected, "actors_used": result.actors}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True, help="an exported bundle (omniembed export)")
    ap.add_argument("--n", type=int, default=1200, help="synthetic world items")
    ap.add_argument("--batch", type=int, default=32, help="entries per actor call")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from omniembed.data.synth import generate

    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    try:
        _log(f"generating a world of {args.n} items")
        generate(work / "world", args.n, 3, workers=1)
        manifest = str(work / "world" / "manifest.jsonl")
        rows = {}
        for actors in (0, 1, 2):
            _log(f"ingest with {'no Ray (one process)' if actors == 0 else f'{actors} actor(s)'}")
            rows[actors] = run_one(manifest, args.bundle, work, actors, args.batch)
            _log(str(rows[actors]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows[0]
    lines = results_header("Bulk ingest: Ray actors vs a single-process loop",
                           command_line(argv, module="bench.ingest")) + [
        f"World: {args.n} synthetic items (text, image, audio, video views) and their documents, "
        f"{base['entries']} entries, into a fresh FAISS flat index; batches of {args.batch}. Wall: the whole call "
        "(Ray start and actor loading included); steady: entries/s after the first batch. Ratios against the "
        "single-process loop of this run.", "",
        "| mode | entries | wall s | entries/s | ratio | steady entries/s | steady ratio | actors that embedded |",
        "|---|---|---|---|---|---|---|---|"]
    names = {0: "single process, no Ray (`--actors 0`)", 1: "Ray, 1 actor", 2: "Ray, 2 actors"}
    for actors, r in rows.items():
        lines.append(f"| {names[actors]} | {r['entries']} | {r['wall']:.1f} | {r['per_s']:.1f} | "
                     f"{r['per_s'] / base['per_s']:.2f} | {r['steady']:.1f} | "
                     f"{r['steady'] / base['steady'] if base['steady'] else 0:.2f} | {r['actors_used']} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
