"""The image and audio tokenizer encoders as ONNX Runtime sessions, with the interface DocumentTokenizer
expects of a tokenizer (numpy in and out), so the runtime builds ids through the same DocumentTokenizer as
the torch path.

What cannot live in the graph stays here: squaring an image of any size to the tokenizer's side with Pillow
(omniembed.media.image.to_square, shared with the torch tokenizer). Scaling to [0, 1], the layout change,
the log-mel front-end and the per-bin normalisation are inside the graphs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort
from PIL import Image

from omniembed.errors import MediaError
from omniembed.media.image import to_square
from omniembed.runtime.spectrum import HostPowerSpectrum


class OnnxImageTokenizer:
    """pixels -> image codes through image_encoder.onnx."""

    def __init__(self, session: ort.InferenceSession, *, image_size: int, image_resize: str, codebook_size: int,
                 tokens_per_image: int, max_batch: int = 64):
        self.session, self.image_size, self.image_resize = session, int(image_size), image_resize
        self.codebook_size, self.tokens_per_image, self.max_batch = int(codebook_size), int(tokens_per_image), max_batch

    def preprocess(self, pixels: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """(H, W, 3) uint8 array, or a list of them (sizes may differ) -> (B, S, S, 3) uint8."""
        batch = [pixels] if isinstance(pixels, np.ndarray) else list(pixels)
        out = np.empty((len(batch), self.image_size, self.image_size, 3), dtype=np.uint8)
        for i, arr in enumerate(batch):
            arr = np.asarray(arr)
            if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
                raise MediaError(f"pixels[{i}]", f"expected an (H, W, 3) uint8 array, got {arr.dtype} {arr.shape}")
            if arr.shape[:2] == (self.image_size, self.image_size):  # squared already (the decoding workers do)
                out[i] = arr
            else:
                out[i] = np.asarray(to_square(Image.fromarray(arr), self.image_size, self.image_resize))
        return out

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 -> (B, tokens_per_image) int64 codes, row-major over the grid."""
        parts = [self.session.run(None, {"pixels": pixels[i:i + self.max_batch]})[0]
                 for i in range(0, len(pixels), self.max_batch)]
        return np.concatenate(parts) if parts else np.zeros((0, self.tokens_per_image), dtype=np.int64)


class OnnxAudioTokenizer:
    """mono wave at `sample_rate` -> audio codes through audio_encoder.onnx (log-mel front-end inside)."""

    def __init__(self, session: ort.InferenceSession, *, sample_rate: int, codebook_size: int, n_fft: int,
                 samples_per_token: int, power_session: ort.InferenceSession | None = None,
                 frontend: HostPowerSpectrum | None = None):
        self.session, self.sample_rate, self.codebook_size = session, int(sample_rate), int(codebook_size)
        self.n_fft, self.samples_per_token = int(n_fft), int(samples_per_token)
        batch = session.get_inputs()[0].shape[0]
        self.max_batch = batch if isinstance(batch, int) else None  # bundles exported before batching take 1
        # Bundles with audio_power_encoder.onnx: the power spectrum on the host (an FFT), the rest in that graph.
        if (power_session is None) != (frontend is None):
            raise ValueError("power_session and frontend come together: the graph takes what the frontend computes")
        self.power_session, self.frontend = power_session, frontend

    def num_tokens(self, n_samples: int) -> int:
        return -(-n_samples // self.samples_per_token)

    def encode_one(self, wave: np.ndarray) -> np.ndarray:
        """(n,) float32 -> (M,) int64, M = ceil(n / samples_per_token)."""
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"audio wave: expected (n,), got {wave.shape}")
        return self.encode_batch(wave[None])[0]

    def encode_batch(self, waves: np.ndarray) -> np.ndarray:
        """(B, n) float32 waves of one length -> (B, M) int64 codes."""
        waves = np.ascontiguousarray(waves, dtype=np.float32)
        if waves.ndim != 2:
            raise ValueError(f"audio waves: expected (B, n), got {waves.shape}")
        if waves.shape[1] <= self.n_fft // 2:  # the centred STFT reflect-pads by n_fft // 2, which needs more
            raise MediaError(f"<{waves.shape[1]} samples>", f"audio shorter than {self.n_fft // 2 + 1} samples "
                             f"({(self.n_fft // 2 + 1) / self.sample_rate * 1000:.1f} ms) cannot be tokenized")
        if self.power_session is not None:
            return self.power_session.run(None, {"power": self.frontend(waves)})[0]
        step = self.max_batch or len(waves)
        parts = [self.session.run(None, {"wave": waves[i:i + step]})[0] for i in range(0, len(waves), step)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
