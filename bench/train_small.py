"""The `small` training on the synthetic world and its held-out recall: bench/results/train_small.md.

    python -m bench.train_small --out RUN_DIR [key=value ...]     train the small config, then report
    python -m bench.train_small --report RUN_DIR [--command "..."]  report an existing run

The report holds the command, the wall time, the full held-out recall@1/5/10 matrix at every Matryoshka
dim (a hit = the retrieved item has exactly the query's attribute set), the recall targets checked, and
how often captions of held-out images name the item's colour and shape against chance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.common import command_line, results_header

RESULTS = Path(__file__).resolve().parent / "results" / "train_small.md"
TARGET_PAIRS = ("text->image", "image->text", "text->audio", "audio->text", "text->video", "video->text",
                "image->audio")
MODALITIES = ("text", "image", "audio", "video")


def matrix_lines(table: dict, k: str) -> list[str]:
    lines = ["| query \\ target | " + " | ".join(MODALITIES) + " |", "|---|" + "---|" * len(MODALITIES)]
    for q in MODALITIES:
        cells = ["—" if q == g else (f"{table[f'{q}->{g}'][k]:.3f}" if f"{q}->{g}" in table else "n/a")
                 for g in MODALITIES]
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    return lines


def attribute_misses(run_dir: Path) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Per target pair, the share of held-out queries whose top-1 (full dim) differs in each attribute."""
    import torch
    import torch.nn.functional as F

    from omniembed.train.corpus import Corpus
    from omniembed.train.evaluate import embed_sequences
    from omniembed.train.rundir import load_run

    run = load_run(run_dir)  # its config is the run's train.yaml
    corpus = Corpus.load(Path(run.config["data"].get("corpus_cache") or run_dir))
    held = corpus.split("heldout")
    model = run.model
    max_tokens = run.config["data"]["max_view_tokens"]
    with torch.no_grad():
        emb = {m: F.normalize(embed_sequences(model, [corpus.view_ids(corpus.items[i], m, 0, max_tokens)
                                                      for i in held]), dim=-1) for m in MODALITIES}
    attrs = [corpus.items[i].attributes for i in held]
    names = list(attrs[0]) if attrs else []  # a manifest without attributes has nothing to split by
    misses = {}
    for pair in TARGET_PAIRS:
        q, g = pair.split("->")
        top = (emb[q] @ emb[g].T).argmax(1).tolist()
        misses[pair] = {n: sum(attrs[i][n] != attrs[t][n] for i, t in enumerate(top)) / len(held) for n in names}
    return names, misses


def report(run_dir: Path, command: str, wall_s: float | None, out: Path) -> str:
    records = [json.loads(x) for x in (run_dir / "eval.jsonl").read_text().splitlines() if x.strip()]
    rec = records[-1]
    dims = rec["recall"]["dims"]
    full, d64 = max(dims, key=int), "64"
    lines = results_header("`small` training on the synthetic world: held-out cross-modal recall", command)
    wall = wall_s if wall_s is not None else rec.get("wall_s")
    lines += [f"- run directory: `{run_dir}` (step {rec['step']})",
              f"- wall time: {wall:.0f} s for the training process up to its last evaluation (data stages included, "
              "except where loop.processes > 1 ran them before, in the launching process; see the run's train.log)"
              if wall is not None else "- wall time: not recorded",
              f"- held-out items: {rec['recall']['items']} (attribute combinations never seen in training); "
              f"queries per modality {rec['recall']['queries']}",
              "- **a hit = the retrieved item has exactly the query's attribute set** (shape, colour, size, "
              "position, motion; items carry their attributes in the manifest). Every held-out item of each "
              "modality is in the gallery; a text query is the item's first caption.", ""]
    lines += ["## Targets", "", "| pair | R@1 full | target 0.9 | R@1 dim 64 | 64/full | target 0.95 |",
              "|---|---|---|---|---|---|"]
    ok_all = True
    for p in TARGET_PAIRS:
        r_full = dims[full][p]["1"]
        r_64 = dims[d64][p]["1"] if d64 in dims else float("nan")
        ratio = r_64 / r_full if r_full else float("nan")
        ok1, ok2 = r_full >= 0.9, ratio >= 0.95
        ok_all &= ok1 and ok2
        lines.append(f"| {p} | {r_full:.3f} | {'yes' if ok1 else 'NO'} | {r_64:.3f} | {ratio:.3f} | "
                     f"{'yes' if ok2 else 'NO'} |")
    lines += ["", f"All targets met: **{'yes' if ok_all else 'no'}**", ""]
    names, misses = attribute_misses(run_dir)
    if names:
        lines += ["### Which attribute a wrong top-1 gets wrong (share of all held-out queries, full dim)", "",
                  "| pair | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines += [f"| {p} | " + " | ".join(f"{m[n]:.3f}" for n in names) + " |" for p, m in misses.items()]
        lines += ["", "A query can miss on several attributes at once, so a row can sum to more than 1 - R@1.", ""]
    cap = rec.get("captions")
    if cap:
        lines += ["## Captions of held-out images (greedy, text tokens only)", "",
                  f"- {cap['n']} images: the caption names the right colour in {cap['colour']:.1%} "
                  f"(chance {cap['colour_chance']:.1%}) and the right shape in {cap['shape']:.1%} "
                  f"(chance {cap['shape_chance']:.1%}); a caption naming two colours counts as wrong.", ""]
        for ex in cap.get("examples", []):
            a = ex["attributes"]
            lines.append(f"  - {ex['item']} ({a.get('size')} {a.get('colour')} {a.get('shape')}, "
                         f"{a.get('position')}, {a.get('motion')}): \"{ex['caption']}\"")
        lines.append("")
    for d in sorted(dims, key=int, reverse=True):
        for k in ("1", "5", "10"):
            lines += [f"### recall@{k}, dim {d}", ""] + matrix_lines(dims[d], k) + [""]
    if len(records) > 1:
        lines += ["## Recall@1 (full dim) over training", "", "| step | " + " | ".join(TARGET_PAIRS) + " |",
                  "|---|" + "---|" * len(TARGET_PAIRS)]
        for r in records:
            if "recall" in r:
                t = r["recall"]["dims"][full]
                lines.append(f"| {r['step']} | " + " | ".join(f"{t[p]['1']:.3f}" for p in TARGET_PAIRS) + " |")
        lines.append("")
    text = "\n".join(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_small", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="RUN_DIR to train into")
    parser.add_argument("--report", help="report an existing RUN_DIR instead of training")
    parser.add_argument("--command", help="with --report: the command that produced the run")
    parser.add_argument("--results", default=str(RESULTS), help="markdown file to write")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    if args.report:
        report(Path(args.report), args.command or "(not recorded)", None, Path(args.results))
        return 0
    if not args.out:
        parser.error("--out RUN_DIR (or --report RUN_DIR) is required")
    from omniembed.train.cli import main as train_main

    t0 = time.perf_counter()
    rc = train_main(["--config", "small", "--out", args.out, *args.overrides])
    if rc:
        return rc
    report(Path(args.out), command_line(argv, "bench.train_small"), time.perf_counter() - t0, Path(args.results))
    print(Path(args.results).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
