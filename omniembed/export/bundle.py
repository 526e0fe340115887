"""Writing a serving bundle from a trained model (the command is omniembed.export.cli).

The bundle (layout in omniembed.runtime.bundle) holds ONNX graphs for the trunk + embedding head and for the
image and audio tokenizer encoders, tokenizer.json, vocab.json and manifest.json (versions, opset, dims,
tokenizer settings, sha256 of every file). After writing, the bundle is loaded with ONNX Runtime and its
vectors are compared with torch's on a few generated inputs of every modality (cosine >= 0.999 or the export
fails), so a bundle on disk is one that was checked.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

import omniembed
from omniembed.errors import ConfigError
from omniembed.export.graphs import (OPSET, export_audio_encoder, export_audio_power_encoder, export_image_encoder,
                                     export_trunk)
from omniembed.export.parity import MIN_ID_AGREEMENT, PARITY_FILE, PARITY_MIN_COSINE, check_parity
from omniembed.export.variants import convert_fp16, quantize_int8
from omniembed.model import OmniModel
from omniembed.runtime.bundle import MANIFEST_FILE, write_manifest


def export_bundle(model, tokenizers, vocab, out: str | os.PathLike, *, max_tokens: int | None = None,
                  int8: bool = False, fp16: bool = False, verify: bool = True, opset: int = OPSET,
                  source: dict[str, Any] | None = None, eval_settings: dict[str, Any] | None = None,
                  windows: dict[str, Any] | None = None) -> Path:
    """Write a bundle for `model` (OmniModel), `tokenizers` (omniembed.tokenization.store.Tokenizers) and
    `vocab` to `out`, replacing a previous bundle there. max_tokens: the longest id sequence embedded (the
    run's data.max_view_tokens; default and cap: the model's max_len)."""
    out = Path(out)
    cfg = model.cfg
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
                                  "audio_encoder": "audio_encoder.onnx", "audio_power_encoder": "audio_power_encoder.onnx"}
        export_trunk(model, tmp / "trunk.onnx", opset)
        export_image_encoder(image_tok, tmp / "image_encoder.onnx", opset)
        export_audio_encoder(audio_tok, tmp / "audio_encoder.onnx", opset)
        export_audio_power_encoder(audio_tok, tmp / "audio_power_encoder.onnx", opset)
        if int8:
            quantize_int8(tmp / "trunk.onnx", tmp / "trunk.int8.onnx")
            graphs["trunk"]["int8"] = "trunk.int8.onnx"
        if fp16:
            convert_fp16(tmp / "trunk.onnx", tmp / "trunk.fp16.onnx")
            graphs["trunk"]["fp16"] = "trunk.fp16.onnx"
        tokenizers.text.save(tmp / "tokenizer.json")
        vocab.save(tmp / "vocab.json")
        manifest = _manifest(model, tokenizers, vocab, graphs, max_tokens, opset, source or {})
        manifest["eval"] = dict(eval_settings or {"hit": "auto", "label": None})  # the hit rule omniembed eval uses
        if windows:  # long audio and video are embedded window by window (omniembed.tokenization.windows)
            manifest["windows"] = windows
        write_manifest(tmp, manifest)
        if verify:
            report = check_parity(tmp, model, tokenizers, vocab, max_tokens)
            if min(report["trunk_cosine"].values()) < PARITY_MIN_COSINE or \
                    min(report["id_agreement"].values()) < MIN_ID_AGREEMENT:
                raise RuntimeError(f"exported bundle disagrees with torch: {report} (need trunk cosine >= "
                                   f"{PARITY_MIN_COSINE}, id agreement >= {MIN_ID_AGREEMENT}); bundle not "
                                   f"written to {out}")
            (tmp / PARITY_FILE).write_text(json.dumps(report, indent=1) + "\n")
            write_manifest(tmp, manifest)  # again, listing parity.json too
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


def _manifest(model, tokenizers, vocab, graphs, max_tokens: int, opset: int, source: dict) -> dict[str, Any]:
    import onnx
    import onnxruntime

    tcfg = tokenizers.config
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
                                 "outputs": {"codes": "int64 (B, ceil(n / samples_per_token))"}},
               # what the runtime runs: the power spectrum computed on the host (omniembed.runtime.spectrum)
               "audio_power_encoder": {"inputs": {"power": f"float32 (B, M * {tcfg.mel_patch_frames}, "
                                                           f"{tcfg.n_fft // 2 + 1}), |STFT|^2 frames, zero-padded "
                                                           f"to whole patches"},
                                       "outputs": {"codes": "int64 (B, M)"}}},
        "model": model.cfg.to_dict(),
        # the input modalities the tokenizers learned; the runtime refuses the others by name
        "modalities": list(tokenizers.modalities),
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


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, **kwargs) -> Path:
    """Export RUN_DIR (the layout omniembed.train writes, read by omniembed.train.rundir.load_run)."""
    from omniembed.train.rundir import load_run

    run = load_run(run_dir)
    if not isinstance(run.model, OmniModel):
        raise ConfigError(f"{run_dir}: a model.kind={type(run.model).__name__} run; export serves the early-fusion "
                          "trunk (OmniModel) only: the late-fusion model is a benchmark baseline")
    source = {"run_dir": str(Path(run_dir).resolve()), "step": int(run.step)}
    # max_tokens: the model's max_len, where TorchEmbedder (the torch path) cuts its sequences too
    return export_bundle(run.model, run.tokenizers, run.vocab, out, source=source,
                         eval_settings=run.config.get("eval"), windows=run.windows, **kwargs)
