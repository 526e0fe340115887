"""Early fusion (one trunk over every modality's tokens) against late fusion (one tower per modality, joined
only at the embedding) at the same parameter count, steps, batches and training tokens.

    .venv/bin/python -m bench.fusion [--config small] [--out runs/fusion] [--seeds 0,1]
                                     [key=value ...]

The config and overrides are those of `python -m omniembed.train` (default: the demo's `small` config;
e.g. loop.steps=100 data.synth_n=400 tokenizers=DIR data.manifest=FILE to reuse prepared data); the two arms
differ only in `model.kind` (early | late, see omniembed.model.build_model), which this script sets (both with
`model.code_features=none`: late fusion's towers have no code features).
Stages 0-2 of omniembed.train (data, tokenizers, tokenized corpus) run once into OUT/shared; both arms then
train from the same seed on the same stream of batches, so they see the same tokens in the same order.

Measured on the held-out split (items whose attribute combinations training never saw):
  - recall@1 for every query->target modality pair at the full Matryoshka dim (omniembed.evaluate);
  - next-token cross-entropy on held-out caption sequences ("<bos> media caption <eos>"), split by target:
    caption words (need the media to be predicted well) and media codes;
  - how often greedy captions of held-out images name the item's colour / shape.
Writes bench/results/fusion.md and bench/results/fusion.png (the command, machine and date included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import command_line, results_header
from omniembed.train import config as runconfig
from omniembed.train import stages
from omniembed.train.evaluate import evaluation_record, headline
from omniembed.model import MODEL_KINDS, build_model, config_for_vocabulary
from omniembed.model.late_fusion import block_params
from omniembed.train.losses import IGNORE_INDEX, lm_targets
from omniembed.train.batches import TrainStream, pad_batch
from omniembed.train.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"
MODALITIES = ("text", "image", "audio", "video", "interleaved")
PAIRS = tuple(f"{q}->{g}" for q in MODALITIES for g in MODALITIES if q != g)


def prepare(cfg: runconfig.RunConfig, shared: Path):
    """Stages 0-2 of omniembed.train, once for both arms: (corpus, document tokenizer)."""
    from omniembed.tokenization.document import DocumentTokenizer
    from omniembed.tokenization.store import load_tokenizers

    shared.mkdir(parents=True, exist_ok=True)
    manifest, heldout = stages.resolve_data(cfg, shared)
    tok_dir = stages.prepare_tokenizers(cfg, shared, manifest)
    toks = load_tokenizers(tok_dir)
    doc_tok = DocumentTokenizer.from_tokenizers(toks.text, toks.image, toks.audio, video_fps=toks.config.video_fps)
    key = stages.fingerprint(manifest, heldout, tok_dir, cfg)
    cache = Path(cfg.data.corpus_cache) if getattr(cfg.data, "corpus_cache", None) else shared
    corpus = stages.prepare_corpus(manifest, heldout, tok_dir, doc_tok, toks.config.video_fps, toks.config.sample_rate,
                              cache, key, cfg.data.workers)
    return corpus, doc_tok


@torch.no_grad()
def heldout_lm(model, corpus, vocab, max_tokens: int, batch: int = 16) -> dict:
    """Next-token cross-entropy on held-out caption sequences, over all targets and split by target kind."""
    seqs = []
    for i in corpus.split("heldout"):
        item = corpus.items[i]
        if item.texts:
            for v in ("image", "audio", "video"):
                if v in item.blocks:
                    seq = corpus.caption_sequence(item, v, 0, max_tokens)
                    seqs.append(seq[0] if isinstance(seq, tuple) else seq)  # (ids, prompt length) or ids
    if not seqs:
        return {}
    was = model.training
    model.eval()
    sums = {"all": 0.0, "text": 0.0, "media": 0.0}
    counts = {k: 0 for k in sums}
    text = torch.as_tensor(list(vocab.text_range))
    for start in range(0, len(seqs), batch):
        ids, mask = pad_batch(seqs[start:start + batch], corpus.specials["pad"])
        logits = model.forward_lm(ids, mask).float()  # (B, T, V)
        targets = lm_targets(ids, mask, IGNORE_INDEX)
        valid = targets != IGNORE_INDEX
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets.clamp(min=0), reduction="none")
        is_text = torch.isin(targets, text) & valid
        is_media = (targets >= vocab.image_range.start) & valid
        for name, sel in (("all", valid), ("text", is_text), ("media", is_media)):
            sums[name] += float(ce[sel].sum())
            counts[name] += int(sel.sum())
    model.train(was)
    return {k: sums[k] / max(counts[k], 1) for k in sums} | {"sequences": len(seqs)}


def run_arm(kind: str, cfg: runconfig.RunConfig, corpus, doc_tok, seed: int) -> dict:
    """Train one arm from `seed` on the shared stream; returns its curves, evaluation and costs."""
    model_cfg = config_for_vocabulary(cfg.model, doc_tok.vocab, image_tokens=doc_tok.tokens_per_image or 0)
    torch.manual_seed(seed)
    model = build_model(kind, model_cfg, doc_tok.vocab)
    tcfg = runconfig.from_dict(cfg.to_dict()).train  # a fresh copy: Trainer keeps it
    tcfg.total_steps = cfg.loop.steps
    trainer = Trainer(model, tcfg)
    stream = TrainStream(corpus, cfg.loop, cfg.data, seed)
    curve = {"step": [], "con": [], "lm": []}
    tokens = 0
    t0 = time.perf_counter()
    while trainer.step < cfg.loop.steps:
        step = trainer.step + 1
        pairs, _ = stream.pair_batch(step)
        lm = stream.lm_batch(step)
        res = trainer.train_step(lm=lm, pairs=pairs)
        if res.skipped:
            continue
        tokens += pairs.tokens() + (0 if lm is None else int(lm.pad_mask.sum()))
        curve["step"].append(res.step)
        curve["con"].append(res.stats.get("con/loss", float("nan")))
        curve["lm"].append(res.stats.get("lm/ce", float("nan")))
        if cfg.loop.log_every and res.step % cfg.loop.log_every == 0:
            print(f"  {kind} seed {seed} step {res.step}: con {curve['con'][-1]:.3f} lm {curve['lm'][-1]:.3f}",
                  flush=True)
    train_s = time.perf_counter() - t0
    record = evaluation_record(model, corpus, cfg, doc_tok, trainer.step)
    shape = model.cfg
    # each token passes through one stack of blocks (late: its own tower's): trunk FLOPs/token ~ 2x this, forward
    per_token = shape.n_layers * block_params(shape.d_model, shape.ffn_hidden, shape.head_dim)
    return {"kind": kind, "seed": seed, "params": model.num_params(), "tokens": tokens, "train_s": train_s,
            "per_token": per_token,
            "skipped": trainer.skipped_total, "curve": curve, "eval": record,
            "lm_heldout": heldout_lm(model, corpus, doc_tok.vocab, cfg.data.lm_max_len),
            "shape": f"{'3 towers x ' if kind == 'late' else ''}{shape.n_layers} layers, d_model {shape.d_model}, "
                     f"ffn {shape.ffn_hidden}"}


def recall_at(rec: dict, dim: int, pair: str) -> float | None:
    table = rec["eval"].get("recall", {}).get("dims", {}).get(dim, {})
    r = table.get(pair)
    return None if r is None else r[1]


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def fmt(x, digits=2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def summarise(runs: list[dict], dim: int) -> dict:
    """Per kind: mean over seeds of R@1 per pair, held-out LM CE, caption rates, costs."""
    out = {}
    for kind in MODEL_KINDS:
        rs = [r for r in runs if r["kind"] == kind]
        if not rs:
            continue
        pairs = {p: mean([recall_at(r, dim, p) for r in rs]) for p in PAIRS}
        caps = [r["eval"].get("captions") for r in rs if r["eval"].get("captions")]
        out[kind] = {
            "pairs": pairs, "mean_r1": mean(list(pairs.values())),
            "lm": {k: mean([r["lm_heldout"].get(k) for r in rs]) for k in ("all", "text", "media")},
            "colour": mean([c["colour"] for c in caps]), "shape": mean([c["shape"] for c in caps]),
            "params": rs[0]["params"], "tokens": [r["tokens"] for r in rs], "train_s": mean([r["train_s"] for r in rs]),
            "desc": rs[0]["shape"], "skipped": sum(r["skipped"] for r in rs), "per_token": rs[0]["per_token"],
        }
    return out


def write_report(runs, summary, dim, cfg, cmd, load, out_md: Path, out_png: Path, n_items,
                 note: str = "") -> None:
    e, l = summary.get("early"), summary.get("late")
    caps = next((r["eval"]["captions"] for r in runs if r["eval"].get("captions")), {})
    seeds = sorted({r["seed"] for r in runs})
    lines = results_header("Early fusion vs late fusion at equal parameters and training tokens", cmd)[:-1] + [
        f"- torch threads {cfg.loop.threads}, fp32 (load average after: {load[1]:.1f})",
        f"- data: synthetic world of {cfg.data.synth_n} items (seed {cfg.data.synth_seed}) generated by the command"
        if cfg.data.manifest is None else f"- data: {cfg.data.manifest}",
        f"- held out: {n_items} items whose attribute combinations training never saw; a hit is an item with the "
        "query's exact attribute set",
        f"- training: {cfg.loop.steps} steps, pair batch {cfg.loop.pair_batch}, LM batch {cfg.loop.lm_batch} every "
        f"{cfg.loop.lm_every} step(s), lr {cfg.train.lr}, model {cfg.model.get('d_model')} wide x {cfg.model.get('n_layers')} layers; seeds {seeds} "
        "(numbers are means over seeds); both arms read the same batches in the same order",
        "- early: omniembed.model.OmniModel, one trunk over all tokens; late: omniembed.late_fusion.LateFusionModel, "
        "text/image/audio towers (video = image tower over frames + audio tower over its track) that never see "
        "each other's tokens, pooled separately, averaged, one shared Matryoshka projection",
        *([f"- note: {note}"] if note else []),
        "",
        "| | early fusion | late fusion |",
        "|---|---:|---:|",
    ]
    if e and l:
        lines += [
            f"| shape | {e['desc']} | {l['desc']} |",
            f"| parameters | {e['params']:,} | {l['params']:,} ({(l['params'] - e['params']) / e['params']:+.1%}) |",
            f"| training tokens (per seed) | {', '.join(f'{t:,}' for t in e['tokens'])} | "
            f"{', '.join(f'{t:,}' for t in l['tokens'])} |",
            f"| block parameters a token passes through (trunk FLOPs/token ~ 2x, forward) | {e['per_token']:,} | "
            f"{l['per_token']:,} ({l['per_token'] / e['per_token']:.2f}x) |",
            f"| training time (s, mean) | {e['train_s']:.0f} | {l['train_s']:.0f} |",
            f"| skipped steps | {e['skipped']} | {l['skipped']} |",
            f"| **mean held-out R@1 over {sum(v is not None for v in e['pairs'].values())} pairs, dim {dim}** | "
            f"**{fmt(e['mean_r1'])}** | **{fmt(l['mean_r1'])}** |",
        ]
        for p in PAIRS:
            if e["pairs"][p] is not None or l["pairs"][p] is not None:
                lines.append(f"| R@1 {p} | {fmt(e['pairs'][p])} | {fmt(l['pairs'][p])} |")
        lines += [
            f"| held-out next-token CE, all targets | {fmt(e['lm']['all'], 3)} | {fmt(l['lm']['all'], 3)} |",
            f"| ... caption words after the media | {fmt(e['lm']['text'], 3)} | {fmt(l['lm']['text'], 3)} |",
            f"| ... media codes | {fmt(e['lm']['media'], 3)} | {fmt(l['lm']['media'], 3)} |",
            f"| greedy image captions name the colour (chance {fmt(caps.get('colour_chance'))}) | {fmt(e['colour'])} | "
            f"{fmt(l['colour'])} |",
            f"| ... name the shape (chance {fmt(caps.get('shape_chance'))}) | {fmt(e['shape'])} | {fmt(l['shape'])} |",
            "",
            f"Late / early mean R@1: {fmt(l['mean_r1'] / e['mean_r1'] if e['mean_r1'] else None)}x; "
            f"late / early training time: {l['train_s'] / e['train_s']:.2f}x.",
        ]
    lines += [
        "",
        "Reading the numbers:",
        "- equal parameters is not equal compute: a late-fusion token runs through one narrower tower, so its "
        "trunk FLOPs per token are the ratio in the table (Shukor et al. compare at equal FLOPs; this is the "
        "equal-parameter, equal-token point of the comparison);",
        "- the late model's next-token head is partitioned by modality (tower m scores modality m's ids), an "
        "inductive bias the early trunk's single head lacks: lower media-code CE can come from that partition, not "
        "from fusion; its caption words are predicted without the media (the towers never meet), so its caption "
        "rates are its prior over words, a baseline for the early model's.",
        "",
        f"![early vs late fusion]({out_png.name})",
        "",
    ]
    per_seed = ["| kind | seed | mean R@1 | LM CE (all) | tokens |", "|---|---:|---:|---:|---:|"]
    for r in runs:
        r1 = mean([recall_at(r, dim, p) for p in PAIRS])
        per_seed.append(f"| {r['kind']} | {r['seed']} | {fmt(r1)} | {fmt(r['lm_heldout'].get('all'), 3)} | "
                        f"{r['tokens']:,} |")
    lines += ["Per seed:", "", *per_seed, ""]
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text("\n".join(lines))
    plot(runs, summary, dim, out_png)


def smooth(xs, k: int = 10) -> np.ndarray:
    xs = np.asarray(xs, dtype=float)
    if len(xs) < k:
        return xs
    return np.convolve(xs, np.ones(k) / k, mode="valid")


def plot(runs, summary, dim, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    colours = {"early": "tab:blue", "late": "tab:orange"}
    ax = axes[0]
    pairs = [p for p in PAIRS if any(summary[k]["pairs"][p] is not None for k in summary)]
    x = np.arange(len(pairs))
    for j, kind in enumerate(summary):
        vals = [summary[kind]["pairs"][p] or 0.0 for p in pairs]
        ax.bar(x + (j - 0.5) * 0.4, vals, 0.4, label=f"{kind} fusion", color=colours[kind])
    ax.set_xticks(x, pairs, rotation=45, ha="right")
    ax.set_ylabel(f"held-out recall@1 (dim {dim})")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("cross-modal retrieval")
    for ax, key, title in ((axes[1], "con", "contrastive loss (train)"), (axes[2], "lm", "next-token CE (train)")):
        for r in runs:
            ys = smooth(r["curve"][key])
            ax.plot(np.arange(len(ys)) + 1, ys, color=colours[r["kind"]], alpha=0.8,
                    label=f"{r['kind']} s{r['seed']}")
        ax.set_xlabel("step (10-step mean)")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fusion", description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small", help="training config (a packaged name or a YAML path), as omniembed train takes")
    p.add_argument("--out", type=Path, default=Path("runs/fusion"), help="work directory (data, tokenizers)")
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=[0],
                   help="comma-separated seeds, e.g. 0,1 (each trains both arms)")
    p.add_argument("--note", default="", help="a line for the report (e.g. where reused data came from)")
    p.add_argument("--results", type=Path, default=RESULTS, help="where fusion.md / fusion.png go")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="omniembed.train config overrides (dotted keys)")
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]
    data = runconfig.load_dict(args.config, args.overrides)
    (data.get("model") or {}).pop("kind", None)  # each arm sets its own kind
    # late fusion's towers embed media codes by their own rows: both arms do, so they differ in the kind only
    data.setdefault("model", {})["code_features"] = "none"
    data["model"]["image_dropout"] = 0.0  # a drop of image codes by id: the early trunk's alone
    cfg = runconfig.from_dict(data, source=args.config)
    torch.set_num_threads(cfg.loop.threads)
    corpus, doc_tok = prepare(cfg, args.out / "shared")
    dim = max(config_for_vocabulary(cfg.model, doc_tok.vocab, image_tokens=doc_tok.tokens_per_image or 0).embed_dims)
    runs = []
    for seed in args.seeds:
        for kind in MODEL_KINDS:
            print(f"training {kind} fusion, seed {seed}", flush=True)
            runs.append(run_arm(kind, cfg, corpus, doc_tok, seed))
            print(f"  {kind}: {headline(runs[-1]['eval'])}; held-out LM {runs[-1]['lm_heldout']}", flush=True)
    summary = summarise(runs, dim)
    cmd = command_line(argv, "bench.fusion")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.out / "fusion_runs.json").write_text(json.dumps(runs, default=str))
    write_report(runs, summary, dim, cfg, cmd, (load_before, os.getloadavg()[0]),
                 args.results / "fusion.md", args.results / "fusion.png", len(corpus.split("heldout")), args.note)
    print(f"wrote {args.results / 'fusion.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
