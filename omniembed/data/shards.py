"""WebDataset shards: a manifest's records with their media bytes packed into tar files, to stream at scale.

One sample per record. Its members share a numeric key (record ids may contain dots, which WebDataset
reads as the key/field boundary, so the id travels inside the JSON instead):

    000000042.record.json   the manifest record, media values replaced by the member field names below
    000000042.image.png     item views: image.<ext>, audio.<ext>, video.<ext>
    000000042.seg3.wav      document segments: seg<i>.<ext>

The `webdataset` package does the tar work: ShardWriter rolls shards by count and size, and the reader
takes brace patterns ("shards-{000000..000099}.tar"), `pipe:` commands and http(s) URLs and plugs into a
torch DataLoader; plain tarfile would mean rewriting exactly that. webdataset imports torch, so this
module is for training hosts; it is imported lazily here to keep `omniembed.data` itself torch-free.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable, Iterator

from omniembed.data.manifest import Item, Media, Record, media_of, parse_record, record_to_json
from omniembed.errors import ManifestError, MediaError

RECORD_FIELD = "record.json"


def _member_field(name: str, media: Media) -> str:
    """'views.image' -> 'image.png'; 'segments[3].audio' -> 'seg3.wav'. The extension keeps the file's own."""
    ext = media.suffix or "bin"
    if name.startswith("views."):
        return f"{media.modality}.{ext}"
    return f"seg{name[len('segments['):name.index(']')]}.{ext}"


def write_shards(records: Iterable[Record], out_pattern: str | Path, maxcount: int = 1000,
                 maxsize: float = 1e9) -> list[Path]:
    """Pack records and their media bytes into tars named by `out_pattern` (a %-format, e.g. 'shard-%06d.tar').

    A new shard starts after `maxcount` records or `maxsize` bytes. Returns the shard paths written.
    Tar member times are fixed at 0 so the same records always give byte-identical shards.
    """
    import webdataset as wds

    pattern = str(out_pattern)
    try:
        pattern % 0
    except TypeError:
        raise ValueError(f"out_pattern needs one integer placeholder such as %06d, got {pattern!r}") from None
    if maxcount < 1:
        raise ValueError(f"maxcount must be at least 1, got {maxcount}")
    Path(pattern % 0).parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with wds.ShardWriter(pattern, maxcount=maxcount, maxsize=maxsize, verbose=0, encoder=False, mtime=0.0,
                         post=lambda fname: written.append(Path(fname))) as sink:
        for index, record in enumerate(records):
            sample: dict[str, bytes | str] = {"__key__": f"{index:09d}"}
            names: dict[str, str] = {}
            for name, media in media_of(record):
                member = _member_field(name, media)
                try:
                    sample[member] = media.read_bytes()
                except MediaError as err:
                    raise ManifestError(f"record {record.id!r}: field '{name}': cannot pack media: {err}") from err
                names[name] = member
            obj = record_to_json(record, media_names=names)
            sample[RECORD_FIELD] = json.dumps(obj, ensure_ascii=False).encode("utf-8")
            sink.write(sample)
    return written


def _attach(record: Record, sample: dict, where: str) -> Record:
    """Swap each media's placeholder path for the member's bytes from the same sample."""

    def load(media: Media, member: str, field_: str) -> Media:
        if member not in sample:
            raise ManifestError(f"{where}: field '{field_}': member '{member}' missing from the sample")
        return Media(media.modality, f"{where}.{member}", data=bytes(sample[member]))

    if isinstance(record, Item):
        media = {m: load(v, Path(v.source).name, f"views.{m}") for m, v in record.media.items()}
        return dataclasses.replace(record, media=media)
    segments = tuple(
        s if s.media is None else dataclasses.replace(s, media=load(s.media, Path(s.media.source).name, f"segments[{i}]"))
        for i, s in enumerate(record.segments)
    )
    return dataclasses.replace(record, segments=segments)


def read_shards(urls: str | Path | Iterable[str | Path], **webdataset_options) -> Iterator[Record]:
    """Stream records, media bytes in memory (`Media.data`), from shards written by `write_shards`.

    `urls`: one path/URL/brace pattern or a list of them. `webdataset_options` go to `webdataset.WebDataset`
    (e.g. `nodesplitter=webdataset.split_by_node` under DDP). Shards are read in the order given.
    """
    import webdataset as wds

    from webdataset.shardlists import expand_urls

    # WebDataset expands braces only in a single string; expand each entry so lists may hold patterns too.
    entries = [urls] if isinstance(urls, (str, Path)) else list(urls)
    urls = [u for entry in entries for u in expand_urls(str(entry))]
    if not urls:
        raise ValueError("read_shards: no shard paths or URLs given")
    options = {"shardshuffle": False, "empty_check": False, **webdataset_options}
    for sample in wds.WebDataset(urls, **options):
        yield record_from_sample(sample, f"{sample.get('__url__', '?')}#{sample['__key__']}")


def record_from_sample(sample: dict, where: str) -> Record:
    """The record of one shard sample ({member field: bytes}), its media bytes attached; ManifestError if bad."""
    raw = sample.get(RECORD_FIELD)
    if raw is None:
        raise ManifestError(f"{where}: sample has no '{RECORD_FIELD}' member (not written by write_shards?)")
    try:
        obj = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"{where}: '{RECORD_FIELD}' is not valid JSON: {err}") from err
    # Members are named relative to the sample; "/" as base keeps Path(...).name equal to the member.
    record = parse_record(obj, base_dir="/", where=(where, 0), check_exists=False)
    return _attach(record, sample, where)


def iter_tar_samples(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {field: bytes}) of each sample of one shard, in tar order, without webdataset (and so
    without torch): for readers that only need the bytes. `path` may be `pipe:COMMAND` (the command's stdout
    is the tar). A sample's members are consecutive and share the key before the first dot of their name,
    as write_shards lays them out. ManifestError when the tar is broken (after the last good sample)."""
    import tarfile

    from omniembed.data.sources import PIPE, UnreadableShard, open_pipe

    proc = None
    key, sample = None, {}
    try:
        if str(path).startswith(PIPE):
            stream, proc = open_pipe(str(path))
            tar = tarfile.open(fileobj=stream, mode="r|*")
        else:
            tar = tarfile.open(path, mode="r|*")  # streamed: memory holds one sample, not the shard
        with tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                k, _, field_ = base.partition(".")
                if k != key and sample:
                    yield key, sample
                    sample = {}
                key = k
                sample[field_] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise UnreadableShard(f"{path}: not a readable shard: {err}") from err
    finally:
        if proc is not None:
            proc.stdout.close()
            if proc.wait() != 0 and not sample and key is None:
                raise UnreadableShard(f"{path}: the command exited with status {proc.returncode}")
    if sample:
        yield key, sample


def shard_manifest(manifest: str | Path, out_pattern: str | Path, maxcount: int = 1000) -> list[Path]:
    """Load a manifest (validated, files must exist) and write it as shards."""
    from omniembed.data.manifest import iter_manifest

    return write_shards(iter_manifest(manifest), out_pattern, maxcount=maxcount)
