"""Decode audio (WAV, FLAC, MP3, Ogg, or the audio track of MP4/WebM) to mono float32 at one rate."""

from __future__ import annotations

import av
import numpy as np

from omniembed.errors import MediaError
from omniembed.media.container import ffmpeg_errors, open_container, pick_streams
from omniembed.media.framing import check_complete
from omniembed.media.limits import MAX_AUDIO_SECONDS, MAX_MEDIA_BYTES, SAMPLE_RATE
from omniembed.media.pcm import PCM_FORMATS, open_pcm
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

    WAV and FLAC are read by libsndfile (omniembed.media.pcm), everything else by FFmpeg. Channels are
    averaged and the rate converted by FFmpeg's resampler, only where it differs. Raises MediaError when the input
    is not audio, holds no audio track, is truncated or detectably corrupt, or runs past `max_seconds`.
    Damage inside a payload without checksums (PCM WAV, most MP3 frames) decodes as damaged sound.
    """
    data, name = read_source(src, max_bytes)
    fmt = sniff_format(data)
    if fmt not in AUDIO_FORMATS | AV_CONTAINERS:
        raise MediaError(name, f"expected audio, but the input is {describe(fmt, data)}")
    check_complete(data, name, fmt)  # before FFmpeg, whose errors on a cut file say less
    if fmt in PCM_FORMATS:
        wave = _decode_pcm(data, name, sample_rate, max_seconds)
        if wave is not None:
            return wave
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


def _decode_pcm(data: bytes, name: str, sample_rate: int, max_seconds: float | None) -> np.ndarray | None:
    """A WAV/FLAC through libsndfile, its length checked against the limit from the header before reading;
    None: libsndfile cannot read it whole, so FFmpeg decodes it (and reports what is wrong)."""
    stream = open_pcm(data)
    if stream is None:
        return None
    mono = MonoResampler(name, sample_rate, max_seconds)
    try:
        mono.check_length(stream.frames * sample_rate / stream.rate)
        planar = stream.read_all()
    except MediaError:
        raise
    except Exception:
        return None
    finally:
        stream.close()
    if planar.shape[1] < stream.frames:
        return None  # cut short or damaged
    mono.add_planar(planar, stream.rate)
    return mono.finish()


def _trusted_duration(data: bytes, fmt: str, stream) -> float | None:
    """The audio track's duration where its header states it, rather than FFmpeg estimating it."""
    if fmt == "wav":
        return None  # FFmpeg derives it from the file size; check_complete reads the RIFF header instead
    if fmt == "mp3" and not has_mp3_length_tag(data):
        return None  # FFmpeg guesses from bitrate x file size, which a cut file shrinks in step
    # Per-track only: a container-wide figure spans the video too, or is an estimate.
    return float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None


