"""The JSONL manifest: records of items (several views of one thing) and interleaved documents.

Format reference: docs/manifest.md. Every line is validated; the first problem raises ManifestError naming
the file, the line number, the field and what was wrong, so a user can fix a million-line file by
jumping to one line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Union
from urllib.parse import urlparse

from omniembed.errors import ManifestError, MediaError

MEDIA_MODALITIES = ("image", "audio", "video")
VIEW_NAMES = ("text", *MEDIA_MODALITIES)
KINDS = ("item", "document")
ITEM_FIELDS = {"id", "kind", "views", "attributes", "split", "meta"}
DOCUMENT_FIELDS = {"id", "kind", "segments", "attributes", "split", "meta"}
URL_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Media:
    """One media view: where it lives, and its bytes when they are already in memory (from a shard).

    `source` is an absolute local path, an http(s) URL, or `shard#member` for bytes read from a tar.
    """

    modality: str
    source: str
    data: bytes | None = field(default=None, repr=False)

    @property
    def is_url(self) -> bool:
        return urlparse(self.source).scheme in URL_SCHEMES

    @property
    def suffix(self) -> str:
        """Lower-case extension without the dot ('png'), from the path or URL; '' when there is none."""
        path = urlparse(self.source).path if self.is_url else self.source
        return Path(path.split("#")[-1]).suffix.lower().lstrip(".")

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.is_url:
            # No network in this build: say so plainly rather than fail somewhere inside a decoder.
            raise MediaError(self.source, "URL media are not fetched in this build; download it and use a local path")
        try:
            return Path(self.source).read_bytes()
        except OSError as err:
            raise MediaError(self.source, f"cannot read file: {err.strerror or err}") from err


@dataclass(frozen=True)
class Item:
    """Several views of one thing: captions and up to one image, one audio clip and one video."""

    id: str
    texts: tuple[str, ...] = ()
    media: dict[str, Media] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    kind = "item"

    @property
    def views(self) -> tuple[str, ...]:
        """Names of the views present, text first: ('text', 'image', ...)."""
        return (("text",) if self.texts else ()) + tuple(m for m in MEDIA_MODALITIES if m in self.media)


@dataclass(frozen=True)
class Segment:
    """One piece of an interleaved document: text, or one media file."""

    modality: str  # "text" | "image" | "audio" | "video"
    text: str | None = None
    media: Media | None = None


@dataclass(frozen=True)
class Document:
    """An interleaved sequence of text and media segments, for the next-token objective."""

    id: str
    segments: tuple[Segment, ...]
    attributes: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    kind = "document"


Record = Union[Item, Document]


class _Where:
    """The file and line a value came from, to prefix every error message."""

    def __init__(self, path: str, line: int):
        self.path, self.line = path, line

    def error(self, field_: str, problem: str) -> ManifestError:
        return ManifestError(f"{self.path}:{self.line}: field '{field_}': {problem}")


def _resolve_media(value: Any, modality: str, field_: str, base: Path, where: _Where, must_exist: bool) -> Media:
    if not isinstance(value, str) or not value.strip():
        raise where.error(field_, f"expected a non-empty string path or URL, got {_describe(value)}")
    parsed = urlparse(value)
    if parsed.scheme in URL_SCHEMES:
        return Media(modality, value)
    if parsed.scheme == "file":
        value = parsed.path
    elif len(parsed.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise where.error(field_, f"unsupported URL scheme '{parsed.scheme}' (use a local path, http or https)")
    path = Path(os.path.expanduser(value))
    path = Path(os.path.normpath(path if path.is_absolute() else base / path))
    if must_exist and not path.is_file():
        raise where.error(field_, f"media file not found: {path}")
    return Media(modality, str(path))


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {json.dumps(value)[:60]}" if value is not None else "null"


def _check_common(obj: dict, allowed: set[str], where: _Where) -> tuple[str, dict, str | None, dict]:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise where.error(unknown[0], f"unknown field for a {obj['kind']} record (allowed: {sorted(allowed)})")
    attributes = obj.get("attributes", {})
    if not isinstance(attributes, dict):
        raise where.error("attributes", f"expected an object, got {_describe(attributes)}")
    for key, val in attributes.items():
        if not isinstance(val, (str, int, float, bool)):
            raise where.error(f"attributes.{key}", f"expected a string, number or boolean, got {_describe(val)}")
    split = obj.get("split")
    if split is not None and (not isinstance(split, str) or not split):
        raise where.error("split", f"expected a non-empty string, got {_describe(split)}")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise where.error("meta", f"expected an object, got {_describe(meta)}")
    return obj["id"], attributes, split, meta


def _parse_item(obj: dict, base: Path, where: _Where, must_exist: bool) -> Item:
    id_, attributes, split, meta = _check_common(obj, ITEM_FIELDS, where)
    views = obj.get("views")
    if not isinstance(views, dict):
        raise where.error("views", f"required object of views, got {_describe(views)}")
    if not views:
        raise where.error("views", "an item needs at least one view")
    texts: tuple[str, ...] = ()
    media: dict[str, Media] = {}
    for name, value in views.items():
        if name not in VIEW_NAMES:
            raise where.error(f"views.{name}", f"unknown view (expected one of {list(VIEW_NAMES)})")
        if name == "text":
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not value:
                raise where.error("views.text", f"expected a string or a non-empty list of strings, got {_describe(value)}")
            for i, t in enumerate(value):
                if not isinstance(t, str) or not t.strip():
                    raise where.error(f"views.text[{i}]", f"expected a non-empty string, got {_describe(t)}")
            texts = tuple(value)
        else:
            media[name] = _resolve_media(value, name, f"views.{name}", base, where, must_exist)
    return Item(id=id_, texts=texts, media=media, attributes=attributes, split=split, meta=meta)


def _parse_document(obj: dict, base: Path, where: _Where, must_exist: bool) -> Document:
    id_, attributes, split, meta = _check_common(obj, DOCUMENT_FIELDS, where)
    raw = obj.get("segments")
    if not isinstance(raw, list) or not raw:
        raise where.error("segments", f"required non-empty list of segments, got {_describe(raw)}")
    segments = []
    for i, seg in enumerate(raw):
        name = f"segments[{i}]"
        if not isinstance(seg, dict) or len(seg) != 1:
            raise where.error(name, f"expected an object with exactly one key of {list(VIEW_NAMES)}, got {_describe(seg)}")
        (modality, value), = seg.items()
        if modality not in VIEW_NAMES:
            raise where.error(f"{name}.{modality}", f"unknown segment type (expected one of {list(VIEW_NAMES)})")
        if modality == "text":
            if not isinstance(value, str) or not value:
                raise where.error(f"{name}.text", f"expected a non-empty string, got {_describe(value)}")
            segments.append(Segment("text", text=value))
        else:
            segments.append(Segment(modality, media=_resolve_media(value, modality, f"{name}.{modality}", base, where, must_exist)))
    return Document(id=id_, segments=tuple(segments), attributes=attributes, split=split, meta=meta)


def parse_record(obj: Any, *, base_dir: str | Path, where: tuple[str, int] = ("<record>", 0),
                 check_exists: bool = True) -> Record:
    """Validate one decoded JSON record; relative media paths resolve against `base_dir`."""
    at = _Where(*where)
    if not isinstance(obj, dict):
        raise at.error("<record>", f"expected a JSON object, got {_describe(obj)}")
    id_ = obj.get("id")
    if not isinstance(id_, str) or not id_.strip():
        raise at.error("id", f"required non-empty string, got {_describe(id_)}")
    kind = obj.get("kind")
    if kind is None and ("views" in obj) != ("segments" in obj):  # left out: what the record holds tells
        kind = "item" if "views" in obj else "document"
    if kind not in KINDS:
        raise at.error("kind", f"unknown kind {_describe(kind)} (expected one of {list(KINDS)})")
    parse = _parse_item if kind == "item" else _parse_document
    return parse(obj, Path(base_dir), at, check_exists)


def media_of(record: Record) -> list[tuple[str, Media]]:
    """(field name, Media) for every media view or segment of a record, in record order."""
    if isinstance(record, Item):
        return [(f"views.{m}", record.media[m]) for m in MEDIA_MODALITIES if m in record.media]
    return [(f"segments[{i}].{s.modality}", s.media) for i, s in enumerate(record.segments) if s.media is not None]


def check_record_media(record: Record, where: tuple[str, int]) -> None:
    """Decode every media file of a record; a MediaError becomes a ManifestError naming line and field."""
    from omniembed.tokenization.inputs import media_segment  # decoders pull in PyAV

    for name, media in media_of(record):
        try:
            media_segment(media)
        except MediaError as err:
            raise _Where(*where).error(name, f"media does not decode: {err}") from err


def iter_manifest(path: str | Path, *, check_media: bool = False) -> Iterator[Record]:
    """Yield validated records of a JSONL manifest one by one (constant memory apart from the id set)."""
    path = Path(path)
    base = path.resolve().parent
    seen: dict[str, int] = {}
    try:
        handle = open(path, encoding="utf-8")
    except OSError as err:
        raise ManifestError(f"{path}: cannot open manifest: {err.strerror or err}") from err
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue  # blank lines (a trailing newline, hand-edited gaps) carry nothing
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}:{lineno}: invalid JSON: {err.msg} at column {err.colno}") from err
            record = parse_record(obj, base_dir=base, where=(str(path), lineno))
            if record.id in seen:
                raise _Where(str(path), lineno).error("id", f"duplicate id {record.id!r} (first on line {seen[record.id]})")
            seen[record.id] = lineno
            if check_media:
                check_record_media(record, (str(path), lineno))
            yield record


def load_manifest(path: str | Path, *, check_media: bool = False) -> list[Record]:
    """Read and validate a whole manifest; `check_media=True` also decodes every media file."""
    return list(iter_manifest(path, check_media=check_media))


def record_to_json(record: Record, *, relative_to: str | Path | None = None,
                   media_names: dict[str, str] | None = None) -> dict:
    """The manifest JSON object for a record.

    Media sources are written relative to `relative_to` when given and possible; `media_names` maps a
    field name ('views.image', 'segments[2].audio') to a replacement value, which shards use for members.
    """
    media_names = media_names or {}

    def source(name: str, media: Media) -> str:
        if name in media_names:
            return media_names[name]
        if relative_to is not None and not media.is_url:
            try:
                return os.path.relpath(media.source, relative_to)
            except ValueError:  # another drive on Windows
                return media.source
        return media.source

    obj: dict[str, Any] = {"id": record.id, "kind": record.kind}
    if isinstance(record, Item):
        views: dict[str, Any] = {}
        if record.texts:
            views["text"] = list(record.texts)
        for m in MEDIA_MODALITIES:
            if m in record.media:
                views[m] = source(f"views.{m}", record.media[m])
        obj["views"] = views
    else:
        obj["segments"] = [
            {"text": s.text} if s.media is None else {s.modality: source(f"segments[{i}].{s.modality}", s.media)}
            for i, s in enumerate(record.segments)
        ]
    if record.attributes:
        obj["attributes"] = dict(record.attributes)
    if record.split is not None:
        obj["split"] = record.split
    if record.meta:
        obj["meta"] = dict(record.meta)
    return obj


def write_manifest(records: Iterable[Record | dict], path: str | Path) -> Path:
    """Write records (Record objects or ready JSON dicts) as JSONL; media paths relative to the file.

    Written to a temporary name and renamed, so a crash never leaves a half-written manifest behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.resolve().parent
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for rec in records:
            obj = rec if isinstance(rec, dict) else record_to_json(rec, relative_to=base)
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path
