"""What a caller may pass to Embedder.embed, turned into DocumentTokenizer segments.

One input is one of:
    str                               text
    bytes / bytearray / memoryview    an encoded image, audio clip or video; the modality is read from the bytes
    os.PathLike (pathlib.Path)        a media file, likewise (a plain str is always text)
    {"text": str} / {"image": src} / {"audio": src} / {"video": src}
                                      an explicit modality; src is bytes or a path (str allowed here)
    np.ndarray (H, W, 3) uint8        decoded pixels
    a Segment (TextSegment, ImageSegment, AudioSegment, VideoSegment or their *Codes)
    a list or tuple of the above      an interleaved document, its segments in order
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from omniembed.errors import MediaError
from omniembed.media import decode_audio, decode_image, decode_video, detect_modality
from omniembed.tokenization.document import (
    AudioCodes,
    AudioSegment,
    DocumentError,
    ImageCodes,
    ImageSegment,
    TextSegment,
    VideoCodes,
    VideoSegment,
)

SEGMENT_TYPES = (TextSegment, ImageSegment, AudioSegment, VideoSegment, ImageCodes, AudioCodes, VideoCodes)
MODALITIES = ("text", "image", "audio", "video")


def to_segments(item: Any, *, sample_rate: int, video_fps: float, index: int = 0) -> list:
    """One input (see the module docstring) -> its list of segments, media decoded. Errors name the input."""
    parts = list(item) if isinstance(item, (list, tuple)) else [item]
    if not parts:
        raise DocumentError(f"input {index} is an empty list: an interleaved document needs at least one segment")
    out = []
    for j, part in enumerate(parts):
        single = len(parts) == 1 and not isinstance(item, (list, tuple))
        where = f"input {index}" if single else f"input {index} part {j}"
        if isinstance(part, (list, tuple)):
            raise DocumentError(f"{where} is a nested list; an interleaved document is one flat list of segments")
        out.append(_segment(part, sample_rate, video_fps, where))
    return out


def _segment(part: Any, rate: int, fps: float, where: str):
    if isinstance(part, str):
        return TextSegment(part)
    if isinstance(part, SEGMENT_TYPES):
        return part
    if isinstance(part, np.ndarray):
        if part.ndim == 3 and part.shape[-1] == 3 and part.dtype == np.uint8:
            return ImageSegment(part)
        raise DocumentError(f"{where}: an array input must be (H, W, 3) uint8 pixels, got {part.dtype} {part.shape}")
    if isinstance(part, dict):
        if len(part) != 1 or next(iter(part)) not in MODALITIES:
            raise DocumentError(f"{where}: a dict input needs exactly one key of {MODALITIES}, got {sorted(part)}")
        modality, src = next(iter(part.items()))
        if modality == "text":
            if not isinstance(src, str):
                raise DocumentError(f"{where}: {{'text': ...}} needs a str, got {type(src).__name__}")
            return TextSegment(src)
        return _decode(src, modality, rate, fps, where)
    if isinstance(part, (bytes, bytearray, memoryview, os.PathLike)):
        try:
            modality = detect_modality(part)
        except MediaError as exc:
            raise MediaError(f"{where} ({exc.source})", exc.reason) from exc
        return _decode(part, modality, rate, fps, where)
    raise DocumentError(f"{where}: cannot embed a {type(part).__name__}; pass text (str), media bytes, a "
                        "pathlib.Path, {'image'|'audio'|'video': src}, pixels, a segment, or a list of these")


def _decode(src: Any, modality: str, rate: int, fps: float, where: str):
    try:
        if modality == "image":
            return ImageSegment(decode_image(src))
        if modality == "audio":
            return AudioSegment(decode_audio(src, sample_rate=rate), rate)
        return VideoSegment.from_video(decode_video(src, fps=fps, sample_rate=rate))
    except MediaError as exc:
        raise MediaError(f"{where} ({exc.source})", exc.reason) from exc
