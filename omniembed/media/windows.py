"""Long audio and video, decoded as a stream of time windows: memory bounded by one window, not the clip.

    for w in media_windows("talk.wav", "audio", window=2.0, stride=1.0):
        w.start, w.end, w.wave            # seconds, and the window's mono samples at sample_rate
    for w in media_windows("walk.mp4", "video", window=2.0, stride=1.0, fps=1.0):
        w.frames, w.times, w.wave         # frames sampled at fps (times from the clip's start), its sound

The rule, one for every caller (training's corpus, both embedders, the server): a clip no longer than
WINDOWED_OVER x `window` is one window, the whole clip, decoded exactly as decode_audio / decode_video
decode it. A longer one is cut into windows of `window` seconds starting every `stride` seconds, plus a
last window that ends at the clip's end, so every instant is in at least one window. The limits and
errors are those of the decoders (the duration limit a keyword); an error found past the first windows
(a truncated tail) ends the stream with MediaError.

Only a WAV file given as a path is read from disk as it decodes; other inputs are held as encoded bytes
(a compressed clip is small next to its decoded samples and frames).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from omniembed.errors import MediaError
from omniembed.media.audio import MonoResampler, _trusted_duration, check_not_truncated
from omniembed.media.container import declared_seconds, ffmpeg_errors, open_container, pick_streams
from omniembed.media.framing import check_complete, check_wav_header
from omniembed.media.pcm import PCM_FORMATS, open_pcm
from omniembed.media.limits import MAX_AUDIO_SECONDS, MAX_MEDIA_BYTES, MAX_VIDEO_SECONDS, SAMPLE_RATE
from omniembed.media.sniff import AUDIO_FORMATS, AV_CONTAINERS, DEMUXERS, describe, sniff_format
from omniembed.media.source import Source, read_source, source_name
from omniembed.media.video import Demuxer, FrameSampler, _check_frame_size, _FrameStack

WINDOWED_OVER = 1.5  # clips longer than this many windows are cut into windows
TAIL = 0.1  # a part of a window past the last one that is not worth a window of its own
AUDIO_PACKETS_PER_EVENT = 8  # decoded sound reaches the cutter every few packets (~0.5 s of AAC), not each
_HEAD_BYTES = 1 << 16


@dataclass(frozen=True)
class Window:
    start: float  # seconds from the clip's start
    end: float
    wave: np.ndarray | None  # (n,) float32 mono at the sample rate; None for a silent video
    frames: np.ndarray | None = None  # video: (T, H, W, 3) uint8 sampled frames in [start, end)
    times: np.ndarray | None = None  # video: (T,) seconds of those frames from the clip's start
    whole: bool = False  # the clip was short: this one window is all of it


def check_window(window: float, stride: float) -> None:
    if not (window > 0 and 0 < stride <= window):
        raise ValueError(f"window={window} s and stride={stride} s: need 0 < stride <= window")


def media_windows(src: Source, modality: str, *, window: float, stride: float, sample_rate: int = SAMPLE_RATE,
                  fps: float = 2.0, max_seconds: float | None = None,
                  max_bytes: int = MAX_MEDIA_BYTES, side: int | None = None) -> Iterator[Window]:
    """The windows of an audio clip or a video (see the module docstring). max_seconds: the duration limit
    (default: MAX_AUDIO_SECONDS for audio, MAX_VIDEO_SECONDS for video); side: as decode_video's."""
    check_window(window, stride)
    if modality == "audio":
        limit = MAX_AUDIO_SECONDS if max_seconds is None else max_seconds
        yield from _Cutter(window, stride, sample_rate).cut(_audio_events(src, sample_rate, limit, max_bytes))
    elif modality == "video":
        limit = MAX_VIDEO_SECONDS if max_seconds is None else max_seconds
        yield from _Cutter(window, stride, sample_rate).cut(_video_events(src, sample_rate, fps, limit, max_bytes,
                                                                                side))
    else:
        raise ValueError(f"modality {modality!r}: only audio and video have windows")


