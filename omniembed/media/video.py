"""Decode video (MP4, WebM/Matroska, Ogg) to frames sampled at a fixed rate, plus the audio track."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from omniembed.errors import MediaError
from omniembed.media.audio import MonoResampler
from omniembed.media.container import declared_seconds, ffmpeg_errors, open_container, pick_streams
from omniembed.media.framing import check_complete
from omniembed.media.image import reduced_size
from omniembed.media.limits import (
    MAX_DECODED_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_MEDIA_BYTES,
    MAX_VIDEO_SECONDS,
    SAMPLE_RATE,
)
from omniembed.media.sniff import AV_CONTAINERS, describe, sniff_format
from omniembed.media.source import Source, read_source

# Timestamps are rationals rounded to floats; a frame this close before a sampling instant counts as at it.
_TIME_EPS = 1e-3


@dataclass(frozen=True)
class Video:
    """Frames sampled by presentation time, and the audio track decoded like decode_audio would."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    times: np.ndarray  # (T,) float64, presentation time of each frame in seconds from the stream start
    audio: np.ndarray | None  # (n,) float32 mono at sample_rate; None when there is no audio track
    sample_rate: int
    duration: float  # seconds: as the video track (or else the container) states it, else as decoded


class FrameSampler:
    """Keeps the first decoded frame at or after each instant 0, 1/fps, 2/fps, ..., each frame at most once.

    A frame covering several instants (sampling faster than the source) is kept once, so the output never
    repeats a frame; it then holds every source frame.
    """

    def __init__(self, fps: float, max_frames: int | None = None):
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"fps must be a positive number, got {fps}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1 or None, got {max_frames}")
        self.fps = float(fps)
        self.max_frames = max_frames
        self.kept = 0
        self._next_index = 0  # index k of the next instant k / fps still waiting for a frame

    @property
    def next_instant(self) -> float:
        """The time of the next instant still waiting for a frame (seconds)."""
        return self._next_index / self.fps

    @property
    def full(self) -> bool:
        return self.max_frames is not None and self.kept >= self.max_frames

    def offer(self, t: float) -> bool:
        """Whether the frame presented at `t` seconds is kept."""
        if self.full or t + _TIME_EPS < self._next_index / self.fps:
            return False
        # Skip every instant this frame already answers for.
        self._next_index = math.floor((t + _TIME_EPS) * self.fps) + 1
        self.kept += 1
        return True


def decode_video(
    src: Source,
    *,
    fps: float = 2.0,
    max_frames: int | None = None,
    max_seconds: float | None = MAX_VIDEO_SECONDS,
    sample_rate: int = SAMPLE_RATE,
    with_audio: bool = True,
    max_bytes: int = MAX_MEDIA_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_decoded_bytes: int = MAX_DECODED_BYTES,
    side: int | None = None,
) -> Video:
    """Decode `src`, keeping frames at `fps` by presentation time (see FrameSampler), at most `max_frames`.

    Frames are upright as a player shows them (a display-matrix rotation is applied). The audio track
    (when `with_audio` and present) is mono float32 at `sample_rate`, starting at the track's first
    sample. Raises MediaError for non-video input, truncated or detectably corrupt files, frames over
    `max_pixels`, sampled frames outgrowing `max_decoded_bytes` (a long, large video at a high `fps`),
    and media longer than `max_seconds`. Codecs conceal damage inside the picture data, so
    such frames decode as damaged pictures. `side`: the size the frames are for (a tokenizer's input);
    frames much larger are scaled by FFmpeg as they are converted to RGB, to a shorter side of
    REDUCE_OVER x `side` (omniembed.media.image.reduced_size).
    """
    sampler = FrameSampler(fps, max_frames)
    data, name = read_source(src, max_bytes)
    fmt = sniff_format(data)
    if fmt not in AV_CONTAINERS:
        raise MediaError(name, f"expected video, but the input is {describe(fmt, data)}")
    check_complete(data, name, fmt)
    with open_container(data, name, fmt) as container:
        vstream, astream = pick_streams(container, name)
        if vstream is None:
            extra = " (it holds only audio; use decode_audio)" if astream is not None else ""
            raise MediaError(name, f"{describe(fmt, data)} has no video track{extra}")
        _check_frame_size(name, vstream, max_pixels)
        declared = declared_seconds(container, vstream)
        if max_seconds is not None and declared is not None and declared > max_seconds + _TIME_EPS:
            raise MediaError(name, f"video is {declared:.3f} s, over the limit of {max_seconds:g} s")
        mono = MonoResampler(name, sample_rate, max_seconds) if with_audio and astream is not None else None
        limits = (max_seconds, max_decoded_bytes)
        frames, times, last_t = _demux(name, container, vstream, astream if mono else None, sampler, mono, limits,
                                       side)
        audio = mono.finish() if mono is not None else None
    if not frames:
        raise MediaError(name, "the video track decoded to no frames")
    if declared is None:
        declared = max(last_t + 1.0 / _frame_rate(vstream), 0.0 if audio is None else len(audio) / sample_rate)
    return Video(
        frames=np.stack(frames),  # (T, H, W, 3)
        times=np.asarray(times, dtype=np.float64),
        audio=audio,
        sample_rate=sample_rate,
        duration=float(declared),
    )


def _demux(name, container, vstream, astream, sampler, mono, limits, side=None):
    """One pass over the packets: sampled frames into a _FrameStack, audio into `mono`."""
    max_seconds, max_decoded_bytes = limits
    stack = _FrameStack(name, max_decoded_bytes, side)
    demuxer = Demuxer(name, container, vstream, astream, sampler, mono, max_seconds)
    for kept in demuxer:
        if kept is not None:
            stack.add(kept[1], kept[0])
    return stack.frames, stack.times, demuxer.last_t


