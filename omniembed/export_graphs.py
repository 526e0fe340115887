"""The three exported graphs as torch modules, and their export to ONNX.

Each wrapper's forward is the exact inference path of the torch object it wraps, from the raw input the
runtime has (ids, uint8 pixels, a waveform) to what the runtime needs (a unit vector, codes):
- TrunkGraph:        ids (B, T) int64, mask (B, T) bool -> OmniModel.embed (B, D) float32, L2-normalised
- ImageEncoderGraph: pixels (B, S, S, 3) uint8 -> ImageTokenizer.encode of pixels / 255 -> codes (B, N) int64
- AudioEncoderGraph: wave (B, n) float32 -> log-mel, cut/padded to whole patches -> codes (B, M) int64

Exported with the dynamo exporter (torch.onnx.export(dynamo=True)): the TorchScript exporter handles neither
torch.stft (complex outputs) nor aten::rms_norm.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn import functional as F

from omniembed.tokenization.audio import SILENCE_DB

OPSET = 18


class TrunkGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model.embed(ids, mask)  # (B, max(embed_dims)), unit rows


class ImageEncoderGraph(nn.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # the [0, 1] scaling and HWC -> CHW of ImageTokenizer.preprocess, in the graph
        x = pixels.to(torch.float32).permute(0, 3, 1, 2) / 255.0  # (B, 3, S, S)
        return self.tokenizer.encode(x)  # (B, N)


class AudioEncoderGraph(nn.Module):
    """AudioTokenizer.encode, with the token count written as (n + step - 1) // step: the exporter traces
    AudioTokenizer.num_tokens' -(-n // step) into a floor, one token short whenever n is not a multiple."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        tok = self.tokenizer
        step = tok.config.hop * tok.patch
        frames = (wave.shape[1] + step - 1) // step * tok.patch
        mel = tok.logmel(wave)  # (B, n_mels, 1 + n // hop)
        mel = F.pad(mel, (0, tok.patch), value=SILENCE_DB)[:, :, :frames]  # (B, n_mels, M * patch)
        return tok.encode_mel(mel)  # (B, M)


def export_onnx(module: nn.Module, args: tuple, path: str | os.PathLike, input_names: list[str],
                output_names: list[str], dynamic_shapes: dict, opset: int = OPSET) -> None:
    module = module.eval()
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(module, args, dynamo=True, input_names=input_names, output_names=output_names,
                                    dynamic_shapes=dynamic_shapes, opset_version=opset, optimize=True,
                                    verbose=False, external_data=False)
    program.save(os.fspath(path))


def export_trunk(model, path, opset: int = OPSET) -> None:
    max_len = model.cfg.max_len
    ids = torch.randint(1, model.cfg.vocab_size, (2, min(8, max_len)))
    mask = torch.ones_like(ids, dtype=torch.bool)
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=1, max=max_len)
    export_onnx(TrunkGraph(model), (ids, mask), path, ["ids", "mask"], ["vectors"],
                {"ids": {0: batch, 1: seq}, "mask": {0: batch, 1: seq}}, opset)


def export_image_encoder(tokenizer, path, opset: int = OPSET) -> None:
    s = tokenizer.config.image_size
    pixels = torch.randint(0, 256, (2, s, s, 3), dtype=torch.uint8)
    export_onnx(ImageEncoderGraph(tokenizer), (pixels,), path, ["pixels"], ["codes"],
                {"pixels": {0: torch.export.Dim("batch", min=1)}}, opset)


def export_audio_encoder(tokenizer, path, opset: int = OPSET) -> None:
    cfg = tokenizer.config
    wave = torch.randn(1, cfg.sample_rate) * 0.1
    samples = torch.export.Dim("samples", min=cfg.n_fft // 2 + 1)
    export_onnx(AudioEncoderGraph(tokenizer), (wave,), path, ["wave"], ["codes"],
                {"wave": {0: torch.export.Dim("batch", min=1), 1: samples}}, opset)