# ---- decoding as a stream of events: ("audio", samples) and ("frame", (t, pixels)) -------------------------
def _open(src: Source, max_bytes: int) -> tuple[object, str, str, bytes | None]:
    """(what to open, name, format, the bytes when held in memory). A WAV path stays on disk."""
    name = source_name(src)
    if isinstance(src, (str, os.PathLike)) and not isinstance(src, (bytes, bytearray)):
        try:
            size = os.stat(src).st_size
            with open(src, "rb") as f:
                head = f.read(_HEAD_BYTES)
        except FileNotFoundError:
            raise MediaError(name, "no such file") from None
        except IsADirectoryError:
            raise MediaError(name, "is a directory, not a media file") from None
        except OSError as exc:
            raise MediaError(name, f"cannot read file: {exc.strerror or exc}") from exc
        if size and size <= max_bytes and sniff_format(head) == "wav":
            try:
                check_wav_header(head, size, name)
                return os.fspath(src), name, "wav", None
            except MediaError:
                if size <= len(head):
                    raise
                # the data chunk's header lies past the first bytes: check the whole file as in memory
    data, name = read_source(src, max_bytes)
    fmt = sniff_format(data)
    if fmt:
        check_complete(data, name, fmt)
    return io.BytesIO(data), name, fmt, data


def _container(target, name: str, fmt: str):
    if isinstance(target, io.BytesIO):
        return open_container(target.getvalue(), name, fmt)
    with ffmpeg_errors(name, f"opening as {fmt}"):
        return contextlib.closing(av.open(target, mode="r", format=DEMUXERS[fmt],
                                          options={"probesize": str(_HEAD_BYTES)}))


def _audio_events(src: Source, sample_rate: int, max_seconds: float, max_bytes: int):
    target, name, fmt, data = _open(src, max_bytes)
    if fmt not in AUDIO_FORMATS | AV_CONTAINERS:
        raise MediaError(name, f"expected audio, but the input is {describe(fmt, data or b'')}")
    if fmt in PCM_FORMATS:
        pcm = open_pcm(data if data is not None else target)
        if pcm is not None:
            yield from _pcm_events(pcm, name, sample_rate, max_seconds)
            return
    with _container(target, name, fmt) as container:
        _, stream = pick_streams(container, name)
        if stream is None:
            raise MediaError(name, f"{describe(fmt, data or b'')} has no audio track")
        mono = MonoResampler(name, sample_rate, max_seconds)
        total = 0
        with ffmpeg_errors(name, "decoding audio"):
            for k, frame in enumerate(container.decode(stream), start=1):
                mono.add(frame)
                if k % AUDIO_PACKETS_PER_EVENT == 0:
                    for chunk in mono.pop_chunks():
                        total += len(chunk)
                        yield "audio", chunk
        for chunk in mono.pop_chunks(final=True):
            total += len(chunk)
            yield "audio", chunk
        if total == 0:
            raise MediaError(name, "the audio track decoded to no samples")
        declared = None if data is None else _trusted_duration(data, fmt, stream)
        check_not_truncated(name, declared, total / sample_rate)


def _pcm_events(pcm, name: str, sample_rate: int, max_seconds: float):
    """A WAV/FLAC read by libsndfile block by block (from disk when it is a path)."""
    mono = MonoResampler(name, sample_rate, max_seconds)
    total, frames = 0, 0
    with contextlib.closing(pcm):
        mono.check_length(pcm.frames * sample_rate / pcm.rate)
        try:
            for block in pcm.blocks():
                frames += block.shape[1]
                mono.add_planar(block, pcm.rate)
                for chunk in mono.pop_chunks():
                    total += len(chunk)
                    yield "audio", chunk
        except MediaError:
            raise
        except Exception as exc:  # libsndfile failing midway: the file is damaged past its first blocks
            raise MediaError(name, f"decoding audio failed: {type(exc).__name__}: {exc}") from exc
    for chunk in mono.pop_chunks(final=True):
        total += len(chunk)
        yield "audio", chunk
    if frames < pcm.frames:
        check_not_truncated(name, pcm.frames / pcm.rate, frames / pcm.rate)
    if total == 0:
        raise MediaError(name, "the audio track decoded to no samples")


