"""Structural completeness checks on container framing, for cuts FFmpeg decodes without complaint.

Each container says, in its own framing, how long its parts are (RIFF chunk sizes, Ogg pages, Matroska
element sizes, MP4 box sizes). A file cut short breaks that framing, while FFmpeg happily returns the
part it could read; these pure functions read the framing and raise MediaError naming the cut.
"""

from __future__ import annotations

from omniembed.errors import MediaError


def check_complete(data: bytes, name: str, fmt: str) -> None:
    """Dispatch on the sniffed format; formats without such framing (FLAC, MP3) are checked elsewhere."""
    check = {"wav": check_wav_complete, "ogg": check_ogg_complete, "matroska": check_matroska_complete,
             "mp4": check_mp4_complete}.get(fmt)
    if check is not None:
        check(data, name)


def check_wav_complete(data: bytes, name: str) -> None:
    """Raise when the RIFF `data` chunk claims more bytes than the file holds."""
    check_wav_header(data, len(data), name)


def check_wav_header(data: bytes, size: int, name: str) -> None:
    """check_wav_complete from the file's first bytes (through the data chunk's header) and its size, for a
    WAV read from disk as it decodes."""
    for chunk_id, body, chunk in _riff_chunks(data):
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF mean "unknown" (streamed writers, RF64); nothing to check then.
            if chunk not in (0, 0xFFFFFFFF) and body + chunk > size:
                raise MediaError(
                    name,
                    f"truncated WAV: the data chunk declares {chunk} bytes but only {size - body} remain",
                )
            return
    raise MediaError(name, "truncated or damaged WAV: no data chunk")


def _riff_chunks(data: bytes):
    """(chunk id, offset of its body, declared size) of each chunk header within `data`, after the RIFF/WAVE
    header; chunks are padded to even sizes."""
    pos = 12  # after "RIFF" <size> "WAVE"
    while pos + 8 <= len(data):
        chunk = int.from_bytes(data[pos + 4:pos + 8], "little")
        yield data[pos:pos + 4], pos + 8, chunk
        pos += 8 + chunk + (chunk & 1)


def _is_riff_wave(data: bytes) -> bool:
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def _fmt_fields(fmt: bytes) -> tuple[int, int, int]:
    """(format tag, channels, sample rate): the first 8 bytes of a `fmt ` chunk's body."""
    return (int.from_bytes(fmt[0:2], "little"), int.from_bytes(fmt[2:4], "little"),
            int.from_bytes(fmt[4:8], "little"))


def wav_layout(data: bytes) -> tuple[int, int, int] | None:
    """(format tag, channels, sample rate) from a WAV's `fmt ` chunk (tag 1 = PCM, 3 = float, 0xFFFE =
    extensible), or None when the first bytes hold no readable one."""
    if not _is_riff_wave(data):
        return None
    for chunk_id, body, _ in _riff_chunks(data):
        if chunk_id == b"fmt ":
            fmt = data[body:body + 8]
            return _fmt_fields(fmt) if len(fmt) >= 8 else None
        if chunk_id == b"data":
            return None
    return None


def wav_pcm_layout(data: bytes) -> tuple[str, int, int, int, int] | None:
    """(numpy dtype of a sample: "<i2", "<i4", "<f4" or "u1"; channels; sample rate; offset of the samples; frame
    count) of an in-memory WAV of plain 8/16/32-bit integer or 32-bit float PCM (extensible headers included),
    when its header states all that; None for anything else (24-bit, compressed codecs, unknown sizes)."""
    if not _is_riff_wave(data):
        return None
    fmt = None
    for chunk_id, body, chunk in _riff_chunks(data):
        if chunk_id == b"fmt ":
            fmt = data[body:body + min(chunk, 40)]
        elif chunk_id == b"data":
            if fmt is None or len(fmt) < 16 or chunk in (0, 0xFFFFFFFF):
                return None
            tag, channels, rate = _fmt_fields(fmt)
            align, bits = int.from_bytes(fmt[12:14], "little"), int.from_bytes(fmt[14:16], "little")
            if tag == 0xFFFE and len(fmt) >= 26:  # extensible: the real tag opens the SubFormat GUID
                tag = int.from_bytes(fmt[24:26], "little")
            dtype = {(1, 8): "u1", (1, 16): "<i2", (1, 32): "<i4", (3, 32): "<f4"}.get((tag, bits))
            if dtype is None or channels < 1 or rate < 1 or align != channels * bits // 8:
                return None
            frames = min(chunk, len(data) - body) // align
            return (dtype, channels, rate, body, frames) if frames > 0 else None
    return None


