"""A labelled set that is not the synthetic world: spoken digits, drawn digits and captions, through the main
command with its default settings. bench/results/spoken_digits.md.

    python -m bench.spoken_digits [--config small] [--per-voice 12] [--out DIR] [--work DIR]

Shaped like the public image+speech digit sets (MNIST-style images, FSDD-style recordings): every item is one
digit with a 28x28 greyscale PNG of it drawn in a font, a recording of a voice saying it, and a caption, and
carries `attributes: {digit, voice, font}`. Image and sound of an item share only the digit, as in those sets.
The speech is real synthesised speech (espeak-ng: `apt-get install espeak-ng`), of variable length, at 8 kHz
(mostly) or 22.05 kHz, with silence and noise around it; held-out items are spoken by voices and drawn in
fonts that no training item has. The run is `omniembed demo --manifest M eval.label=digit`: a hit is an item of
the same digit, the rule a user of such a set picks. The run is also scored on new items by the training voices
and fonts and on training items themselves, which tells memorising from not carrying over to new voices.
Recipes tried on it: bench/results/spoken_digits_sweep.md.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, command_line, results_header, run_main_command, write_results

TARGET = 0.9
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TRAIN_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-us+f2",
                "en-gb+m3", "en-us+f4", "en-gb+klatt", "en-us+m7", "en-gb-x-gbcwmd+f1"]
HELDOUT_VOICES = ["en-us+f3", "en-gb-scotland+m5", "en-029+f5"]
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
TRAIN_FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
               "DejaVuSansCondensed-Oblique.ttf", "DejaVuSerif-Bold.ttf"]
HELDOUT_FONTS = ["DejaVuSerifCondensed-BoldItalic.ttf", "DejaVuSans-ExtraLight.ttf"]
CAPTIONS = ["{w}", "{d}", "the digit {w}", "a spoken {w}", "number {d}", "someone says {w}", "the number {w}",
            "a {w} written and said", "digit {d}"]


def speak(word: str, voice: str, rng: random.Random, path: Path) -> None:
    """One recording: espeak-ng's voice at a random pitch and pace, resampled, padded with silence and noise."""
    import soundfile as sf
    from scipy.signal import resample_poly

    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(rng.randint(25, 75)), "-s", str(rng.randint(120, 200)),
                    "-w", str(raw), word], check=True, capture_output=True)
    wave, rate = sf.read(raw, dtype="float32")
    raw.unlink()
    if rng.random() < 0.8:  # most recordings of such sets are 8 kHz
        wave, rate = resample_poly(wave, 8000, rate).astype(np.float32), 8000
    nprng = np.random.default_rng(rng.getrandbits(32))
    pad = [np.zeros(int(rate * rng.uniform(0.02, 0.35)), np.float32) for _ in range(2)]
    wave = np.concatenate([pad[0], wave * rng.uniform(0.3, 0.9), pad[1]])
    wave += nprng.normal(0, rng.uniform(0.001, 0.01), wave.size).astype(np.float32)
    sf.write(path, np.clip(wave, -1, 1), rate, subtype="PCM_16")


