"""The audio tokenizer's power spectrum on the host, with a real FFT, for the torch-free runtime.

The same frames as omniembed.tokenization.audio.AudioTokenizer.mel (and the bundle's wave-input graph):
centred frames of n_fft samples every hop (the wave reflect-padded by n_fft // 2), a periodic Hann window,
the one-sided power spectrum; then padded with silent frames or cut to whole patches of mel_patch_frames
frames. The bundle's audio_power_encoder graph does the rest (mel filters, dB, normalisation, encoder, codes);
a silent frame (zero power) gives exactly the floor the tokenizer pads with.

Why on the host: the wave-input graph computes the spectrum as a convolution with the windowed DFT basis,
O(n_fft^2) per frame, more than half of the audio encoder's time (16 two-second clips: 6.3 of 11 ms); an FFT
does the same in a fraction. scipy.fft (pocketfft, float32 transforms on several threads) where installed,
numpy's own FFT otherwise. No matrix product here: numpy's BLAS threads spin after each product, taking the
cores from the decoding workers (video end to end 0.7x with the mel filters applied here).
"""

from __future__ import annotations

import os
import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

try:
    import scipy.fft as _fft

    def _rfft(frames: np.ndarray, workers: int) -> np.ndarray:
        return _fft.rfft(frames, axis=-1, workers=workers)
except ImportError:  # pragma: no cover - scipy comes with the serve extra
    def _rfft(frames: np.ndarray, workers: int) -> np.ndarray:
        return np.fft.rfft(frames, axis=-1)


class HostPowerSpectrum:
    """__call__(waves (B, n) float32) -> power (B, M * patch, n_fft // 2 + 1) float32, M = ceil(n / (hop * patch)).

    The result is a buffer this thread reuses on its next call (read it before then): fresh arrays of a few
    MB for every batch cost more in page faults than the FFT itself (16 two-second clips: 8.7 ms against 2.7),
    so the frames are windowed into buffers kept per thread and transformed CHUNK at a time; only batches over
    KEEP_BYTES get arrays of their own."""

    CHUNK = 1024  # frames per transform call: its output (1.6 MB) comes from the heap once warm
    KEEP_BYTES = 16 << 20  # the windowed frames of 32 two-second clips: 10 MB

    def __init__(self, *, n_fft: int, hop: int, patch: int, threads: int | None = None):
        self.n_fft, self.hop, self.patch = int(n_fft), int(hop), int(patch)
        self.threads = max(1, int(threads or os.cpu_count() or 1))
        n = np.arange(self.n_fft, dtype=np.float64)
        self.window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.n_fft)).astype(np.float32)  # periodic Hann
        self._local = threading.local()

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        waves = np.asarray(waves, dtype=np.float32)
        n = waves.shape[1]
        half = self.n_fft // 2
        if n <= half:  # reflect padding needs more samples than n_fft // 2: extend with silence, as the tokenizer
            waves = np.pad(waves, ((0, 0), (0, half + 1 - n)))
        padded = np.pad(waves, ((0, 0), (half, half)), mode="reflect")
        step = self.hop * self.patch
        want = (n + step - 1) // step * self.patch  # frames of M whole patches (n before any silence was added)
        frames = sliding_window_view(padded, self.n_fft, axis=1)[:, ::self.hop][:, :want]  # a view, no copy
        have, batch, n_freq = frames.shape[1], waves.shape[0], self.n_fft // 2 + 1
        # every frame of the batch windowed into one (rows, n_fft) block, transformed CHUNK rows at a time
        block = self._buffer("block", (batch, have, self.n_fft))
        np.multiply(frames, self.window, out=block)
        rows = block.reshape(batch * have, self.n_fft)
        power = self._buffer("power", (batch, have, n_freq))
        flat = power.reshape(batch * have, n_freq)
        for r in range(0, len(rows), self.CHUNK):
            spec = _rfft(rows[r:r + self.CHUNK], self.threads)  # (<= CHUNK, n_freq) complex64
            np.square(spec.real, out=flat[r:r + self.CHUNK])
            flat[r:r + self.CHUNK] += np.square(spec.imag)
        if have == want:
            return power
        out = self._buffer("out", (batch, want, n_freq))
        out[:, :have] = power
        out[:, have:] = 0.0  # silent frames up to whole patches
        return out

    def _buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape))
        if size * 4 > self.KEEP_BYTES:
            return np.empty(shape, np.float32)
        held = getattr(self._local, name, None)
        if held is None or held.size < size:
            held = np.empty(size, np.float32)
            setattr(self._local, name, held)
        return held[:size].reshape(shape)


def host_power_spectrum(tokenizers: dict, threads: int | None = None) -> HostPowerSpectrum:
    """The front-end a bundle's manifest describes (its "tokenizers" section)."""
    return HostPowerSpectrum(n_fft=tokenizers["n_fft"], hop=tokenizers["hop"], patch=tokenizers["mel_patch_frames"],
                             threads=threads)
