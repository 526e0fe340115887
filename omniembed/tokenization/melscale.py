"""The Slaney mel scale and its filterbank in numpy alone: shared by the torch log-mel front-end
(omniembed.tokenization.logmel) and the torch-free runtime's (omniembed.runtime.logmel), so both build the
same filters."""

from __future__ import annotations

import numpy as np

DB_FLOOR_AMIN = 1e-10  # power floor before the log: -100 dB
SILENCE_DB = -100.0  # 10 * log10(DB_FLOOR_AMIN), as torch computes it in float32: the level of padded frames

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
