"""What INT8 costs in retrieval: held-out recall@1 through ONNX Runtime, fp32 trunk vs INT8 trunk.

    python -m bench.embed_int8_recall RUN_DIR [--bundle B] [--out bench/results/embed_int8_recall.md]

Uses the run's own tokenized held-out split (RUN_DIR/corpus.* or its data.corpus_cache: the ids its
evaluation embeds), so the only difference between the columns is the trunk graph. Every query->gallery
modality pair at every Matryoshka dim; the goal is an INT8 loss of at most 1 point of recall@1. Without
--bundle the run is exported first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import RESULTS, command_line, results_header

GOAL_POINTS = 1.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="trained RUN_DIR with its corpus cache (python -m omniembed.train)")
    p.add_argument("--bundle", help="bundle exported from RUN_DIR with --int8 (default: export one now)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "embed_int8_recall.md"))
    args = p.parse_args(argv)

    import yaml

    from omniembed.eval.hits import hit_key
    from omniembed.eval.metrics import recall_at_k
    from omniembed.runtime import Embedder, prefix
    from omniembed.train.corpus import Corpus
    from omniembed.train.evaluate import EVAL_MODALITIES

    run_dir = Path(args.run_dir)
    bundle = Path(args.bundle) if args.bundle else export(run_dir, args.threads)
    config = yaml.safe_load((run_dir / "train.yaml").read_text()) or {}
    data = config.get("data") or {}
    max_tokens = int(data.get("max_view_tokens", 256))
    corpus = Corpus.load(Path(data.get("corpus_cache") or run_dir))  # where omniembed.train cached it
    held = corpus.split("heldout")
    if not held:
        print(f"{run_dir}: no held-out items in the corpus", file=sys.stderr)
        return 2
    engines = {v: Embedder.load(bundle, threads=args.threads, variant=v) for v in ("fp32", "int8")}
    dims = engines["fp32"].dims
    vecs: dict[str, dict[str, np.ndarray]] = {v: {} for v in engines}
    keys: dict[str, list] = {}
    for m in EVAL_MODALITIES:
        members = [i for i in held if m in corpus.items[i].views()]
        if not members:
            continue
        seqs = [corpus.view_ids(corpus.items[i], m, 0, max_tokens).tolist() for i in members]
        keys[m] = [hit_key("attributes", corpus.items[i].id, corpus.items[i].attributes, corpus.items[i].group)
                   for i in members]
        for v, emb in engines.items():
            vecs[v][m] = emb.embed_ids(seqs)
    rows = []
    for d in dims:
        for q in keys:
            for g in keys:
                if q == g:
                    continue
                r = {v: recall_at_k(prefix(vecs[v][q], d), prefix(vecs[v][g], d), keys[q], keys[g], (1,))[1]
                     for v in engines}
                rows.append((d, f"{q}->{g}", r["fp32"], r["int8"]))
    deltas = [100 * (f - i) for _, _, f, i in rows]
    lines = results_header("INT8 vs fp32 trunk: held-out recall@1", command_line(None, "bench.embed_int8_recall"))
    per_modality = {m: len(k) for m, k in keys.items()}
    step = engines["fp32"].manifest.get("source", {}).get("step", "?")
    lines += [f"- run: {run_dir} at step {step} ({len(held)} held-out items, queries per modality {per_modality}); "
              f"bundle: {bundle}",
              f"- resolution: one query of {min(len(k) for k in keys.values())} moves a pair's recall@1 by "
              f"{100 / min(len(k) for k in keys.values()):.1f} points, so single pairs move by a few points either way",
              "", "| dim | mean R@1 over pairs, fp32 | INT8 | loss (points) | worst pair loss | best pair gain |",
              "|---|---|---|---|---|---|"]
    worst_mean = -np.inf
    for d in dims:
        at = [(f, i) for dd, _, f, i in rows if dd == d]
        f_mean, i_mean = np.mean([f for f, _ in at]), np.mean([i for _, i in at])
        loss = [100 * (f - i) for f, i in at]
        worst_mean = max(worst_mean, 100 * (f_mean - i_mean))
        lines.append(f"| {d} | {f_mean:.3f} | {i_mean:.3f} | {100 * (f_mean - i_mean):+.2f} | {max(loss):+.1f} | "
                     f"{-min(loss):+.1f} |")
    lines += ["", f"- INT8 loss of mean held-out recall@1: at most **{worst_mean:.2f} points** over the dims (goal <= "
              f"{GOAL_POINTS:.0f}: {'met' if worst_mean <= GOAL_POINTS else 'NOT met'}); worst single pair "
              f"{max(deltas):+.1f} points, mean over all pairs and dims {np.mean(deltas):+.2f}", "",
              "| dim | query->gallery | fp32 R@1 | INT8 R@1 | loss (points) |", "|---|---|---|---|---|"]
    lines += [f"| {d} | {pair} | {f:.3f} | {i:.3f} | {100 * (f - i):+.1f} |" for d, pair, f, i in rows]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def export(run_dir: Path, threads: int) -> Path:
    import torch

    from omniembed.export import export_run

    torch.set_num_threads(threads)
    return export_run(run_dir, Path(tempfile.mkdtemp(prefix="int8_recall_")) / "bundle", int8=True)


if __name__ == "__main__":
    sys.exit(main())