def _video_events(src: Source, sample_rate: int, fps: float, max_seconds: float, max_bytes: int,
                  side: int | None = None):
    from omniembed.media.limits import MAX_DECODED_BYTES, MAX_IMAGE_PIXELS

    target, name, fmt, data = _open(src, max_bytes)
    if fmt not in AV_CONTAINERS:
        raise MediaError(name, f"expected video, but the input is {describe(fmt, data or b'')}")
    sampler = FrameSampler(fps)
    with _container(target, name, fmt) as container:
        vstream, astream = pick_streams(container, name)
        if vstream is None:
            raise MediaError(name, f"{describe(fmt, data or b'')} has no video track")
        _check_frame_size(name, vstream, MAX_IMAGE_PIXELS)
        declared = declared_seconds(container, vstream)
        if declared is not None and declared > max_seconds + 1e-3:
            raise MediaError(name, f"video is {declared:.3f} s, over the limit of {max_seconds:g} s")
        mono = MonoResampler(name, sample_rate, max_seconds) if astream is not None else None
        stack = _FrameStack(name, MAX_DECODED_BYTES, side)  # one frame at a time: a window's frames are the cutter's
        demuxer = Demuxer(name, container, vstream, astream, sampler, mono, max_seconds)
        kept = waiting = 0
        for event in demuxer:
            if event is None:  # an audio packet: its sound is handed on a few packets at a time
                waiting += 1
                if waiting >= AUDIO_PACKETS_PER_EVENT:
                    waiting = 0
                    for chunk in mono.pop_chunks():
                        yield "audio", chunk
                continue
            t, frame = event
            stack.add(frame, t)
            kept += 1
            yield "frame", (stack.times.pop(), stack.frames.pop())
        if mono is not None:
            for chunk in mono.pop_chunks(final=True):
                yield "audio", chunk
        if not kept:
            raise MediaError(name, "the video track decoded to no frames")
        yield "end", demuxer.last_t + demuxer.step


# ---- cutting the stream into windows -----------------------------------------------------------------------
class _Cutter:
    def __init__(self, window: float, stride: float, sample_rate: int):
        self.window, self.stride, self.rate = window, stride, sample_rate

    def cut(self, events) -> Iterator[Window]:
        rate = self.rate
        wave = np.zeros(0, np.float32)  # samples from wave_start on, with `fresh` after them
        fresh: list[np.ndarray] = []  # chunks not joined yet: joining each as it came copied the clip per chunk
        wave_start = 0
        frames: list[tuple[float, np.ndarray]] = []
        audio_total, video_end, has_audio, is_video = 0, 0.0, False, False
        windowed, k = False, 0
        threshold = WINDOWED_OVER * self.window

        def clip_seconds():
            return max(audio_total / rate, video_end)

        def joined() -> np.ndarray:
            nonlocal wave
            if fresh:
                wave = np.concatenate([wave, *fresh]) if len(wave) else (
                    fresh[0] if len(fresh) == 1 else np.concatenate(fresh))
                fresh.clear()
            return wave

        def take(start: float, end: float, whole: bool = False) -> Window:
            wave = joined()
            lo, hi = int(round(start * rate)) - wave_start, int(round(end * rate)) - wave_start
            part = wave[max(lo, 0):max(hi, 0)].copy() if has_audio else None
            kept = [(t, f) for t, f in frames if start - 1e-9 <= t < end or (whole and t >= start)]
            return Window(start, end, part, np.stack([f for _, f in kept]) if kept else None,
                          np.asarray([t for t, _ in kept], dtype=np.float64) if kept else None, whole)

        for kind, value in events:
            if kind == "audio":
                has_audio = True
                fresh.append(value)
                audio_total += len(value)
            elif kind == "frame":
                is_video = True
                frames.append(value)
                video_end = max(video_end, value[0])
            else:  # "end": the video track's last frame time plus one frame
                video_end = max(video_end, value)
            if not windowed and clip_seconds() > threshold:
                windowed = True
            while windowed and self._covered(k, audio_total / rate if has_audio or not is_video else None,
                                            video_end if is_video else None):
                start = k * self.stride
                yield take(start, start + self.window)
                k += 1
                # drop what no later window needs: the last window (ending at the clip's end) may start as
                # early as the window just emitted
                keep_from = (k - 1) * self.stride
                drop = int(round(keep_from * rate)) - wave_start
                if drop > 0:
                    wave, wave_start = joined()[drop:], wave_start + drop
                frames = [(t, f) for t, f in frames if t >= keep_from - 1e-9]
        total = clip_seconds()
        if not windowed:
            yield take(0.0, total, whole=True)
            return
        last_end = (k - 1) * self.stride + self.window if k else 0.0
        if total > last_end + TAIL * self.window:
            start = max(0.0, total - self.window)
            yield take(start, total)

    def _covered(self, k: int, audio_s: float | None, video_s: float | None) -> bool:
        """Whether the streams have passed the end of window k (both, for a video with sound)."""
        end = k * self.stride + self.window
        return all(s is None or s >= end for s in (audio_s, video_s)) and not (audio_s is None and video_s is None)
