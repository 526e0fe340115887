"""`python -m omniembed.export RUN_DIR --out BUNDLE_DIR [--int8] [--fp16]`: a training run -> a serving bundle.

The bundle (layout in omniembed.runtime.bundle) holds ONNX graphs for the trunk + embedding head and for the
image and audio tokenizer encoders, tokenizer.json, vocab.json and manifest.json (versions, opset, dims,
tokenizer settings, sha256 of every file). After writing, the bundle is loaded with ONNX Runtime and its
vectors are compared with torch's on a few generated inputs of every modality (cosine >= 0.999 or the export
fails), so a bundle on disk is one that was checked.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import omniembed
from omniembed.errors import ConfigError
from omniembed.export_graphs import OPSET, export_audio_encoder, export_image_encoder, export_trunk
from omniembed.export_variants import convert_fp16, quantize_int8
from omniembed.model import OmniModel
from omniembed.runtime.bundle import MANIFEST_FILE, write_manifest
from omniembed.tokenization.document import AudioSegment, DocumentTokenizer, ImageSegment, TextSegment, VideoSegment

PARITY_MIN_COSINE = 0.999
MIN_ID_AGREEMENT = 0.95  # codes may flip at float-rounding near-ties of the VQ argmin (see check_parity)
PARITY_FILE = "parity.json"


def export_bundle(model, tokenizers, vocab, out: str | os.PathLike, *, max_tokens: int | None = None,
                  int8: bool = False, fp16: bool = False, verify: bool = True, opset: int = OPSET,
                  source: dict[str, Any] | None = None) -> Path:
    """Write a bundle for `model` (OmniModel), `tokenizers` (omniembed.tokenization.store.Tokenizers) and
    `vocab` to `out`, replacing a previous bundle there. max_tokens: the longest id sequence embedded (the
    run's data.max_view_tokens; default and cap: the model's max_len)."""
    out = Path(out)
    cfg, tcfg = model.cfg, tokenizers.config
    max_tokens = cfg.max_len if max_tokens is None else min(int(max_tokens), cfg.max_len)
    if vocab.size != cfg.vocab_size:
        raise ConfigError(f"vocabulary of {vocab.size} ids but the model has vocab_size={cfg.vocab_size}")
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().cpu().eval()
    image_tok, audio_tok = tokenizers.image.float().cpu().eval(), tokenizers.audio.float().cpu().eval()
    # written beside `out` and renamed into place, so a reader never sees a half-written bundle
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a bundle is read by a server under another user
    try:
        graphs: dict[str, Any] = {"trunk": {"fp32": "trunk.onnx"}, "image_encoder": "image_encoder.onnx",
                                  "audio_encoder": "audio_encoder.onnx"}
        export_trunk(model, tmp / "trunk.onnx", opset)
        export_image_encoder(image_tok, tmp / "image_encoder.onnx", opset)
        export_audio_encoder(audio_tok, tmp / "audio_encoder.onnx", opset)
        if int8:
            quantize_int8(tmp / "trunk.onnx", tmp / "trunk.int8.onnx")
            graphs["trunk"]["int8"] = "trunk.int8.onnx"
        if fp16:
            convert_fp16(tmp / "trunk.onnx", tmp / "trunk.fp16.onnx")
            graphs["trunk"]["fp16"] = "trunk.fp16.onnx"
        tokenizers.text.save(tmp / "tokenizer.json")
        vocab.save(tmp / "vocab.json")
        manifest = _manifest(model, tcfg, vocab, graphs, max_tokens, opset, source or {})
        write_manifest(tmp, manifest)
        if verify:
            report = check_parity(tmp, model, tokenizers, vocab, max_tokens)
            if min(report["trunk_cosine"].values()) < PARITY_MIN_COSINE or \
                    min(report["id_agreement"].values()) < MIN_ID_AGREEMENT:
                raise RuntimeError(f"exported bundle disagrees with torch: {report} (need trunk cosine >= "
                                   f"{PARITY_MIN_COSINE}, id agreement >= {MIN_ID_AGREEMENT}); bundle not "
                                   f"written to {out}")
            (tmp / PARITY_FILE).write_text(json.dumps(report, indent=1) + "\n")
            write_manifest(tmp, manifest)  # again, now listing parity.json too
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _check_target(out: Path) -> None:
    """Replace only an earlier bundle or an empty folder: never a folder of someone's other files."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_FILE).is_file())):
        raise ConfigError(f"{out}: exists and is not a bundle; pick another --out or remove it")


