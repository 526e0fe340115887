"""The main job, end to end on the embedded defaults: `omniembed demo` (what scripts/demo.sh runs).

    omniembed demo [--out demo_out] [--n 400] [--seed 0] [--tokenizer-config configs/tokenizers/small.yaml]
                   [--manifest YOUR/manifest.jsonl] [key=value ...]

Stages, each printed as it runs:
  1. data        the synthetic multimodal world (or --manifest: your own JSONL manifest, see docs/manifest.md)
  2. tokenizers  text BPE, image VQ-VAE and audio VQ trained on it; reconstruction vs the constant baseline
  3. vocabulary  held-out items (every view) and an interleaved document turned into one id stream and back
Stages still to come (trunk training, ONNX export, index build, gRPC server, cross-modal queries) are named
at the end as not built yet, rather than faked.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

# Stages of the data path that later issues add; the demo names them instead of pretending to run them.
NOT_BUILT_YET = [
    "trunk training (python -m omniembed.train, configs/model/small.yaml)",
    "ONNX export of the bundle (python -m omniembed.export)",
    "FAISS index of the held-out items' embeddings (omniembed.index is built; it needs embeddings to hold)",
    "gRPC server and cross-modal queries (python -m omniembed.serve)",
]


def _stage(n: int, title: str) -> float:
    print(f"\n== {n}. {title}", flush=True)
    return time.perf_counter()


def _make_world(args) -> tuple[Path, Path | None]:
    """Returns (training manifest, held-out manifest or None)."""
    if args.manifest:
        manifest = Path(args.manifest)
        if not manifest.is_file():
            raise SystemExit(f"omniembed demo: --manifest {manifest} is not a file")
        print(f"using your manifest {manifest}")
        return manifest, None
    from omniembed.data.synth import generate, load_world

    root = generate(Path(args.out) / "world", args.n, args.seed)
    world = load_world(root)
    counts = world.world["counts"]
    print(f"wrote {root}: {counts['train_items']} train + {counts['heldout_items']} held-out items "
          f"({world.world['combinations']['heldout']} attribute combinations never seen in training), "
          f"{counts['train_documents']} + {counts['heldout_documents']} interleaved documents")
    return world.manifest_path, world.heldout_path


def _train_tokenizers(args, manifest: Path) -> Path:
    from omniembed.tokenization.config import TokenizerConfig
    from omniembed.tokenization.train import train_tokenizers

    cfg = TokenizerConfig.from_yaml(args.tokenizer_config, args.overrides)
    out = Path(args.out) / "tokenizers"
    report = train_tokenizers(manifest, out, cfg)
    for name, unit in (("image", ""), ("audio", " dB^2")):
        r = report[name]
        mse = r.get("recon_mse", r.get("recon_mse_db2"))
        base = r.get("baseline_mse", r.get("baseline_mse_db2"))
        print(f"{name:5s} tokenizer: held-out reconstruction error {mse:.4g}{unit} vs constant baseline "
              f"{base:.4g}{unit} (ratio {r['ratio']:.3f}); {r['usage']['codes_used']} codes used, "
              f"perplexity {r['usage']['perplexity']:.1f}")
    print(f"text  tokenizer: byte-level BPE of {report['text']['vocab_size']} tokens; all written to {out}")
    return out


def _tokenize_heldout(tokdir: Path, heldout: Path | None, manifest: Path, count: int) -> None:
    from omniembed.data.manifest import Document, Item, load_manifest
    from omniembed.tokenization.document import DocumentTokenizer, from_record
    from omniembed.tokenization.store import load_tokenizers

    toks = load_tokenizers(tokdir)
    doc = DocumentTokenizer.from_tokenizers(toks.text, toks.image, toks.audio, video_fps=toks.config.video_fps)
    vocab = doc.vocab
    print(f"unified vocabulary: {vocab.size} ids = special/markers {len(vocab.special_range)} | "
          f"text {vocab.text_size} | image {vocab.image_codebook} | audio {vocab.audio_codebook}")
    records = load_manifest(heldout or manifest)
    items = [r for r in records if isinstance(r, Item)][:count]
    documents = [r for r in records if isinstance(r, Document)][:1]
    for record in items + documents:
        views = from_record(record)
        streams = {"document": views} if isinstance(record, Document) else views
        for view, segments in streams.items():
            ids = doc.encode(segments)
            again = doc.encode(doc.decode(ids, reconstruct=False))
            kinds = Counter(vocab.kind_of(i) for i in ids)
            parts = ", ".join(f"{kinds[k]} {k}" for k in ("text", "image", "audio", "special") if kinds[k])
            print(f"  {record.id:12s} {view:8s} -> {len(ids):4d} ids ({parts}); "
                  f"round trip {'exact' if again == ids else 'DIFFERS'}")
            if again != ids:
                raise SystemExit(f"omniembed demo: {record.id} {view} did not round-trip through the vocabulary")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omniembed demo", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--out", default="demo_out", help="working folder (created)")
    parser.add_argument("--n", type=int, default=400, help="synthetic items to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--manifest", default=None, help="your own manifest.jsonl instead of the synthetic world")
    parser.add_argument("--tokenizer-config", default=str(Path(__file__).resolve().parents[1]
                                                            / "configs" / "tokenizers" / "small.yaml"))
    parser.add_argument("--show", type=int, default=3, help="held-out items to tokenize and print")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="tokenizer config overrides")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    seconds: dict[str, float] = {}
    t = _stage(1, "data")
    manifest, heldout = _make_world(args)
    seconds["data"] = time.perf_counter() - t
    t = _stage(2, "tokenizers")
    tokdir = _train_tokenizers(args, manifest)
    seconds["tokenizers"] = time.perf_counter() - t
    t = _stage(3, "one vocabulary: held-out items and a document as id streams")
    _tokenize_heldout(tokdir, heldout, manifest, args.show)
    seconds["vocabulary"] = time.perf_counter() - t

    print("\nnot built yet (later issues):")
    for stage in NOT_BUILT_YET:
        print(f"  - {stage}")
    seconds["total"] = time.perf_counter() - start
    (Path(args.out) / "timings.json").write_text(json.dumps({k: round(v, 1) for k, v in seconds.items()}, indent=2))
    print("\n" + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()) + f"; outputs in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
