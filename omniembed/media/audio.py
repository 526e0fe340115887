"""Decode audio (WAV, FLAC, MP3, Ogg, or the audio track of MP4/WebM) to mono float32 at one rate."""

from __future__ import annotations

import av
import numpy as np

from omniembed.errors import MediaError
from omniembed.media.container import ffmpeg_errors, open_container, pick_streams
from omniembed.media.framing import check_complete
from omniembed.media.limits import MAX_AUDIO_SECONDS, MAX_MEDIA_BYTES, SAMPLE_RATE
from omniembed.media.sniff import AUDIO_FORMATS, AV_CONTAINERS, describe, id3_size, sniff_format
from omniembed.media.source import Source, read_source

# A stream that decodes to less than its header's duration, by more than this, was cut short. Measured on
# our own encodes, WAV/FLAC/MP3(with an Info tag)/Ogg decode to within 7 ms of what they declare.
_TRUNCATION_SLACK_SECONDS = 0.03
_TRUNCATION_SLACK_FRACTION = 0.01


def decode_audio(
    src: Source,
    *,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = MAX_AUDIO_SECONDS,
    max_bytes: int = MAX_MEDIA_BYTES,
) -> np.ndarray:
    """Return (n,) float32 mono samples in [-1, 1] at `sample_rate`.

    Channels are averaged and the rate converted by FFmpeg's resampler. Raises MediaError when the input
    is not audio, holds no audio track, is truncated or detectably corrupt, or runs past `max_seconds`.
    Damage inside a payload without checksums (PCM WAV, most MP3 frames) decodes as damaged sound.
    """
    data, name = read_source(src, max_bytes)
    fmt = sniff_format(data)
    if fmt not in AUDIO_FORMATS | AV_CONTAINERS:
        raise MediaError(name, f"expected audio, but the input is {describe(fmt, data)}")
    check_complete(data, name, fmt)  # before FFmpeg, whose errors on a cut file say less
    with open_container(data, name, fmt) as container:
        _, stream = pick_streams(container, name)
        if stream is None:
            raise MediaError(name, f"{describe(fmt, data)} has no audio track")
        mono = MonoResampler(name, sample_rate, max_seconds)
        with ffmpeg_errors(name, "decoding audio"):
            for frame in container.decode(stream):
                mono.add(frame)
        wave = mono.finish()
        check_not_truncated(name, _trusted_duration(data, fmt, stream), len(wave) / sample_rate)
    return wave


def _trusted_duration(data: bytes, fmt: str, stream) -> float | None:
    """The audio track's duration where its header states it, rather than FFmpeg estimating it."""
    if fmt == "wav":
        return None  # FFmpeg derives it from the file size; check_complete reads the RIFF header instead
    if fmt == "mp3" and not has_mp3_length_tag(data):
        return None  # FFmpeg guesses from bitrate x file size, which a cut file shrinks in step
    # Per-track only: a container-wide figure spans the video too, or is an estimate.
    return float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None


class MonoResampler:
    """Collects decoded audio frames as mono float32 at one rate, stopping at a length limit.

    Mixdown is the plain mean of the channels, done here rather than by FFmpeg: its stereo-to-mono matrix
    sums both sides at 1/sqrt(2), which lifts in-phase stereo above full scale and then clips.
    """

    def __init__(self, name: str, sample_rate: int, max_seconds: float | None):
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.name = name
        self.sample_rate = sample_rate
        self.limit = None if max_seconds is None else int(round(max_seconds * sample_rate))
        self._resampler: av.AudioResampler | None = None
        self._input_key: tuple | None = None
        self._chunks: list[np.ndarray] = []
        self._count = 0

    def add(self, frame: av.AudioFrame) -> None:
        key = (frame.layout.name, frame.sample_rate, frame.format.name)
        if key != self._input_key:
            # A stream may switch layout or rate midway (broadcast AAC does); start a fresh resampler.
            self._flush()
            self._input_key = key
            with ffmpeg_errors(self.name, "setting up the audio resampler"):
                self._resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=self.sample_rate)
        self._take(frame)

    def pop_chunks(self, final: bool = False) -> list[np.ndarray]:
        """The mono chunks produced since the last call, clipped as finish() clips (final: drain the
        resampler first); for decoding as a stream."""
        if final:
            self._flush()
        out = [np.clip(c.astype(np.float32, copy=False), -1.0, 1.0) for c in self._chunks]
        self._chunks = []
        return out

    def finish(self) -> np.ndarray:
        self._flush()
        if not self._chunks:
            raise MediaError(self.name, "the audio track decoded to no samples")
        wave = np.concatenate(self._chunks).astype(np.float32, copy=False)
        return np.clip(wave, -1.0, 1.0)

    def _flush(self) -> None:
        if self._resampler is not None:
            self._take(None)  # drain the resampler's delay line
            self._resampler = None

    def _take(self, frame: av.AudioFrame | None) -> None:
        with ffmpeg_errors(self.name, "resampling audio"):
            out = self._resampler.resample(frame)
        for chunk in out:
            mono = chunk.to_ndarray().mean(axis=0)  # planar (channels, n) -> (n,)
            self._chunks.append(mono)
            self._count += mono.size
        if self.limit is not None and self._count > self.limit:
            raise MediaError(self.name, f"audio is longer than the limit of {self.limit / self.sample_rate:g} s")


def check_not_truncated(name: str, declared: float | None, decoded: float) -> None:
    """Raise when far less came out than the header promised: the file was cut short or is damaged."""
    if declared is None:
        return
    slack = max(_TRUNCATION_SLACK_SECONDS, _TRUNCATION_SLACK_FRACTION * declared)
    if decoded < declared - slack:
        raise MediaError(
            name, f"truncated or damaged: the header declares {declared:.3f} s but only {decoded:.3f} s decoded"
        )


def has_mp3_length_tag(data: bytes) -> bool:
    """True when the first MPEG frame carries a Xing/Info/VBRI header, i.e. the file states its exact length."""
    start = id3_size(data)
    first_frame = data[start:start + 200]  # the tag sits at most 36 bytes past the frame header
    return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))