class Demuxer:
    """Iterating gives (t, frame) for each frame the sampler keeps, and None after audio packets (their sound
    is in `mono`); `last_t` is the last decoded frame's time. Times count from the video track's start.

    Only frames that can be kept are made: while the next packet's presentation time is before the sampler's
    next instant, the decoder skips frames no other frame refers to (a B-frame is never shown nor needed
    then), so sparse sampling decodes little more than the reference frames. Which frames are kept, and their
    pixels, are the same as decoding every frame.
    """

    def __init__(self, name, container, vstream, astream, sampler: "FrameSampler", mono, max_seconds):
        self.name, self.container, self.vstream, self.astream = name, container, vstream, astream
        self.sampler, self.mono, self.max_seconds = sampler, mono, max_seconds
        self.start = float(vstream.start_time * vstream.time_base) if vstream.start_time is not None else 0.0
        self.step = 1.0 / _frame_rate(vstream)
        self.t = -self.step  # the last decoded frame's time
        self._shown_until = -self.step  # the latest presentation time of a packet, decoded or skipped
        self._time_base = float(vstream.time_base) if vstream.time_base else None

    @property
    def last_t(self) -> float:
        """The time of the last frame of the track, decoded or skipped."""
        return max(self.t, self._shown_until)

    def __iter__(self):
        vstream, astream, sampler, mono = self.vstream, self.astream, self.sampler, self.mono
        ctx = vstream.codec_context
        skipping = False
        streams = [vstream] if astream is None else [vstream, astream]
        with ffmpeg_errors(self.name, "decoding video"):
            for packet in self.container.demux(*streams):
                if packet.stream.index != vstream.index:
                    for aframe in packet.decode():
                        mono.add(aframe)
                    yield None
                    continue
                if sampler.full:
                    if astream is None:
                        break
                    continue  # keep reading the audio to the end
                shown = None if packet.pts is None or self._time_base is None else \
                    packet.pts * self._time_base - self.start
                if shown is not None:
                    self._check_time(shown)
                    self._shown_until = max(self._shown_until, shown)
                # A frame shown before the instant the sampler waits for cannot be kept: skip it unless other
                # frames refer to it. Packets without a timestamp are always decoded.
                skip = shown is not None and shown + _TIME_EPS < sampler.next_instant
                if skip != skipping:
                    ctx.skip_frame, skipping = ("NONREF" if skip else "DEFAULT"), skip
                for frame in packet.decode():
                    # Frames without a timestamp follow the previous one by one nominal frame period.
                    t = frame.time - self.start if frame.time is not None else self.t + self.step
                    self.t = t
                    self._check_time(t)
                    if sampler.offer(t):
                        yield t, frame

    def _check_time(self, t: float) -> None:
        if self.max_seconds is not None and t > self.max_seconds + _TIME_EPS:
            raise MediaError(self.name, f"video runs past the limit of {self.max_seconds:g} s")


class _FrameStack:
    """Kept frames as upright RGB arrays of one shape, within a byte budget (counted at the decoded size)."""

    def __init__(self, name: str, max_bytes: int, side: int | None = None):
        self.name, self.max_bytes, self.side = name, max_bytes, side
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self._size: tuple[int, int] | None = None
        self._turns = 0

    def add(self, frame, t: float) -> None:
        if self._size is None:
            # Size and turn come from the first kept frame, so every frame stacks to one shape.
            self._size, self._turns = (frame.width, frame.height), _quarter_turns(frame)
        width, height = self._size
        if (len(self.frames) + 1) * width * height * 3 > self.max_bytes:
            raise MediaError(
                self.name, f"sampled frames would outgrow {self.max_bytes} bytes; lower fps or set max_frames"
            )
        # One scaler thread: PyAV's default (since 17) starts a thread per CPU for every frame, which costs more
        # than the conversion of a frame this size and competes with the decoding pool's workers.
        if (frame.width, frame.height) != self._size:  # resolution changed midway: keep the first size
            frame = frame.reformat(width=width, height=height, threads=1)
        small = reduced_size(width, height, self.side)
        if small is None:
            pixels = frame.to_ndarray(format="rgb24", threads=1)  # (H, W, 3)
        else:  # scaled while converting, in one pass of FFmpeg's scaler
            pixels = frame.to_ndarray(width=small[0], height=small[1], format="rgb24", interpolation="AREA",
                                      threads=1)
        # Phones record sideways and store the turn in a display matrix; show frames as a player would.
        self.frames.append(np.ascontiguousarray(np.rot90(pixels, k=self._turns)) if self._turns else pixels)
        self.times.append(t)


def _quarter_turns(frame) -> int:
    """Counterclockwise quarter turns the frame's display matrix asks for (np.rot90's k)."""
    angle = frame.rotation  # degrees counterclockwise; INT_MIN when the matrix is degenerate
    return round(angle / 90) % 4 if -360 <= angle <= 360 else 0  # odd angles snap to quarter turns


def _frame_rate(vstream) -> float:
    rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
    return float(rate) if rate else 25.0  # FFmpeg's own fallback when a stream states no rate


def _check_frame_size(name: str, vstream, max_pixels: int) -> None:
    width, height = vstream.codec_context.width, vstream.codec_context.height
    if width * height > max_pixels:
        raise MediaError(name, f"video frames are {width}x{height}, over the limit of {max_pixels} pixels")