class MonoResampler:
    """Collects decoded audio as mono float32 at one rate, stopping at a length limit.

    Frames become planar float in numpy (FFmpeg's own scaling: x / 2^15, x / 2^31, (x - 128) / 2^7), so
    audio already at the rate needs no resampler at all; audio at another rate goes through FFmpeg's
    resampler in blocks of BLOCK_FRAMES, not frame by frame (its output does not depend on the blocking).
    Mixdown is the plain mean of the channels, done here rather than by FFmpeg: its stereo-to-mono matrix
    sums both sides at 1/sqrt(2), which lifts in-phase stereo above full scale and then clips.
    """

    def __init__(self, name: str, sample_rate: int, max_seconds: float | None):
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.name = name
        self.sample_rate = sample_rate
        self.limit = None if max_seconds is None else int(round(max_seconds * sample_rate))
        self._key: tuple[int, int] | None = None  # (channels, rate) of the audio now arriving
        self._layout: str | None = None
        self._resampler: av.AudioResampler | None = None
        self._pending: list[np.ndarray] = []  # planar blocks at the input rate, waiting for the resampler
        self._pending_n = 0
        self._chunks: list[np.ndarray] = []
        self._count = 0

    def add(self, frame: av.AudioFrame) -> None:
        rate = frame.sample_rate
        if rate == self.sample_rate and frame.format.name == "fltp" and frame.layout.nb_channels == 1:
            # what AAC, Opus and Vorbis decoders give for a mono track at the rate: the samples as they are,
            # without planar_float's per-frame format walk (a video's track has ~16 frames a second)
            planar = np.frombuffer(frame.planes[0], dtype=np.float32, count=frame.samples)[None]
        else:
            with ffmpeg_errors(self.name, "reading decoded audio"):
                planar = planar_float(frame)
        self.add_planar(planar, rate, frame.layout.name)

    def add_planar(self, planar: np.ndarray, rate: int, layout: str | None = None) -> None:
        """(channels, n) float32 samples at `rate`."""
        key = (planar.shape[0], int(rate))
        if key != self._key:
            # A stream may switch layout or rate midway (broadcast AAC does); start afresh.
            self._flush()
            self._key, self._layout = key, _layout_for(planar.shape[0], layout)
        if key[1] == self.sample_rate:
            self._emit(planar.mean(axis=0) if planar.shape[0] > 1 else planar[0])
            return
        self._pending.append(planar)
        self._pending_n += planar.shape[1]
        self.check_length(self._count + self._pending_n * self.sample_rate / key[1])
        if self._pending_n >= BLOCK_FRAMES:
            self._resample_pending()

    def pop_chunks(self, final: bool = False) -> list[np.ndarray]:
        """The mono chunks produced since the last call, clipped as finish() clips (final: drain the
        resampler first); for decoding as a stream."""
        if final:
            self._flush()
        if not self._chunks:
            return []
        # one array for all of them: clipping and handing on each decoded frame's few samples cost more
        joined = self._chunks[0] if len(self._chunks) == 1 else np.concatenate(self._chunks)
        self._chunks = []
        return [np.clip(joined.astype(np.float32, copy=False), -1.0, 1.0)]

    def finish(self) -> np.ndarray:
        self._flush()
        if not self._chunks:
            raise MediaError(self.name, "the audio track decoded to no samples")
        wave = self._chunks[0] if len(self._chunks) == 1 else np.concatenate(self._chunks)
        return np.clip(wave.astype(np.float32, copy=False), -1.0, 1.0)

    def _flush(self) -> None:
        self._resample_pending()
        if self._resampler is not None:
            self._take(None)  # drain the resampler's delay line
            self._resampler = None

    def _resample_pending(self) -> None:
        if not self._pending:
            return
        block = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending, axis=1)
        self._pending, self._pending_n = [], 0
        channels, rate = self._key
        if self._layout is None:  # a channel count FFmpeg has no layout for: mix down first (resampling is linear)
            block, self._layout = block.mean(axis=0, keepdims=True), "mono"
        with ffmpeg_errors(self.name, "resampling audio"):
            if self._resampler is None:
                self._resampler = av.AudioResampler(format="fltp", layout=self._layout, rate=self.sample_rate)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block, dtype=np.float32), format="fltp",
                                               layout=self._layout)
            frame.sample_rate = rate
        self._take(frame)

    def _take(self, frame: av.AudioFrame | None) -> None:
        with ffmpeg_errors(self.name, "resampling audio"):
            out = self._resampler.resample(frame)
        for chunk in out:
            planar = chunk.to_ndarray()  # (channels, n)
            self._emit(planar.mean(axis=0) if planar.shape[0] > 1 else planar[0])

    def _emit(self, mono: np.ndarray) -> None:
        self._chunks.append(mono)
        self._count += mono.size
        self.check_length(self._count)

    def check_length(self, count: float) -> None:
        """Refuse `count` samples at the output rate when they are over the limit."""
        if self.limit is not None and count > self.limit:
            raise MediaError(self.name, f"audio is longer than the limit of {self.limit / self.sample_rate:g} s")


BLOCK_FRAMES = 1 << 16  # input frames per resampler call

# FFmpeg's sample formats as numpy sees them (frame.to_ndarray), and the scale FFmpeg uses to make them float
_DTYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64, "flt": np.float32, "dbl": np.float64}
_INT_SCALE = {"s16": 2.0 ** -15, "s32": 2.0 ** -31, "s64": 2.0 ** -63}


def planar_float(frame: av.AudioFrame) -> np.ndarray:
    """A decoded frame's samples as (channels, n) float32, scaled as FFmpeg converts them to float."""
    fmt = frame.format
    channels = len(frame.layout.channels)
    dtype = _DTYPES.get(fmt.packed.name)
    if fmt.is_planar and dtype is not None:  # straight from the planes: to_ndarray stacks them in Python
        arr = np.stack([np.frombuffer(p, dtype=dtype, count=frame.samples) for p in frame.planes[:channels]])
    else:
        arr = frame.to_ndarray()  # planar: (channels, n); packed: (1, n * channels)
    if not fmt.is_planar:
        arr = arr.reshape(-1, channels).T
    base = fmt.packed.name
    if base == "flt":
        return arr if arr.dtype == np.float32 else arr.astype(np.float32)
    if base == "dbl":
        return arr.astype(np.float32)
    if base == "u8":
        return (arr.astype(np.float32) - 128.0) * np.float32(2.0 ** -7)
    if base in _INT_SCALE:
        return arr.astype(np.float32) * np.float32(_INT_SCALE[base])
    raise ValueError(f"unsupported sample format {fmt.name}")


def _layout_for(channels: int, layout: str | None) -> str | None:
    """A channel layout FFmpeg's resampler accepts for this many channels (None: it has none)."""
    if layout:
        return layout
    if channels == 1:
        return "mono"
    try:
        return av.AudioLayout(f"{channels}c").name
    except (ValueError, av.FFmpegError):
        return None


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
