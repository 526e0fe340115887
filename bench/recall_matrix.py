"""Held-out recall matrix: recall@1/5/10 for every query->target modality pair at every Matryoshka dim.

    python -m bench.recall_matrix RUN_DIR [--manifest HELDOUT.jsonl] [--max-items N] [--out DIR]

Every view of every held-out item (its first caption, image, sound, video) and every held-out interleaved
document is embedded from its files by the TorchEmbedder of the trained run (omniembed.model.embedder: the same
decode -> tokens -> trunk path a user calls), once at full width; each Matryoshka dim is the renormalised
prefix. The metric is omniembed.evaluate.recall_at_k, the one training evaluates with: a hit is a retrieved
item whose attribute set equals the query's exactly, so items sharing all attributes with the query count.
The gallery of a pair is every held-out view of the target modality; same-modality pairs are left out.

Writes DIR/recall_matrix.md (one table per dim, with the chance level of each pair) and
DIR/recall_matrix.png (one heatmap panel per dim). DIR defaults to bench/results.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import RESULTS, command_line, results_header

MODALITIES = ("text", "image", "audio", "video", "interleaved")
KS = (1, 5, 10)


@dataclass
class Views:
    """Inputs of one modality for the TorchEmbedder, and the key a hit must match (the attribute set)."""

    inputs: list
    keys: list[str]
    ids: list[str]


# ---- which records, which views ---------------------------------------------------------------------------
def heldout_manifests(run_config: dict, run_dir: Path) -> tuple[Path, Path | None]:
    """(training manifest, held-out manifest or None) as omniembed.train resolved them for this run."""
    data = run_config.get("data") or {}
    manifest = Path(data["manifest"]) if data.get("manifest") else run_dir / "world" / "manifest.jsonl"
    if not manifest.is_absolute() and not manifest.is_file():
        manifest = run_dir / manifest
    heldout = Path(data["heldout"]) if data.get("heldout") else manifest.with_name("heldout.jsonl")
    return manifest, heldout if heldout.is_file() else None


def load_heldout(run_config: dict, run_dir: Path, manifest: Path | None = None) -> list:
    """Held-out records: those of `manifest` when given, else the run's held-out file plus any record of
    its training manifest marked split=heldout."""
    from omniembed.data.manifest import load_manifest
    from omniembed.errors import ManifestError

    if manifest is not None:
        return load_manifest(manifest)
    train, heldout = heldout_manifests(run_config, run_dir)
    records = load_manifest(heldout) if heldout is not None else []
    if train.is_file():
        records += [r for r in load_manifest(train) if r.split == "heldout"]
    if not records:
        raise ManifestError(f"{run_dir}: no held-out records (looked in {heldout or train}); "
                            "pass --manifest HELDOUT.jsonl")
    return records


def attribute_key(attributes: dict, fallback: str) -> str:
    """The identity a hit must share with the query: the whole attribute set, or the record id without one."""
    return json.dumps(attributes, sort_keys=True) if attributes else fallback


def collect_views(records: list, max_items: int | None = None) -> dict[str, Views]:
    """Per modality, the TorchEmbedder inputs: first caption, media paths, documents as segment lists."""
    from omniembed.data.manifest import Document, Item

    items = [r for r in records if isinstance(r, Item)][:max_items]
    kept = {it.id for it in items}
    views = {m: Views([], [], []) for m in MODALITIES}

    def add(modality, x, key, rid):
        views[modality].inputs.append(x)
        views[modality].keys.append(key)
        views[modality].ids.append(rid)

    for it in items:
        key = attribute_key(it.attributes, it.id)
        if it.texts:
            add("text", it.texts[0], key, it.id)
        for m in ("image", "audio", "video"):
            if m in it.media:
                add(m, _media_input(it.media[m]), key, it.id)
    by_id = {it.id: it for it in items}
    for doc in (r for r in records if isinstance(r, Document)):
        members = (doc.meta or {}).get("items", [])
        if max_items is not None and not set(members) <= kept:
            continue
        attrs = doc.attributes or (by_id[members[0]].attributes if len(members) == 1 and members[0] in by_id
                                   else {})
        if not attrs:  # a document about several things has no one identity to match
            continue
        add("interleaved", [s.text if s.media is None else _media_input(s.media) for s in doc.segments],
            attribute_key(attrs, doc.id), doc.id)
    return {m: v for m, v in views.items() if v.inputs}


def _media_input(media):
    return Path(media.source) if media.data is None and not media.is_url else media.read_bytes()


# ---- the matrix ---------------------------------------------------------------------------------------------
def chance_recall(query_keys: list[str], gallery_keys: list[str], k: int) -> float:
    """Expected recall@k of a random ranking: 1 - C(G-m, k) / C(G, k) per query, m = matching gallery rows."""
    G = len(gallery_keys)
    counts: dict[str, int] = {}
    for g in gallery_keys:
        counts[g] = counts.get(g, 0) + 1
    out = []
    for q in query_keys:
        m = counts.get(q, 0)
        miss = 1.0
        for i in range(min(k, G)):  # product of (G-m-i)/(G-i): no match among the first k draws
            miss *= max(G - m - i, 0) / (G - i)
        out.append(1.0 - miss)
    return float(np.mean(out)) if out else 0.0


def answerable_rows(query_keys: list[str], gallery_keys: list[str]) -> list[int]:
    """Queries with at least one hit in the gallery: a query whose item has no view there cannot be scored."""
    present = set(gallery_keys)
    return [i for i, k in enumerate(query_keys) if k in present]


def matrix_from_embeddings(full: dict[str, np.ndarray], views: dict[str, Views], dims, ks=KS) -> dict:
    """{"dims": {d: {"q->t": {k: recall}}}, "chance": {"q->t": {k: p}}, "counts": {m: n}} from full-width
    embeddings; each dim is the L2-renormalised prefix, scored by omniembed.evaluate.recall_at_k.
    A pair scores only the queries that have a hit in its gallery ("queries": {"q->t": n})."""
    from omniembed.train.evaluate import recall_at_k

    out: dict = {"counts": {m: len(v.inputs) for m, v in views.items()}, "dims": {}, "chance": {}, "queries": {}}
    answerable = {(q, t): answerable_rows(views[q].keys, views[t].keys) for q in full for t in full if q != t}
    pairs = [pair for pair, rows in answerable.items() if rows]
    for d in dims:
        prefix = {m: e[:, :d] / np.maximum(np.linalg.norm(e[:, :d], axis=1, keepdims=True), 1e-12)
                  for m, e in full.items()}
        table = {}
        for q, t in pairs:
            rows = answerable[(q, t)]
            table[f"{q}->{t}"] = recall_at_k(prefix[q][rows], prefix[t], [views[q].keys[i] for i in rows],
                                             views[t].keys, ks)
        out["dims"][int(d)] = table
    for q, t in pairs:
        rows = answerable[(q, t)]
        out["chance"][f"{q}->{t}"] = {k: chance_recall([views[q].keys[i] for i in rows], views[t].keys, k)
                                      for k in ks}
        out["queries"][f"{q}->{t}"] = len(rows)
    return out


def compute(run_dir: str | Path, manifest: str | Path | None = None, max_items: int | None = None,
            threads: int = 2, batch_size: int = 16) -> dict:
    """Load the run, embed every held-out view at full width, and score every pair at every trained dim."""
    import torch

    from omniembed.model.embedder import TorchEmbedder
    from omniembed.train.rundir import load_run

    torch.set_num_threads(threads)
    run = load_run(run_dir)
    embedder = TorchEmbedder.from_run(run, batch_size=batch_size)
    views = collect_views(load_heldout(run.config, Path(run_dir), Path(manifest) if manifest else None),
                          max_items)
    full = {}
    for m, v in views.items():
        print(f"embedding {len(v.inputs)} {m} views", file=sys.stderr, flush=True)
        full[m] = embedder.embed(v.inputs)  # (N, max dim)
    result = matrix_from_embeddings(full, views, embedder.dims)
    result.update(run=str(run_dir), step=run.step, model=run.config.get("model", {}).get("size", "?"),
                  items=len({i for m, v in views.items() if m != "interleaved" for i in v.ids}))
    return result


# ---- reporting ----------------------------------------------------------------------------------------------
def _cell(q: str, t: str, table: dict, ks) -> str:
    if q == t:
        return "—"
    r = table.get(f"{q}->{t}")
    return "n/a" if r is None else " / ".join(f"{r[k]:.2f}" for k in ks)


def markdown_tables(result: dict, ks=KS) -> list[str]:
    mods = list(result["counts"])
    lines = []
    for d, table in result["dims"].items():
        lines += [f"## dim {d}", "", f"recall@{'/'.join(map(str, ks))} (rows: query modality, columns: target)", "",
                  "| query \\ target | " + " | ".join(mods) + " |", "|---|" + "---:|" * len(mods)]
        for q in mods:
            cells = [_cell(q, t, table, ks) for t in mods]
            lines.append(f"| **{q}** | " + " | ".join(cells) + " |")
        mean1 = np.mean([r[ks[0]] for r in table.values()])
        lines += ["", f"mean recall@{ks[0]} over the {len(table)} pairs: {mean1:.3f}", ""]
    lines += ["## chance level", "",
              f"recall@{'/'.join(map(str, ks))} of a random ranking of the same galleries (duplicates of an "
              "attribute set make it higher than k/G)", "",
              "| query \\ target | " + " | ".join(mods) + " |", "|---|" + "---:|" * len(mods)]
    for q in mods:
        cells = [_cell(q, t, result["chance"], ks) for t in mods]
        lines.append(f"| **{q}** | " + " | ".join(cells) + " |")
    return lines + [""]


def plot(result: dict, path: Path, k: int = 1) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mods = list(result["counts"])
    dims = list(result["dims"])
    fig, axes = plt.subplots(1, len(dims), figsize=(3.9 * len(dims) + 0.8, 3.6), squeeze=False)
    for ax, d in zip(axes[0], dims):
        grid = np.full((len(mods), len(mods)), np.nan)
        for i, q in enumerate(mods):
            for j, t in enumerate(mods):
                if f"{q}->{t}" in result["dims"][d]:
                    grid[i, j] = result["dims"][d][f"{q}->{t}"][k]
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        for i in range(len(mods)):
            for j in range(len(mods)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if grid[i, j] < 0.6 else "black")
        ax.set_xticks(range(len(mods)), [m[:5] for m in mods], rotation=45, fontsize=7)
        ax.set_yticks(range(len(mods)), [m[:5] for m in mods], fontsize=7)
        ax.set_title(f"dim {d}", fontsize=9)
        ax.set_xlabel("target", fontsize=7)
    axes[0][0].set_ylabel("query", fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label=f"recall@{k}")
    fig.suptitle(f"held-out recall@{k}, exact attribute-set match ({result.get('model', '?')}, "
                 f"step {result.get('step', '?')})", fontsize=9)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def write_results(result: dict, out_dir: Path, command: str, plot_k: int = 1) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = ", ".join(f"{n} {m}" for m, n in result["counts"].items())
    lines = results_header("Cross-modal recall matrix (held-out items)", command) + [
        f"- run: `{result['run']}` (model `{result['model']}`, step {result['step']}); "
        f"{result['items']} held-out items; views: {counts}",
        "- **hit = a retrieved item whose attribute set equals the query's exactly** (shape, colour, size, "
        "position, motion on the synthetic world); other items with the same attributes count as hits",
        "- every view embedded from its files by the TorchEmbedder (omniembed.model.embedder); each dim is the "
        "renormalised prefix of the full vector; metric: omniembed.evaluate.recall_at_k",
        "- text = the item's first caption; interleaved = a held-out document (text with media) about one item",
        "- gallery of a pair = every held-out view of the target modality; cells are recall@1 / @5 / @10",
        "- a pair scores the queries that have at least one hit among its targets (not every held-out item has an "
        "interleaved document); queries per pair: " + ", ".join(f"{p} {n}" for p, n in result["queries"].items()
                                                                 if n != result["counts"][p.split("->")[0]])
        + (" (all others: every query)" if result["queries"] else ""),
        f"- heatmap: recall_matrix.png (recall@{plot_k}, one panel per dim)", ""]
    md = out_dir / "recall_matrix.md"
    md.write_text("\n".join(lines + markdown_tables(result)))
    png = out_dir / "recall_matrix.png"
    plot(result, png, plot_k)
    return md, png


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.recall_matrix", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="a training run directory (python -m omniembed.train)")
    p.add_argument("--manifest", help="held-out manifest to score instead of the run's own held-out split")
    p.add_argument("--max-items", type=int, help="score only the first N held-out items (quick look)")
    p.add_argument("--out", default=str(RESULTS), help="results folder (default bench/results)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--plot-k", type=int, default=1, choices=KS, help="recall@k shown in the heatmap")
    args = p.parse_args(argv)
    result = compute(args.run_dir, args.manifest, args.max_items, args.threads)
    md, png = write_results(result, Path(args.out), command_line(argv, "bench.recall_matrix"), args.plot_k)
    print(f"wrote {md} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
