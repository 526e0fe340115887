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


def open_pcm(src: bytes | str | os.PathLike) -> PcmStream | None:
    """`src` (the bytes of a sniffed WAV/FLAC, or its path) opened by libsndfile; None when it cannot be."""
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
