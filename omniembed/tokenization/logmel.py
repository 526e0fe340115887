"""The project's log-mel front-end: waveform -> log-mel spectrogram, in torch, exportable to ONNX.

Choices (librosa's defaults, so `librosa.feature.melspectrogram` with the same n_fft/hop/n_mels/fmin/fmax,
htk=False, norm="slaney", followed by `power_to_db(ref=1.0, amin=1e-10, top_db=None)`, is the reference):
- STFT: periodic Hann window of n_fft samples, centred frames (the signal is reflect-padded by n_fft // 2 on
  both sides), so a wave of n samples gives 1 + n // hop frames; power spectrum |X|^2.
- Mel filterbank: Slaney's mel scale (linear below 1 kHz, logarithmic above) with triangles normalised to
  unit area ("slaney" norm). Built here in numpy: librosa is a test-only reference.
- Log: 10 * log10(max(power, 1e-10)), i.e. decibels with a -100 dB floor for digital silence. No top_db
  clipping: it depends on each signal's maximum, which would make tokens depend on loudness elsewhere.

Agreement (tests/tokenization/test_logmel.py): the filterbank equals librosa.filters.mel to rtol 1e-4; the
log-mel of a decoded WAV is within 0.05 dB of librosa wherever the mel power is within 80 dB of its peak
(below that, fp32 rounding dominates the log); ONNX Runtime matches torch within 0.01 dB at lengths and
batch sizes other than the export example's.

The STFT is torch.stft; it exports through the dynamo ONNX exporter (torch.onnx.export(..., dynamo=True))
as the ONNX STFT op. The TorchScript exporter cannot export it (complex outputs), so use dynamo=True.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

DB_FLOOR_AMIN = 1e-10  # power floor before the log: -100 dB


# Slaney mel scale: 3 mels per 200 Hz up to 1 kHz, then log-spaced (27 mels per factor 6.4).
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above)."""
    hz = np.asarray(hz, dtype=np.float64)
    return np.where(hz >= _MIN_LOG_HZ,
                    _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP, hz / _F_SP)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) triangular filters on the Slaney mel scale, each with unit area."""
    fft_hz = np.linspace(0.0, sample_rate / 2, 1 + n_fft // 2)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges_hz)  # (n_mels + 1,)
    dist = edges_hz[:, None] - fft_hz[None, :]  # (n_mels + 2, n_freq)
    rising = -dist[:-2] / widths[:-1, None]
    falling = dist[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.astype(np.float32)


class LogMel(nn.Module):
    """forward(wave (B, n) float32) -> log-mel in dB, (B, n_mels, 1 + n // hop)."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 400, hop: int = 160, n_mels: int = 64,
                 fmin: float = 0.0, fmax: float | None = None):
        super().__init__()
        fmax = sample_rate / 2 if fmax is None else fmax
        self.sample_rate, self.n_fft, self.hop, self.n_mels = sample_rate, n_fft, hop, n_mels
        self.fmin, self.fmax = float(fmin), float(fmax)
        # Derived from the config, so not saved in state dicts.
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)),
                             persistent=False)

    @classmethod
    def from_config(cls, cfg) -> "LogMel":
        return cls(cfg.sample_rate, cfg.n_fft, cfg.hop, cfg.n_mels, cfg.fmin, cfg.fmax)

    def num_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop

    def power_spectrum(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)  # (B, n_freq, frames) complex
        return spec.real.square() + spec.imag.square()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        power = self.power_spectrum(wave.float())  # (B, n_freq, frames)
        mel = torch.matmul(self.mel_fb, power)  # (B, n_mels, frames)
        return 10.0 * torch.log10(torch.clamp(mel, min=DB_FLOOR_AMIN))
