"""What callers hand the embedders and the training stages, turned into DocumentTokenizer segments: the one
place media bytes become segments (decode_segment), for the ONNX runtime, the torch embedder, the server,
the corpus and the tokenizer stage alike.

One input (to_segments) is one of:
    str                               text
    bytes / bytearray / memoryview    an encoded image, audio clip or video; the modality is read from the bytes
    os.PathLike (pathlib.Path)        a media file, likewise (a plain str is always text)
    {"text": str} / {"image": src} / {"audio": src} / {"video": src}
                                      an explicit modality; src is bytes or a path (str allowed here)
    np.ndarray (H, W, 3) uint8        decoded pixels
    a Segment (TextSegment, ImageSegment, AudioSegment, VideoSegment or their *Codes)
    a list or tuple of the above      an interleaved document, its segments in order
A manifest record (from_record) gives its segments too.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from omniembed.errors import MediaError
from omniembed.media import SAMPLE_RATE, decode_audio, decode_image, decode_video, detect_modality
from omniembed.tokenization.document import (
    AudioCodes,
    AudioSegment,
    DocumentError,
    ImageCodes,
    ImageSegment,
    InputTypeError,
    Segment,
    TextSegment,
    VideoCodes,
    VideoSegment,
)

MEDIA_MODALITIES = ("image", "audio", "video")


def check_modalities(segments: list, modalities, where: str) -> None:
    """Refuse a segment of a modality the model's tokenizers never learned (e.g. audio for a model trained
    on images and captions only): its ids would be an untrained encoder's noise."""
    for seg in segments:
        kind = getattr(seg, "kind", None)
        if kind is not None and kind not in modalities:
            raise DocumentError(f"{where}: this model was trained without {kind}, so it cannot embed {kind} "
                                f"(it embeds {', '.join(modalities)})")


def decode_segment(src: Any, modality: str, *, sample_rate: int = SAMPLE_RATE, video_fps: float = 2.0,
                   image_side: int | None = None) -> Segment:
    """Encoded media (bytes or a path) of a known modality -> its segment: pixels, a mono wave at
    `sample_rate`, or video frames sampled at `video_fps` with the audio track. Bad media raise MediaError.
    image_side: the image tokenizer's input size; pictures much larger are decoded reduced (decode_image's
    and decode_video's `side`), which every path that tokenizes them passes alike."""
    if modality == "image":
        return ImageSegment(decode_image(src, side=image_side))
    if modality == "audio":
        return AudioSegment(decode_audio(src, sample_rate=sample_rate), sample_rate)
    if modality == "video":
        return VideoSegment.from_video(decode_video(src, fps=video_fps, sample_rate=sample_rate, side=image_side))
    raise DocumentError(f"unknown media modality {modality!r} (expected one of {MEDIA_MODALITIES})")


def image_side(image_tokenizer: Any) -> int | None:
    """The input size of an image tokenizer (torch or ONNX), for decode_segment's image_side."""
    for holder in (image_tokenizer, getattr(image_tokenizer, "config", None)):
        size = getattr(holder, "image_size", None)
        if isinstance(size, int):
            return size
    return None


def squared(segments: list, size: int, policy: str) -> list:
    """The segments with images and video frames already at the image tokenizer's input (size x size, by its
    resize policy, through the tokenizer's own to_square): the same ids, and less to carry between processes."""
    from PIL import Image

    from omniembed.media.image import to_square

    def square(pixels: np.ndarray) -> np.ndarray:
        if pixels.shape[:2] == (size, size):
            return pixels
        return np.asarray(to_square(Image.fromarray(pixels), size, policy))

    out = []
    for seg in segments:
        if isinstance(seg, ImageSegment):
            seg = ImageSegment(square(seg.pixels))
        elif isinstance(seg, VideoSegment) and len(seg.frames):
            frames = np.stack([square(f) for f in seg.frames])
            seg = VideoSegment(frames, seg.times, seg.audio, seg.sample_rate)
        out.append(seg)
    return out


