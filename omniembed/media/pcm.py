"""WAV and FLAC read by libsndfile (soundfile): no container probe, no per-frame decode calls.

FFmpeg spent ~10 ms opening each WAV (its demuxer reads through Python file callbacks) and converted the
samples frame by frame; libsndfile reads the same bytes in one call. Its integer-to-float scaling is
FFmpeg's (x / 2^15 for 16-bit, x / 2^31 for 32-bit, 24-bit widened to 32), so the samples are identical.
What libsndfile cannot read (odd codecs in a RIFF, a data chunk of unknown size, damage) returns None here
and goes down the FFmpeg path, which reports its errors as it always has.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import numpy as np

from omniembed.media.framing import wav_pcm_layout

PCM_FORMATS = frozenset({"wav", "flac"})
_UNKNOWN_FRAMES = 1 << 62  # libsndfile's frame count when a header does not state it
BLOCK_FRAMES = 1 << 16  # frames per block when reading from disk as a stream


def _soundfile():
    try:
        import soundfile
    except (ImportError, OSError):  # no wheel, or a system without libsndfile: FFmpeg decodes everything
        return None
    return soundfile


class PcmStream:
    """An open WAV/FLAC: rate, channels and the frame count its header states (None: not stated)."""

    def __init__(self, handle):
        self._f = handle
        self.rate, self.channels = int(handle.samplerate), int(handle.channels)
        frames = int(handle.frames)
        self.frames = frames if 0 < frames < _UNKNOWN_FRAMES else None

    def read_all(self) -> np.ndarray:
        """(channels, n) float32: every frame."""
        return np.ascontiguousarray(self._f.read(dtype="float32", always_2d=True).T)

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """(channels, n) float32 blocks, in order."""
        while True:
            block = self._f.read(frames, dtype="float32", always_2d=True)
            if not len(block):
                return
            yield np.ascontiguousarray(block.T)

    def close(self) -> None:
        self._f.close()


class ArrayPcm:
    """A WAV of plain PCM held in memory, read straight from its bytes with numpy (PcmStream's interface).

    libsndfile reads bytes in memory through Python callbacks, a few dozen per file (16 two-second clips:
    about 3 ms, most of decoding them); the samples are the same, scaled as libsndfile and FFmpeg scale them
    (x / 2^15, x / 2^31, (x - 128) / 2^7), each a power of two, so exactly."""

    _SCALE = {"u1": 2.0 ** -7, "<i2": 2.0 ** -15, "<i4": 2.0 ** -31, "<f4": None}

    def __init__(self, data: bytes, layout: tuple[str, int, int, int, int]):
        dtype, self.channels, self.rate, offset, self.frames = layout
        self._dtype = dtype
        self._samples = np.frombuffer(data, dtype=dtype, count=self.frames * self.channels, offset=offset)

    def _float(self, raw: np.ndarray) -> np.ndarray:
        scale = self._SCALE[self._dtype]
        if scale is None:
            out = raw.astype(np.float32)
        elif self._dtype == "u1":
            out = (raw.astype(np.float32) - np.float32(128.0)) * np.float32(scale)
        else:
            out = raw.astype(np.float32) * np.float32(scale)
        return np.ascontiguousarray(out.reshape(-1, self.channels).T)  # (channels, n)

    def read_all(self) -> np.ndarray:
        return self._float(self._samples)

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        step = frames * self.channels
        for start in range(0, len(self._samples), step):
            yield self._float(self._samples[start:start + step])

    def close(self) -> None:
        self._samples = None


def open_pcm(src: bytes | str | os.PathLike) -> PcmStream | ArrayPcm | None:
    """`src` (the bytes of a sniffed WAV/FLAC, or its path) opened by numpy (plain PCM WAV in memory) or
    libsndfile; None when neither can."""
    if isinstance(src, (bytes, bytearray)):
        layout = wav_pcm_layout(src) if src[:4] == b"RIFF" else None
        if layout is not None:
            return ArrayPcm(src, layout)
    sf = _soundfile()
    if sf is None:
        return None
    try:
        handle = sf.SoundFile(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else src)
    except Exception:  # LibsndfileError, RuntimeError, TypeError on unsupported or damaged input
        return None
    stream = PcmStream(handle)
    if stream.frames is None or stream.channels < 1 or stream.rate <= 0:
        stream.close()  # a streamed WAV with no stated length: FFmpeg reads it to the end
        return None
    return stream
