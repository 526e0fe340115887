"""Recognise media from its leading bytes (magic numbers), so decoders never hand garbage to FFmpeg's prober.

FFmpeg, asked to guess, will read text or random bytes as some obscure format; naming the demuxer from
the magic number keeps decoding to the formats the engine supports and makes "wrong type" errors exact.
"""

from __future__ import annotations

import codecs

from omniembed.errors import MediaError
from omniembed.media.limits import MAX_MEDIA_BYTES
from omniembed.media.source import Source, read_source

IMAGE_FORMATS = frozenset({"png", "jpeg", "webp", "gif", "bmp", "tiff"})
AUDIO_FORMATS = frozenset({"wav", "flac", "mp3"})
# Containers that may hold audio, video or both; PyAV's stream list decides.
AV_CONTAINERS = frozenset({"ogg", "mp4", "matroska"})

# Our format name -> FFmpeg demuxer name.
DEMUXERS = {"wav": "wav", "flac": "flac", "mp3": "mp3", "ogg": "ogg", "mp4": "mp4", "matroska": "matroska"}

_LABELS = {
    "png": "a PNG image", "jpeg": "a JPEG image", "webp": "a WebP image", "gif": "a GIF image",
    "bmp": "a BMP image", "tiff": "a TIFF image", "wav": "WAV audio", "flac": "FLAC audio",
    "mp3": "MP3 audio", "ogg": "an Ogg container", "mp4": "an MP4/QuickTime container",
    "matroska": "a Matroska/WebM container",
}
_QUICKTIME_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


def sniff_format(data: bytes) -> str | None:
    """Name the format of `data` from its first bytes, or None when no supported format matches."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM" and len(data) >= 26:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[4:8] in _QUICKTIME_BOXES:
        return "mp4"
    if head.startswith(b"ID3"):
        return _after_id3(data)
    if _is_mpeg_audio_sync(head):
        return "mp3"
    return None


def describe(fmt: str | None, data: bytes) -> str:
    """Words for an error message: what the bytes look like."""
    if fmt is not None:
        return _LABELS[fmt]
    if _looks_like_text(data[:512]):
        return "text, not media"
    return f"an unrecognised format (starts with {data[:8].hex(' ')})"


def detect_modality(src: Source, *, max_bytes: int = MAX_MEDIA_BYTES) -> str:
    """Return "image", "audio" or "video", judged from the bytes alone (magic numbers, then the streams)."""
    # Local import: container imports this module for its format table.
    from omniembed.media.container import open_container, pick_streams
    from omniembed.media.tracks import track_kinds

    data, name = read_source(src, max_bytes)
    fmt = sniff_format(data)
    if fmt in IMAGE_FORMATS:
        return "image"
    if fmt in AUDIO_FORMATS:
        return "audio"
    if fmt not in AV_CONTAINERS:
        raise MediaError(name, f"cannot tell the modality: input is {describe(fmt, data)}")
    kinds = track_kinds(data, fmt)  # the header's own track list, where it can be read without FFmpeg
    if kinds:
        return "video" if "video" in kinds else "audio"
    with open_container(data, name, fmt) as container:
        video, audio = pick_streams(container, name)
    if video is not None:
        return "video"
    if audio is not None:
        return "audio"
    raise MediaError(name, f"{describe(fmt, data)} with neither an audio nor a video track")


def id3_size(data: bytes) -> int:
    """Bytes taken by a leading ID3v2 tag (0 when there is none)."""
    if not data.startswith(b"ID3") or len(data) < 10:
        return 0
    # The size is 4 "syncsafe" bytes of 7 bits each, after a 10-byte header.
    return 10 + ((data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F))


def _after_id3(data: bytes) -> str:
    # FLAC files sometimes carry an ID3 tag in front too.
    size = id3_size(data)
    return "flac" if data[size:size + 4] == b"fLaC" else "mp3"


def _is_mpeg_audio_sync(head: bytes) -> bool:
    # 11 sync bits, then a version that is not "reserved" and a layer that is not 0 (layer 0 bits mean ADTS AAC).
    if len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    return (head[1] >> 3) & 0x3 != 0x1 and (head[1] >> 1) & 0x3 != 0


def _looks_like_text(head: bytes) -> bool:
    try:
        # Incremental so a multi-byte character cut at the window's end is not a decoding error.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)
