"""Turn a decoder's `src` (bytes or a path) into bytes plus the name errors should carry."""

from __future__ import annotations

import os

from omniembed.errors import MediaError

Source = bytes | bytearray | memoryview | str | os.PathLike


def source_name(src: object) -> str:
    """The `source` a MediaError carries: the path, or "<N bytes>" for in-memory data."""
    if isinstance(src, (bytes, bytearray)):
        return f"<{len(src)} bytes>"
    if isinstance(src, memoryview):
        return f"<{src.nbytes} bytes>"
    if isinstance(src, (str, os.PathLike)):
        return os.fsdecode(src)
    return f"<{type(src).__name__}>"


def read_source(src: Source, max_bytes: int) -> tuple[bytes, str]:
    """Return (data, name); empty, oversized, missing or unreadable inputs raise MediaError."""
    name = source_name(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        data = _read_path(src, name, max_bytes)
    else:
        raise MediaError(name, f"expected bytes or a file path, got {type(src).__name__}")
    if not data:
        raise MediaError(name, "empty input (0 bytes)")
    if len(data) > max_bytes:
        raise MediaError(name, f"input is {len(data)} bytes, over the limit of {max_bytes}")
    return data, name


def _read_path(path: str | os.PathLike, name: str, max_bytes: int) -> bytes:
    try:
        size = os.stat(path).st_size
        if os.path.isdir(path):
            raise MediaError(name, "is a directory, not a media file")
        # Check the size before reading so an oversized file is never pulled into memory.
        if size > max_bytes:
            raise MediaError(name, f"file is {size} bytes, over the limit of {max_bytes}")
        with open(path, "rb") as f:
            return f.read(max_bytes + 1)
    except FileNotFoundError:
        raise MediaError(name, "no such file") from None
    except OSError as exc:
        raise MediaError(name, f"cannot read file: {exc.strerror or exc}") from exc