def _manifest(model, tcfg, vocab, graphs, max_tokens: int, opset: int, source: dict) -> dict[str, Any]:
    import onnx
    import onnxruntime

    sp = vocab.special
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "versions": {"omniembed": omniembed.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "opset": opset,
        "graphs": graphs,
        "io": {"trunk": {"inputs": {"ids": "int64 (B, T)", "mask": "bool (B, T), True on real tokens"},
                         "outputs": {"vectors": f"float32 (B, {max(model.cfg.embed_dims)}), unit rows"}},
               "image_encoder": {"inputs": {"pixels": f"uint8 (B, {tcfg.image_size}, {tcfg.image_size}, 3)"},
                                 "outputs": {"codes": f"int64 (B, {tcfg.tokens_per_image})"}},
               "audio_encoder": {"inputs": {"wave": f"float32 (B, n) at {tcfg.sample_rate} Hz"},
                                 "outputs": {"codes": "int64 (B, ceil(n / samples_per_token))"}}},
        "model": model.cfg.to_dict(),
        "tokenizers": {
            "image_size": tcfg.image_size, "image_grid": tcfg.image_grid, "image_resize": tcfg.image_resize,
            "tokens_per_image": tcfg.tokens_per_image, "image_codebook": tcfg.image_codebook,
            "sample_rate": tcfg.sample_rate, "n_fft": tcfg.n_fft, "hop": tcfg.hop, "n_mels": tcfg.n_mels,
            "mel_patch_frames": tcfg.mel_patch_frames, "samples_per_token": tcfg.hop * tcfg.mel_patch_frames,
            "audio_codebook": tcfg.audio_codebook, "video_fps": tcfg.video_fps, "text_vocab_size": vocab.text_size,
        },
        "document": {"layout": "<bos> body <eos> <embed>, body cut at its end to fit max_tokens",
                     "max_tokens": max_tokens,
                     "special_ids": {n: sp(n) for n in ("<pad>", "<bos>", "<eos>", "<embed>")}},
    }


# ---- parity -------------------------------------------------------------------------------------------
def torch_embed(model, doc: DocumentTokenizer, documents: list[list], max_tokens: int) -> np.ndarray:
    """The torch reference: DocumentTokenizer ids -> OmniModel.embed, one right-padded batch. (N, D)."""
    seqs = [doc.encode_for_embedding(segs, max_tokens) for segs in documents]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), model.cfg.pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = True
    with torch.no_grad():
        return model.embed(ids, mask).numpy()


