"""`omniembed eval BUNDLE_OR_RUN [--manifest heldout.jsonl] [--out DIR]`: the recall benchmark on any manifest.

Every view of every item (first caption, image, audio, video, and a document about one item) is embedded from
its files, through ONNX Runtime for a bundle (omniembed.runtime, no torch) or torch for a training run
(omniembed.model.embedder, at the run's view length), and every ordered pair of the modalities present is
scored at every Matryoshka dim: recall@1/5/10 and mAP, with the chance level (omniembed.eval.matrix).
Writes DIR/recall_matrix.{md,json,png}. The hit rule defaults to the one the model was trained and
evaluated with (a run's or bundle's `eval` settings); see omniembed.eval.hits.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from omniembed.errors import ConfigError, ManifestError, MediaError, OmniEmbedError
from omniembed.eval import hits as H
from omniembed.eval.matrix import collect_views, matrix_from_embeddings
from omniembed.eval.report import write


class _Model:
    """What the command needs of either kind of model: embed(inputs) -> (N, D), dims, a name, the eval settings."""

    def __init__(self, embed, dims, name: str, eval_settings: dict, heldout=None):
        self.embed, self.dims, self.name, self.eval_settings = embed, dims, name, eval_settings
        self.heldout = heldout  # () -> (records, where), for a run


def load_model(path: Path, threads: int | None, batch: int) -> _Model:
    if (path / "manifest.json").is_file():
        from omniembed.runtime import Embedder

        emb = Embedder.load(path, threads=threads, spin=False)
        settings = emb.manifest.get("eval") or {}
        return _Model(lambda xs: emb.embed(xs, batch_size=batch), emb.dims, f"bundle {path} (ONNX Runtime)",
                      settings, None)
    if (path / "train.yaml").is_file():
        import torch

        from omniembed.model.embedder import TorchEmbedder
        from omniembed.train.rundir import heldout_records, load_run

        if threads:
            torch.set_num_threads(threads)
        run = load_run(path)
        data = run.config.get("data") or {}
        emb = TorchEmbedder.from_run(run, max_tokens=data.get("max_view_tokens"), batch_size=batch)
        return _Model(emb.embed, emb.dims, f"run {path} at step {run.step} (torch)", run.config.get("eval") or {},
                      lambda: heldout_records(run.config, path))
    raise ConfigError(f"{path}: neither a bundle (manifest.json, from omniembed export) nor a training run "
                      "(train.yaml, from omniembed train)")


def embed_views(model: _Model, views, chunk: int = 64) -> tuple[dict[str, np.ndarray], dict[str, list], list[str]]:
    """Full-width vectors and hit keys per modality; a view that fails to embed is left out and reported."""
    full, keys, skipped = {}, {}, []
    total = sum(len(v.inputs) for v in views.values())
    with tqdm(total=total, desc="embed", unit="view", file=sys.stderr) as bar:
        for m, v in views.items():
            rows, kept = [], []
            for start in range(0, len(v.inputs), chunk):
                part = list(range(start, min(start + chunk, len(v.inputs))))
                try:
                    rows.append(model.embed([v.inputs[i] for i in part]))
                    kept += part
                except (MediaError, OmniEmbedError, ValueError):
                    for i in part:  # find the bad view(s), keep the rest
                        try:
                            rows.append(model.embed([v.inputs[i]]))
                            kept.append(i)
                        except (MediaError, OmniEmbedError, ValueError) as err:
                            skipped.append(f"{m} view of {v.ids[i]}: {err}")
                bar.update(len(part))
            if kept:
                full[m] = np.concatenate(rows).astype(np.float32)
                keys[m] = [v.keys[i] for i in kept]
    return full, keys, skipped


def evaluate(path: Path, manifest: Path | None = None, hit: str | None = None, label: str | None = None,
             max_items: int | None = None, threads: int | None = None, batch: int = 32) -> dict:
    from omniembed.data.manifest import load_manifest

    model = load_model(path, threads, batch)
    if manifest is not None:
        records, source = load_manifest(manifest), str(manifest)
    elif model.heldout is not None:
        records, source = model.heldout()
    else:
        raise ConfigError(f"{path}: pass --manifest, the items to score (a bundle does not know its held-out set)")
    label = label if label is not None else model.eval_settings.get("label")
    rule = H.resolve_rule(hit or model.eval_settings.get("hit", "auto"), label,
                          (getattr(r, "attributes", None) for r in records))
    views = collect_views(records, rule, label, max_items)
    if not views:
        raise ManifestError(f"{source}: no item views to score (with hit rule {rule!r})")
    full, keys, failed = embed_views(model, views)
    result = matrix_from_embeddings(full, keys, model.dims)
    result.update(model=model.name, manifest=str(source), hit=rule, label=label, hit_rule=H.describe(rule, label),
                  items=len({i for m, v in views.items() if m != "interleaved" for i in v.ids}), failed_views=failed)
    return result


def title(command: str) -> list[str]:
    return ["# Cross-modal recall matrix", "", f"- command: `{command}`",
            f"- machine: {platform.machine()} {platform.processor() or ''}".rstrip(),
            f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}"]


def header(result: dict) -> list[str]:
    """What a result was measured on and how (the lines after the title, command, machine and date)."""
    counts = ", ".join(f"{n} {m}" for m, n in result["counts"].items())
    lines = [f"- model: {result['model']}", f"- items: {result['items']} from `{result['manifest']}`; views: {counts}",
             f"- **hit ({result['hit']}): {result['hit_rule']}**",
             "- text = an item's first caption; interleaved = a document about exactly one item",
             "- gallery of a pair = every view of the target modality; a pair scores the queries with at least one "
             "hit there; cells are recall@1 / @5 / @10 (mAP); each dim is the renormalised prefix of the full vector"]
    if result["failed_views"]:
        lines.append(f"- views that did not embed, left out ({len(result['failed_views'])}): "
                     + "; ".join(result["failed_views"][:5]) + (" ..." if len(result["failed_views"]) > 5 else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="omniembed eval", description=__doc__.splitlines()[0])
    p.add_argument("model", help="a bundle (omniembed export) or a training run directory (omniembed train)")
    p.add_argument("--manifest", help="the items to score (default for a run: its held-out split)")
    p.add_argument("--out", default="eval", help="folder for recall_matrix.{md,json,png} (default ./eval)")
    p.add_argument("--hit", choices=H.HIT_RULES, help="hit rule (default: the model's own, else auto)")
    p.add_argument("--label", help="with --hit label: the attribute whose value must match")
    p.add_argument("--max-items", type=int, help="score only the first N items (a quick look)")
    p.add_argument("--threads", type=int, help="torch / ONNX Runtime threads")
    p.add_argument("--batch", type=int, default=32, help="inputs per model call")
    p.add_argument("--plot-k", type=int, default=1, choices=(1, 5, 10), help="recall@k shown in the heatmap")
    args = p.parse_args(argv)
    try:
        result = evaluate(Path(args.model), Path(args.manifest) if args.manifest else None, args.hit, args.label,
                          args.max_items, args.threads, args.batch)
    except (ConfigError, ManifestError) as err:
        print(f"omniembed eval: {err}", file=sys.stderr)
        return 2
    command = "omniembed eval " + " ".join(sys.argv[1:] if argv is None else argv)
    written = write(result, Path(args.out), title(command) + header(result), plot_k=args.plot_k,
                    title=f"recall@{args.plot_k}, hit: {result['hit']}")
    full = max(result["dims"])
    print(json.dumps({"wrote": {k: str(v) for k, v in written.items()}, "hit": result["hit"],
                      f"R@1 dim {full}": {pair: round(r[1], 4) for pair, r in result["dims"][full].items()},
                      "skipped": result["skipped"]}, indent=1))
    return 0