def check_ogg_complete(data: bytes, name: str) -> None:
    """Walk the Ogg pages: a partial last page, or no end-of-stream flag, means the file was cut short.

    Every prefix of whole Ogg pages is itself a valid stream, so FFmpeg cannot notice the cut.
    """
    pos, last_flags = 0, None
    while pos + 27 <= len(data) and data[pos:pos + 4] == b"OggS":
        table_end = pos + 27 + data[pos + 26]  # byte 26: number of lacing values
        if table_end > len(data):
            break
        page_end = table_end + sum(data[pos + 27:table_end])
        if page_end > len(data):
            break
        last_flags = data[pos + 5]
        pos = page_end
    if pos != len(data):
        raise MediaError(name, f"truncated or damaged Ogg: page framing breaks at byte {pos} of {len(data)}")
    if last_flags is None or not last_flags & 0x04:
        raise MediaError(name, "truncated Ogg: the last page lacks the end-of-stream flag")


def check_matroska_complete(data: bytes, name: str) -> None:
    """Raise when the top-level Segment element claims more bytes than the file holds."""
    pos = 0
    while pos < len(data):
        element_id, pos = _ebml_vint(data, pos, name, keep_marker=True)
        size, pos = _ebml_vint(data, pos, name, keep_marker=False)
        if size is None:  # "unknown size": a live stream, length not recorded
            return
        if pos + size > len(data):
            what = "Segment" if element_id == 0x18538067 else f"element 0x{element_id:X}"
            raise MediaError(
                name,
                f"truncated Matroska/WebM: the {what} declares {size} bytes but only {len(data) - pos} remain",
            )
        pos += size


def check_mp4_complete(data: bytes, name: str) -> None:
    """Raise when the top-level MP4 boxes do not tile the file exactly (a cut leaves a box overhanging)."""
    pos = 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise MediaError(name, f"truncated MP4: {len(data) - pos} stray bytes after the last box")
        size = int.from_bytes(data[pos:pos + 4], "big")
        header = 8
        if size == 1:  # 64-bit "largesize" follows the type
            if pos + 16 > len(data):
                raise MediaError(name, "truncated MP4: box header cut short")
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif size == 0:  # box runs to the end of the file
            return
        if size < header:
            raise MediaError(name, f"damaged MP4: box at byte {pos} has impossible size {size}")
        if pos + size > len(data):
            box = data[pos + 4:pos + 8].decode("latin-1")
            raise MediaError(
                name, f"truncated MP4: box '{box}' declares {size} bytes but only {len(data) - pos} remain"
            )
        pos += size


def _ebml_vint(data: bytes, pos: int, name: str, *, keep_marker: bool) -> tuple[int | None, int]:
    """Read an EBML variable-length integer at `pos`; returns (value, next position).

    The count of leading zero bits in the first byte gives the length; IDs keep the marker bit, sizes drop
    it, and a size of all ones means "unknown" (returned as None).
    """
    if pos >= len(data):
        raise MediaError(name, "truncated Matroska/WebM: element header cut short")
    first = data[pos]
    length = 8 - first.bit_length() + 1 if first else 9
    if length > 8 or pos + length > len(data):
        raise MediaError(name, f"truncated or damaged Matroska/WebM: bad element header at byte {pos}")
    value = int.from_bytes(data[pos:pos + length], "big")
    if keep_marker:
        return value, pos + length
    value &= (1 << (7 * length)) - 1  # drop the length marker bit
    if value == (1 << (7 * length)) - 1:
        return None, pos + length
    return value, pos + length
