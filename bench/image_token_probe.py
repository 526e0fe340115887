"""How much of each attribute survives image tokenization: a probe on the codes of a world's still images.

    python -m bench.image_token_probe --world WORLD_DIR [tokenizer key=value ...]

Trains the image tokenizer of the small config's tokenizer section (with overrides) on the world's training
images, encodes every item image, and per attribute fits a small classifier on the codes (a learned
embedding per code plus one per grid cell, concatenated, then an MLP with dropout) on the training items;
prints its accuracy on the held-out items, whose attribute combinations it never saw. An attribute near
chance here cannot be retrieved from images by any trunk trained on these codes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from omniembed.media import decode_image
from omniembed.tokenization.config import TokenizerConfig
from omniembed.tokenization.train import train_image_tokenizer


def probe(codes: torch.Tensor, labels: torch.Tensor, train: list[int], test: list[int], n_codes: int,
          n_classes: int, steps: int = 400, seed: int = 0) -> float:
    torch.manual_seed(seed)
    cells = codes.shape[1]
    emb = torch.nn.Embedding(n_codes, 32)
    cell = torch.nn.Parameter(torch.zeros(cells, 32))
    head = torch.nn.Sequential(torch.nn.Linear(cells * 32, 256), torch.nn.GELU(), torch.nn.Dropout(0.5),
                               torch.nn.Linear(256, n_classes))
    opt = torch.optim.AdamW([*emb.parameters(), cell, *head.parameters()], lr=3e-3, weight_decay=0.05)

    def logits(idx):
        return head((emb(codes[idx]) + cell).flatten(1))

    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(logits(train), labels[train]).backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        return float((logits(test).argmax(1) == labels[test]).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", required=True, type=Path, help="a folder written by omniembed synth")
    parser.add_argument("overrides", nargs="*", help="tokenizer config key=value")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = TokenizerConfig.from_yaml("small", args.overrides)
    records = [json.loads(line) for name in ("manifest.jsonl", "heldout.jsonl")
               for line in (args.world / name).read_text().splitlines() if line.strip()]
    items = [r for r in records if r["kind"] == "item"]
    images = [decode_image((args.world / r["views"]["image"]).read_bytes()) for r in items]
    train = [i for i, r in enumerate(items) if r["split"] == "train"]
    test = [i for i, r in enumerate(items) if r["split"] == "heldout"]
    start = time.perf_counter()
    tok, report = train_image_tokenizer([images[i] for i in train], cfg)
    with torch.no_grad():
        codes = torch.cat([tok.encode_pixels(images[i:i + 256]) for i in range(0, len(images), 256)])
    print(f"image tokenizer: {codes.shape[1]} codes per image, reconstruction ratio {report['ratio']:.3f}, "
          f"{time.perf_counter() - start:.0f} s")
    for name in items[0]["attributes"]:
        values = sorted({items[i]["attributes"][name] for i in train})
        labels = torch.tensor([values.index(r["attributes"][name]) for r in items])
        acc = probe(codes, labels, train, test, cfg.image_codebook, len(values))
        print(f"{name}: held-out accuracy {acc:.2f} (chance {1 / len(values):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