def from_record(record: Any, *, base_dir: str | os.PathLike | None = None, sample_rate: int | None = None,
                video_fps: float = 2.0, caption: int = 0,
                image_side: int | None = None) -> list[Segment] | dict[str, list[Segment]]:
    """Decode a manifest record's media into segments.

    A document record gives its segments in order. An item record gives one encodable segment list per view:
    {"text": [TextSegment(captions[caption % n])], "image": [ImageSegment], "audio": [...], "video": [...]}.
    `record` is an `omniembed.data.manifest` Item/Document, or a raw JSON dict (relative paths resolve against
    `base_dir`). Audio (and video soundtracks) are decoded at `sample_rate` (default: the project's one rate,
    omniembed.media.SAMPLE_RATE); video frames are sampled at `video_fps`. Media that fail to decode raise
    MediaError naming the file.
    """
    from omniembed.data.manifest import Document, Item, parse_record

    if isinstance(record, dict):
        if base_dir is None:
            raise DocumentError(f"record {record.get('id')!r} is a raw dict: pass base_dir to resolve its media paths")
        record = parse_record(record, base_dir=base_dir)
    rate = SAMPLE_RATE if sample_rate is None else sample_rate
    if isinstance(record, Document):
        return [TextSegment(s.text) if s.media is None else media_segment(s.media, rate, video_fps, image_side)
                for s in record.segments]
    if isinstance(record, Item):
        views: dict[str, list[Segment]] = {}
        if record.texts:
            views["text"] = [TextSegment(record.texts[caption % len(record.texts)])]
        for name, media in record.media.items():
            views[name] = [media_segment(media, rate, video_fps, image_side)]
        return views
    raise DocumentError(f"from_record expects a manifest Item, Document or dict, got {type(record).__name__}")


def media_segment(media: Any, sample_rate: int = SAMPLE_RATE, video_fps: float = 2.0,
                  image_side: int | None = None) -> Segment:
    """A manifest Media (omniembed.data.manifest) decoded into its segment."""
    # a local path goes in as a path so the decoder's error names the file
    src = media.source if media.data is None and not media.is_url else media.read_bytes()
    return decode_segment(src, media.modality, sample_rate=sample_rate, video_fps=video_fps, image_side=image_side)


SEGMENT_TYPES = (TextSegment, ImageSegment, AudioSegment, VideoSegment, ImageCodes, AudioCodes, VideoCodes)
MODALITIES = ("text", *MEDIA_MODALITIES)


def has_media(item: Any) -> bool:
    """Whether an input holds encoded media to decode (bytes, a path, or {"image"|"audio"|"video": src}, alone
    or in a document)."""
    parts = item if isinstance(item, (list, tuple)) else [item]
    return any(isinstance(p, (bytes, bytearray, memoryview, os.PathLike))
               or (isinstance(p, dict) and len(p) == 1 and next(iter(p)) in MEDIA_MODALITIES) for p in parts)


def to_segments(item: Any, *, sample_rate: int, video_fps: float, index: int = 0,
                image_side: int | None = None) -> list:
    """One input (see the module docstring) -> its list of segments, media decoded (image_side: as
    decode_segment's). Errors name the input."""
    parts = list(item) if isinstance(item, (list, tuple)) else [item]
    if not parts:
        raise DocumentError(f"input {index} is an empty list: an interleaved document needs at least one segment")
    out = []
    for j, part in enumerate(parts):
        single = len(parts) == 1 and not isinstance(item, (list, tuple))
        where = f"input {index}" if single else f"input {index} part {j}"
        if isinstance(part, (list, tuple)):
            raise DocumentError(f"{where} is a nested list; an interleaved document is one flat list of segments")
        out.append(_segment(part, sample_rate, video_fps, where, image_side))
    return out


def _segment(part: Any, rate: int, fps: float, where: str, side: int | None = None):
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
        return _decode(src, modality, rate, fps, where, side)
    if isinstance(part, (bytes, bytearray, memoryview, os.PathLike)):
        try:
            modality = detect_modality(part)
        except MediaError as exc:
            raise MediaError(f"{where} ({exc.source})", exc.reason) from exc
        return _decode(part, modality, rate, fps, where, side)
    raise InputTypeError(f"{where}: cannot embed a {type(part).__name__}; pass text (str), media bytes, a "
                        "pathlib.Path, {'image'|'audio'|'video': src}, pixels, a segment, or a list of these")


def _decode(src: Any, modality: str, rate: int, fps: float, where: str, side: int | None = None):
    try:
        return decode_segment(src, modality, sample_rate=rate, video_fps=fps, image_side=side)
    except MediaError as exc:
        raise MediaError(f"{where} ({exc.source})", exc.reason) from exc