def probe_documents(tcfg, seed: int = 0) -> dict[str, list[list]]:
    """Generated inputs of every modality (and interleaved) for the post-export check: no dataset needed."""
    rng = np.random.default_rng(seed)
    rate = tcfg.sample_rate

    def image(h, w):
        return ImageSegment(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))

    def tone(seconds, hz):
        t = np.arange(int(seconds * rate)) / rate
        return (0.3 * np.sin(2 * np.pi * hz * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)

    frames = rng.integers(0, 256, (4, 24, 32, 3), dtype=np.uint8)
    return {
        "text": [[TextSegment("a small red circle moves left")], [TextSegment("the blue square")]],
        "image": [[image(40, 40)], [image(23, 57)]],
        "audio": [[AudioSegment(tone(0.5, 440.0), rate)], [AudioSegment(tone(1.3, 660.0), rate)]],
        "video": [[VideoSegment(frames, np.array([0.0, 0.5, 1.0, 1.5]), tone(1.0, 300.0), rate)]],
        "interleaved": [[TextSegment("look: "), image(32, 32), TextSegment(" and listen "),
                         AudioSegment(tone(0.4, 500.0), rate)]],
    }


def check_parity(bundle_dir, model, tokenizers, vocab, max_tokens: int) -> dict[str, dict[str, float]]:
    """ONNX Runtime vs torch on `probe_documents`, per modality:
    - trunk_cosine: lowest cosine when both embed the same ids (the trunk + head graph alone);
    - id_agreement: share of ids equal between the runtime's tokenization and torch's (encoder graphs);
    - cosine: lowest cosine end to end, from segments to vectors.
    A VQ code whose two nearest codebook entries are within float rounding of each other can flip between
    the two runtimes; the agreement figure shows how often, the trunk figure is exact either way."""
    from omniembed.runtime import Embedder

    emb = Embedder.load(bundle_dir, providers=["CPUExecutionProvider"], threads=1, verify=False)
    doc = DocumentTokenizer(vocab, tokenizers.text, tokenizers.image, tokenizers.audio,
                            video_fps=tokenizers.config.video_fps)
    report: dict[str, dict[str, float]] = {"trunk_cosine": {}, "id_agreement": {}, "cosine": {}}
    for modality, docs in probe_documents(tokenizers.config).items():
        ref = torch_embed(model, doc, docs, max_tokens)
        torch_ids = [doc.encode_for_embedding(d, max_tokens) for d in docs]
        ort_ids = emb.tokenize(docs)
        report["trunk_cosine"][modality] = float(np.min(np.sum(ref * emb.embed_ids(torch_ids), axis=1)))
        report["id_agreement"][modality] = id_agreement(torch_ids, ort_ids)
        report["cosine"][modality] = float(np.min(np.sum(ref * emb.embed_ids(ort_ids), axis=1)))
    return report


def id_agreement(a: list[list[int]], b: list[list[int]]) -> float:
    """Share of positions with equal ids over pairs of sequences; a pair of different lengths counts as 0."""
    same = sum(int(np.sum(np.asarray(x) == np.asarray(y))) if len(x) == len(y) else 0 for x, y in zip(a, b))
    return same / max(1, sum(len(x) for x in a))


# ---- command line --------------------------------------------------------------------------------------
def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, **kwargs) -> Path:
    """Export RUN_DIR (the layout omniembed.train writes) through omniembed.run.load_run."""
    from omniembed.run import load_run

    run = load_run(run_dir)
    if not isinstance(run.model, OmniModel):
        raise ConfigError(f"{run_dir}: a model.kind={type(run.model).__name__} run; export serves the early-fusion "
                          "trunk (OmniModel) only: the late-fusion model is a benchmark baseline")
    source = {"run_dir": str(Path(run_dir).resolve()), "step": int(run.step)}
    # max_tokens: the model's max_len, where omniembed.embed.Embedder (the torch path) cuts its sequences too
    return export_bundle(run.model, run.tokenizers, run.vocab, out, source=source, **kwargs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="omniembed export", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="training run directory (train.yaml, tokenizers/, checkpoint.pt)")
    p.add_argument("--out", required=True, help="bundle directory to write (an earlier bundle there is replaced)")
    p.add_argument("--int8", action="store_true", help="also write the INT8 dynamically quantized trunk (CPU)")
    p.add_argument("--fp16", action="store_true", help="also write the fp16 trunk (GPU)")
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs torch check")
    p.add_argument("--threads", type=int, default=2, help="torch threads while exporting (default 2)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        out = export_run(args.run_dir, args.out, int8=args.int8, fp16=args.fp16, opset=args.opset,
                         verify=not args.no_verify)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"omniembed export: {exc}", file=sys.stderr)
        return 2
    files = sorted(f.name for f in out.iterdir())
    print(f"wrote {out}: {', '.join(files)}")
    if (out / PARITY_FILE).is_file():
        print(f"ONNX Runtime vs torch ({PARITY_FILE}): {(out / PARITY_FILE).read_text().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
