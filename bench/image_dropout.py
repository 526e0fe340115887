"""Image codes dropped from the trunk's training inputs (`model.image_dropout`), against none, through the main
command on two labelled sets: real handwritten digits with spoken digits, and the synthetic world's
image+audio+text subset. bench/results/image_dropout.md.

    python -m bench.image_dropout [--work DIR] [--rates 0,0.1]

Handwritten digits: the 1,797 8x8 scans of scikit-learn's `load_digits` (the UCI optical recognition set, 43
writers; shipped inside scikit-learn, no download), enlarged to 28x28 PNGs, split 80/20 at random; each paired
with a recording of its digit by an espeak-ng voice (bench.spoken_digits.speak: 12 voices, random pitch and
pace, mostly 8 kHz), held-out items with new recordings of the same voices, as a random split of a real
recorded set would give; two template captions. Hit: the same digit (`eval.label=digit`). Needs espeak-ng.
The synthetic subset: the small config's world (seed 0) with only its image, audio and text views
(bench.worlds.subset); hit: the same attribute set. Every run is `omniembed demo --config small` with the one
override; the tokenizers train the same way in each, so the rows differ in the trunk's training alone.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import RESULTS, command_line, results_header, run_main_command, write_results
from bench.spoken_digits import CAPTIONS, TRAIN_VOICES, WORDS, speak
from bench.worlds import subset

TARGET = 0.9


def handwritten_set(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """root/manifest.jsonl and root/heldout.jsonl of handwritten digits with spoken ones (see the docstring)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = random.Random(seed)
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    order = list(range(len(digits.target)))
    rng.shuffle(order)
    cut = int(0.8 * len(order))
    out = []
    for split, picks in (("manifest", order[:cut]), ("heldout", order[cut:])):
        rows = []
        for k, i in enumerate(picks):
            digit, name = int(digits.target[i]), f"{split}-{k:04d}"
            pixels = (digits.images[i] / 16.0 * 255).astype(np.uint8)  # 0..16 ink levels
            Image.fromarray(pixels, "L").resize((28, 28), Image.BILINEAR).save(media / f"{name}.png")
            speak(WORDS[digit], rng.choice(TRAIN_VOICES), rng, media / f"{name}.wav")
            rows.append({"id": name, "kind": "item", "attributes": {"digit": digit},
                         "views": {"text": [c.format(w=WORDS[digit], d=digit) for c in rng.sample(CAPTIONS, 2)],
                                   "image": f"media/{name}.png", "audio": f"media/{name}.wav"}})
        path = root / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out.append(path)
    return out[0], out[1]


def synthetic_subset(root: Path) -> tuple[Path, Path]:
    """The small config's synthetic world (generated once here), its image, audio and text views only."""
    from omniembed.data.synth import generate
    from omniembed.train.config import load_config

    data = load_config("small").data
    world = generate(root / "world", data.synth_n, data.synth_seed, video_format=data.synth_video)
    return subset(world, root / "image+audio+text", ["image", "audio", "text"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.image_dropout", description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="0,0.1", help="model.image_dropout values, one run each per set")
    p.add_argument("--sets", default="handwritten,synthetic")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--work", help="scratch folder (default: a temporary one)")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="image_dropout_"))
    sets = {"handwritten": lambda: handwritten_set(work / "handwritten"),
            "synthetic": lambda: synthetic_subset(work / "synthetic")}
    hit = {"handwritten": ["eval.label=digit"], "synthetic": []}
    rates = [float(r) for r in args.rates.split(",")]
    results: dict[tuple[str, float], dict] = {}
    for name in args.sets.split(","):
        manifest, heldout = sets[name]()
        for rate in rates:
            print(f"{name}: image_dropout={rate:g} ...", file=sys.stderr)
            results[(name, rate)] = run_main_command(work / name / f"run-{rate:g}", "small", manifest,
                                                     "--heldout", str(heldout), *hit[name],
                                                     f"model.image_dropout={rate:g}")
    lines = results_header("Image codes dropped in training (`model.image_dropout`), through the main command",
                           command_line(argv, "bench.image_dropout"))
    lines += ["- handwritten: scikit-learn's 1,797 scanned digits (43 writers) with spoken ones by espeak-ng "
              "voices, 80/20 random split, hit = the same digit; synthetic: the world's image+audio+text views, "
              "hit = the same attribute set; `omniembed demo --config small` per row, one seed",
              f"- held-out R@1 at the full dim (torch eval); target >= {TARGET}", ""]
    for name in args.sets.split(","):
        pairs = list(results[(name, rates[0])]["torch"])
        lines += [f"## {name}", "", "| model.image_dropout | " + " | ".join(pairs) + " | lowest | minutes |",
                  "|---|" + "---:|" * (len(pairs) + 2)]
        for rate in rates:
            r = results[(name, rate)]
            lines.append(f"| {rate:g} | " + " | ".join(f"{r['torch'][p]:.3f}" for p in pairs) +
                         f" | {min(r['torch'].values()):.3f} | {r['seconds'] / 60:.1f} |")
        lines.append("")
    write_results(args.out, "image_dropout.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
