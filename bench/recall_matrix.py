"""Held-out recall matrix of a training run: recall@1/5/10 and mAP for every query->target modality pair at every
Matryoshka dim, written to bench/results/recall_matrix.{md,json,png}.

    python -m bench.recall_matrix RUN_DIR [--manifest HELDOUT.jsonl] [--max-items N] [--out DIR]

This is `omniembed eval RUN_DIR` (omniembed.eval: every held-out view embedded from its files by the run's
TorchEmbedder, scored with the run's hit rule, the code training evaluates with) with the benchmark's header.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.common import RESULTS, command_line, results_header
from omniembed.eval.cli import evaluate, header
from omniembed.eval.report import write


def compute(run_dir: str | Path, manifest: str | Path | None = None, max_items: int | None = None,
            threads: int = 2, batch_size: int = 16) -> dict:
    return evaluate(Path(run_dir), Path(manifest) if manifest else None, max_items=max_items, threads=threads,
                    batch=batch_size)


def write_results(result: dict, out_dir: Path, command: str, plot_k: int = 1) -> dict[str, Path]:
    lines = results_header("Cross-modal recall matrix (held-out items)", command) + header(result)
    return write(result, out_dir, lines, plot_k=plot_k, title=f"held-out recall@{plot_k} ({result['model']})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.recall_matrix", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="a training run directory (omniembed train)")
    p.add_argument("--manifest", help="held-out manifest to score instead of the run's own held-out split")
    p.add_argument("--max-items", type=int, help="score only the first N held-out items (quick look)")
    p.add_argument("--out", default=str(RESULTS), help="results folder (default bench/results)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--plot-k", type=int, default=1, choices=(1, 5, 10), help="recall@k shown in the heatmap")
    args = p.parse_args(argv)
    result = compute(args.run_dir, args.manifest, args.max_items, args.threads)
    written = write_results(result, Path(args.out), command_line(argv, "bench.recall_matrix"), args.plot_k)
    print("wrote " + ", ".join(str(v) for v in written.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
