"""Turn a synthetic world (python -m omniembed.data.synth, or RUN_DIR/world) into a user-like folder.

    python examples/rag/make_folder.py WORLD_DIR OUT_FOLDER [--split heldout] [--n 24]

OUT_FOLDER gets media/<item>.{png,wav,mp4} and notes/<item>.txt (two of the item's captions as paragraphs)
for the first N items of the split: what a user's folder of photos, recordings, clips and notes looks like,
with the attributes known, so a reader can judge what comes back.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def make_folder(world_dir: str | Path, out: str | Path, split: str = "heldout", n: int | None = None) -> Path:
    from omniembed.data.manifest import Item, load_manifest

    world, out = Path(world_dir), Path(out)
    name = "heldout.jsonl" if split == "heldout" else "manifest.jsonl"
    items = [r for r in load_manifest(world / name) if isinstance(r, Item)][:n]
    if not items:
        raise SystemExit(f"{world / name}: no items")
    (out / "media").mkdir(parents=True, exist_ok=True)
    (out / "notes").mkdir(exist_ok=True)
    for it in items:
        for media in it.media.values():
            shutil.copy(media.source, out / "media" / Path(media.source).name)
        (out / "notes" / f"{it.id}.txt").write_text("\n\n".join(f"{t}." for t in it.texts[:2]) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("world")
    p.add_argument("out")
    p.add_argument("--split", default="heldout", choices=["heldout", "train"])
    p.add_argument("--n", type=int, help="items to take (default all of the split)")
    args = p.parse_args(argv)
    out = make_folder(args.world, args.out, args.split, args.n)
    print(f"wrote {sum(1 for f in out.rglob('*') if f.is_file())} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
