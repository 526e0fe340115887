"""`omniembed synth --out DIR --n N --seed S [--heldout-frac F] [--image-size 64] [--video-format mp4|webm]
[--no-video] [--workers W]` (also `python -m omniembed.data.synth`): write a synthetic world (see generate.py)."""

from __future__ import annotations

import argparse
import json
import time

from omniembed.data.synth.generate import WORLD_FILE, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omniembed synth", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--n", type=int, required=True, help="number of items (train + held-out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heldout-frac", type=float, default=0.125,
                        help="fraction of attribute combinations never seen in training")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--video-format", choices=("mp4", "webm"), default="mp4")
    parser.add_argument("--no-video", action="store_true", help="skip videos (faster)")
    parser.add_argument("--captions", type=int, default=4, help="paraphrased captions per item")
    parser.add_argument("--documents", type=int, default=None, help="interleaved documents (default n/2)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: 1 below 64 items)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = generate(args.out, args.n, args.seed, heldout_frac=args.heldout_frac, image_size=args.image_size,
                       video_format="none" if args.no_video else args.video_format, workers=args.workers,
                       captions_per_item=args.captions, documents=args.documents)
    except ValueError as err:
        parser.error(str(err))
    counts = json.loads((out / WORLD_FILE).read_text())["counts"]
    print(f"wrote {out}: {counts['train_items']} train + {counts['heldout_items']} held-out items, "
          f"{counts['train_documents']} + {counts['heldout_documents']} documents "
          f"in {time.perf_counter() - start:.1f}s")
    return 0

