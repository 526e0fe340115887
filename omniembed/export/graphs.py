"""The three exported graphs as torch modules, and their export to ONNX.

Each wrapper's forward is the exact inference path of the torch object it wraps, from the raw input the
runtime has (ids, uint8 pixels, a waveform) to what the runtime needs (a unit vector, codes):
- TrunkGraph:        ids (B, T) int64, mask (B, T) bool -> OmniModel.embed (B, D) float32, L2-normalised
- ImageEncoderGraph: pixels (B, S, S, 3) uint8 -> ImageTokenizer.encode of pixels / 255 -> codes (B, N) int64
- AudioEncoderGraph: wave (B, n) float32 -> log-mel, cut/padded to whole patches -> codes (B, M) int64

Exported with the dynamo exporter (torch.onnx.export(dynamo=True)): the TorchScript exporter cannot export
aten::rms_norm.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn import functional as F

from omniembed.tokenization.audio import SILENCE_DB
from omniembed.tokenization.logmel import DB_FLOOR_AMIN

OPSET = 23


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
    """AudioTokenizer.encode, with two changes that keep its arithmetic:
    - the token count is written (n + step - 1) // step: the exporter traces AudioTokenizer.num_tokens'
      -(-n // step) into a floor, one token short whenever n is not a multiple of step;
    - the STFT is a strided Conv1d with the Hann-windowed DFT basis as its kernels (frames and values as
      torch.stft(center=True, reflect)): onnxruntime's STFT op does an O(n_fft^2) DFT when n_fft is not a power
      of 2, and took 85% of the audio encoder's time at n_fft=400; the convolution runs in its fast conv kernel."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer
        lm = tokenizer.logmel
        self.n_fft, self.hop = lm.n_fft, lm.hop
        self.register_buffer("dft", windowed_dft(lm.window, lm.n_fft), persistent=False)  # (2 * n_freq, 1, n_fft)

    def power_spectrum(self, wave: torch.Tensor) -> torch.Tensor:
        x = F.pad(wave[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")  # (B, 1, n + n_fft)
        spec = F.conv1d(x, self.dft, stride=self.hop)  # (B, 2 * n_freq, 1 + n // hop): real parts, then imaginary
        re, im = spec.chunk(2, dim=1)
        return re.square() + im.square()  # (B, n_freq, frames)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        tok = self.tokenizer
        step = tok.config.hop * tok.patch
        frames = (wave.shape[1] + step - 1) // step * tok.patch
        power = self.power_spectrum(wave.float())
        mel = 10.0 * torch.log10(torch.clamp(torch.matmul(tok.logmel.mel_fb, power), min=DB_FLOOR_AMIN))
        mel = F.pad(mel, (0, tok.patch), value=SILENCE_DB)[:, :, :frames]  # (B, n_mels, M * patch)
        return tok.encode_mel(mel)  # (B, M)


class AudioPowerEncoderGraph(nn.Module):
    """AudioEncoderGraph after its power spectrum: power (B, M * patch, n_freq), frames already cut or padded with
    silent (zero) frames to whole patches -> codes (B, M). The runtime computes the spectrum on the host with an
    FFT (omniembed.runtime.spectrum), where the wave-input graph spends most of its time in its DFT convolution.
    A zero frame comes out at the floor, 10 log10(DB_FLOOR_AMIN) = SILENCE_DB, the tokenizer's padding."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        tok = self.tokenizer
        mel = torch.matmul(power, tok.logmel.mel_fb.t()).transpose(1, 2)  # (B, n_mels, M * patch)
        return tok.encode_mel(10.0 * torch.log10(torch.clamp(mel, min=DB_FLOOR_AMIN)))


def windowed_dft(window: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Conv1d kernels computing the one-sided DFT of windowed frames: (2 * (n_fft // 2 + 1), 1, n_fft), the
    cosine (real) rows then the negated sine (imaginary) rows, built in float64 and rounded once."""
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    angle = 2.0 * torch.pi * k * n / n_fft  # (n_freq, n_fft)
    w = window.to(torch.float64)[None, :]
    return torch.cat([w * torch.cos(angle), -w * torch.sin(angle)]).float()[:, None, :]


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
    wave = torch.randn(2, cfg.sample_rate) * 0.1  # a batch of 1 would fix the batch size to 1 in the graph
    samples = torch.export.Dim("samples", min=cfg.n_fft // 2 + 1)
    export_onnx(AudioEncoderGraph(tokenizer), (wave,), path, ["wave"], ["codes"],
                {"wave": {0: torch.export.Dim("batch", min=1), 1: samples}}, opset)


def export_audio_power_encoder(tokenizer, path, opset: int = OPSET) -> None:
    cfg = tokenizer.config
    power = torch.rand(2, 4 * cfg.mel_patch_frames, cfg.n_fft // 2 + 1)
    frames = torch.export.Dim("patches", min=1) * cfg.mel_patch_frames
    export_onnx(AudioPowerEncoderGraph(tokenizer), (power,), path, ["power"], ["codes"],
                {"power": {0: torch.export.Dim("batch", min=1), 1: frames}}, opset)