def draw(digit: int, font: str, rng: random.Random, path: Path) -> None:
    """One 28x28 greyscale digit, MNIST-like: light strokes on black, jittered in size, angle and place."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    canvas = Image.new("L", (56, 56), 0)
    face = ImageFont.truetype(str(FONT_DIR / font), rng.randint(38, 52))
    ImageDraw.Draw(canvas).text((28 + rng.randint(-4, 4), 28 + rng.randint(-4, 4)), str(digit), fill=255,
                                font=face, anchor="mm")
    canvas = canvas.rotate(rng.uniform(-18, 18), resample=Image.BILINEAR)
    image = canvas.resize((28, 28), Image.LANCZOS).filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.6)))
    pixels = np.asarray(image, np.float32) + np.random.default_rng(rng.getrandbits(32)).normal(0, 8, (28, 28))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L").save(path)


SPLITS = {"train": "manifest.jsonl", "heldout": "heldout.jsonl", "fresh": "fresh.jsonl"}


def generate(root: Path, per_voice: int, seed: int = 0) -> dict[str, Path]:
    """root/manifest.jsonl (training voices and fonts), root/heldout.jsonl (the other voices and fonts) and
    root/fresh.jsonl (new recordings and drawings by the training voices and fonts, never trained on: how much
    of the held-out gap is new voices and fonts), media in root/media."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("bench.spoken_digits needs espeak-ng (apt-get install espeak-ng)")
    rng = random.Random(seed)
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, voices, fonts, n in (("train", TRAIN_VOICES, TRAIN_FONTS, per_voice),
                                    ("heldout", HELDOUT_VOICES, HELDOUT_FONTS, per_voice),
                                    ("fresh", TRAIN_VOICES, TRAIN_FONTS, max(1, per_voice // 4))):
        records = []
        for voice in voices:
            for k in range(n):
                for digit in range(10):
                    item = f"{split}-{voice.replace('+', '_')}-{k:02d}-{digit}"
                    font = rng.choice(fonts)
                    speak(WORDS[digit], voice, rng, media / f"{item}.wav")
                    draw(digit, font, rng, media / f"{item}.png")
                    captions = [c.format(w=WORDS[digit], d=digit) for c in rng.sample(CAPTIONS, 2)]
                    records.append({"id": item, "kind": "item", "split": split,
                                    "views": {"text": captions, "image": f"media/{item}.png",
                                              "audio": f"media/{item}.wav"},
                                    "attributes": {"digit": digit, "voice": voice, "font": font}})
        rng.shuffle(records)
        out[split] = root / SPLITS[split]
        out[split].write_text("".join(json.dumps(r) + "\n" for r in records))
    return out


def recall_at_1(run: Path, manifest: Path, work: Path, max_items: int) -> dict[str, float]:
    """R@1 at the full dim of the run on `manifest` by digit (omniembed eval, torch)."""
    out = work / f"eval-{manifest.stem}"
    proc = subprocess.run([sys.executable, "-m", "omniembed.cli", "eval", str(run), "--manifest", str(manifest),
                           "--hit", "label", "--label", "digit", "--max-items", str(max_items), "--out", str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"omniembed eval failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    dims = json.loads((out / "recall_matrix.json").read_text())["dims"]
    full = max(dims, key=int)
    return {pair: v["1"] for pair, v in dims[full].items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.spoken_digits", description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small")
    p.add_argument("--per-voice", type=int, default=12, help="recordings of each digit per voice")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--work", help="scratch folder (default: a temporary one)")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="spoken_digits_"))
    t0 = time.perf_counter()
    files = generate(work / "data", args.per_voice)
    manifest, heldout = files["train"], files["heldout"]
    made = time.perf_counter() - t0
    n_train, n_held, n_fresh = (len(files[k].read_text().splitlines()) for k in ("train", "heldout", "fresh"))
    print(f"{n_train} training and {n_held} held-out items in {made:.0f} s; the main command ...", file=sys.stderr)
    out = work / "demo"
    demo = run_main_command(out, args.config, manifest, "--heldout", str(heldout), "eval.label=digit")
    seconds, grpc = demo["seconds"], demo["grpc"]
    fresh = recall_at_1(out / "run", files["fresh"], work, n_fresh)
    seen = recall_at_1(out / "run", manifest, work, n_fresh)  # training items themselves: what was memorised
    lines = results_header("A labelled set that is not the synthetic world: spoken and drawn digits, default settings",
                           command_line(argv, "bench.spoken_digits"))
    lines += [f"- data: {n_train} training items ({len(TRAIN_VOICES)} espeak-ng voices, {len(TRAIN_FONTS)} fonts), "
              f"{n_held} held-out items ({len(HELDOUT_VOICES)} other voices, {len(HELDOUT_FONTS)} other fonts); "
              "28x28 greyscale PNG, speech at 8 kHz (80%) or 22.05 kHz, 0.4-1.5 s; image and sound of an item "
              "share only the digit",
              f"- run: `omniembed demo --config {args.config} --manifest M --heldout H eval.label=digit` "
              f"(exit 0, {seconds / 60:.1f} min); hit: the same digit (chance 0.1); target R@1 >= {TARGET}", "",
              f"- also scored (omniembed eval, torch, same hit rule): {n_fresh} new items by the training voices "
              f"and fonts (fresh.jsonl, never trained on), and the first {n_fresh} training items themselves", "",
              "| pair | R@1 held-out (other voices and fonts), torch eval | top-1 over gRPC (demo) | >= 0.9 | "
              "R@1 new items, training voices and fonts | R@1 training items |",
              "|---|---:|---:|:-:|---:|---:|"]
    for pair, value in demo["torch"].items():
        served = grpc.get(pair)
        ok = value >= TARGET and (served is None or served >= TARGET)
        lines.append(f"| {pair} | {value:.3f} | {'—' if served is None else f'{served:.3f}'} | "
                     f"{'yes' if ok else 'no'} | {fresh.get(pair, float('nan')):.3f} | "
                     f"{seen.get(pair, float('nan')):.3f} |")
    lines.append("")
    write_results(args.out, "spoken_digits.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
