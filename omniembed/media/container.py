"""Open media bytes with PyAV behind MediaError: the one place FFmpeg exceptions are translated."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import av

from omniembed.errors import MediaError
from omniembed.media.sniff import DEMUXERS

_PROBE_BYTES = str(64 * 1024)


@contextmanager
def ffmpeg_errors(name: str, doing: str) -> Iterator[None]:
    """Re-raise anything PyAV/FFmpeg throws while `doing` as MediaError naming the input."""
    try:
        yield
    except MediaError:
        raise
    except av.FFmpegError as exc:
        # Includes FFmpeg's ENOMEM, which on bad input means a damaged size field asked for too much.
        raise MediaError(name, f"{doing} failed: {exc.strerror or exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # PyAV also raises ValueError/IndexError/EOFError/OSError on malformed data
        raise MediaError(name, f"{doing} failed: {type(exc).__name__}: {exc}") from exc


@contextmanager
def open_container(data: bytes, name: str, fmt: str) -> Iterator[av.container.InputContainer]:
    """Open `data` with the demuxer for our sniffed format `fmt`, never letting FFmpeg guess."""
    with ffmpeg_errors(name, f"opening as {fmt}"):
        # Every supported format states its streams in a header, so stream probing need not read (and
        # decode) FFmpeg's default 5 MB first: a 30 s WAV opened 100x slower with it.
        container = av.open(io.BytesIO(data), mode="r", format=DEMUXERS[fmt], options={"probesize": _PROBE_BYTES})
    try:
        yield container
    finally:
        container.close()


# Decoder threads per stream; None leaves FFmpeg's default (a thread per CPU for codecs that thread). Worker
# processes that already fill the CPUs set 1: their decoders' extra threads only fought each other (16
# two-second MP4s through 2 workers: 49-56 ms with FFmpeg's default, 35 ms with 1 thread each).
_codec_threads: int | None = None


def set_codec_threads(threads: int | None) -> None:
    global _codec_threads
    _codec_threads = threads


def pick_streams(container, name: str) -> tuple[av.VideoStream | None, av.AudioStream | None]:
    """The first real video stream and the first audio stream; cover art (attached pictures) is not video.
    Their decoders get set_codec_threads' thread count, where one is set."""
    video = next(
        (s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic), None
    )
    audio = next(iter(container.streams.audio), None)
    for stream in (video, audio):
        if stream is not None and stream.codec_context is None:
            raise MediaError(
                name, f"the {stream.type} track names a codec FFmpeg cannot decode (unknown or damaged)"
            )
        if stream is not None and _codec_threads is not None:
            stream.codec_context.thread_count = _codec_threads
    return video, audio


def declared_seconds(container, stream) -> float | None:
    """The duration the header claims for `stream` (or the whole container), if it claims one."""
    if stream.duration is not None and stream.duration > 0 and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None
