"""`omniembed shards MANIFEST --out DIR`: a manifest packed into WebDataset shards, in parallel and resumably.

The manifest is cut into runs of `--maxcount` lines (one newline scan); run i becomes DIR/shard-{i:06d}.tar,
written by one of `--workers` processes, so shard i always holds the same lines whatever the worker count
or how often the command was interrupted. A shard is written under a temporary name and renamed when
complete: a rerun skips the shards that exist and writes the rest. Records that cannot be packed are not
dropped silently: each becomes a line of DIR/rejects.jsonl (`source` file:line, `id`, `reason`): invalid
JSON or fields, a media file that is missing or unreadable, an id already used on an earlier line, and with
`--check-media` media that does not decode. Members follow omniembed.data.shards' layout (key = the line
number, so keys are unique across shards), with member times fixed at 0 (byte-identical reruns).

Written with the standard tarfile module rather than webdataset's writer: the workers then need no torch,
and one shard per line run is all the layout asks (webdataset's ShardWriter rolls shards by count instead).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
from pathlib import Path

from tqdm import tqdm

from omniembed.data.manifest import media_of, record_to_json
from omniembed.data.shards import RECORD_FIELD, _member_field
from omniembed.data.sources import Unit, line_units, parse_raw, raw_id, read_raw
from omniembed.errors import ManifestError, MediaError

SHARD_NAME = "shard-{:06d}.tar"
REJECTS_FILE = "rejects.jsonl"
PART_DIR = ".rejects"  # each shard's rejects, merged into REJECTS_FILE at the end


def _duplicates(units: list[Unit]) -> dict[str, str]:
    """{where of a repeated id: where it was first used}: one pass reading ids only."""
    first: dict[str, str] = {}
    repeated: dict[str, str] = {}
    for unit in units:
        for raw in read_raw(unit):
            id_ = raw_id(raw)
            if not id_:
                continue
            if id_ in first:
                repeated[raw.where] = first[id_]
            else:
                first[id_] = raw.where
    return repeated


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def pack_unit(job: tuple[int, dict, str, dict[str, str], bool]) -> tuple[int, int, int]:
    """Write one shard: (index, records packed, records rejected)."""
    index, unit, out, repeated, check_media = job
    out_dir = Path(out)
    rejects: list[dict] = []
    packed = 0
    tmp = out_dir / f".{SHARD_NAME.format(index)}.tmp"
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for raw in read_raw(unit):
            try:
                if raw.where in repeated:
                    raise ManifestError(f"{raw.where}: field 'id': duplicate id {raw_id(raw)!r} "
                                        f"(first at {repeated[raw.where]})")
                record = parse_raw(raw)
                if check_media:
                    from omniembed.data.manifest import check_record_media

                    check_record_media(record, (raw.path, raw.lineno))
                key = f"{raw.lineno:09d}"
                members, names = [], {}
                for name, media in media_of(record):
                    member = _member_field(name, media)
                    try:
                        members.append((f"{key}.{member}", media.read_bytes()))
                    except MediaError as err:
                        raise ManifestError(f"{raw.where}: field '{name}': cannot pack media: {err}") from err
                    names[name] = member
            except ManifestError as err:
                rejects.append({"source": raw.where, "id": raw_id(raw), "reason": str(err)})
                continue
            obj = record_to_json(record, media_names=names)
            _add(tar, f"{key}.{RECORD_FIELD}", json.dumps(obj, ensure_ascii=False).encode("utf-8"))
            for name, data in members:
                _add(tar, name, data)
            packed += 1
    part = out_dir / PART_DIR / f"{index:06d}.jsonl"
    part.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects))
    os.replace(tmp, out_dir / SHARD_NAME.format(index))  # last: the shard's existence means "done"
    return index, packed, len(rejects)


def pack_manifest(manifest: str | Path, out: str | Path, maxcount: int = 1000, workers: int | None = None,
                  check_media: bool = False) -> dict:
    """Pack `manifest` into `out`; returns a summary (shards, written now, skipped as done, records, rejects)."""
    from omniembed.media.pool import fork_pool, resolve_workers, worth_forking

    if maxcount < 1:
        raise ValueError(f"--maxcount must be at least 1, got {maxcount}")
    manifest, out = Path(manifest), Path(out)
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: no such manifest")
    units = list(line_units(str(manifest.resolve()), maxcount))
    (out / PART_DIR).mkdir(parents=True, exist_ok=True)
    repeated = _duplicates(units)
    todo = [(i, u.as_row(), str(out), {w: f for w, f in repeated.items() if _in_unit(w, u)}, check_media)
            for i, u in enumerate(units) if not (out / SHARD_NAME.format(i)).is_file()]
    workers = resolve_workers(workers)
    packed = rejected = 0
    bar = tqdm(total=len(todo), desc="pack shards", unit="shard", leave=False)
    if worth_forking(workers, len(todo)):
        with fork_pool(workers) as pool:
            for _, n, r in pool.imap_unordered(pack_unit, todo):
                packed, rejected = packed + n, rejected + r
                bar.update(1)
    else:
        for job in todo:
            _, n, r = pack_unit(job)
            packed, rejected = packed + n, rejected + r
            bar.update(1)
    bar.close()
    with open(out / REJECTS_FILE, "w", encoding="utf-8") as f:  # every shard's, old and new, in order
        for i in range(len(units)):
            part = out / PART_DIR / f"{i:06d}.jsonl"
            if part.is_file():
                f.write(part.read_text(encoding="utf-8"))
    total_rejects = sum(1 for line in open(out / REJECTS_FILE, encoding="utf-8") if line.strip())
    return {"shards": len(units), "written": len(todo), "skipped_done": len(units) - len(todo),
            "packed_now": packed, "rejected_now": rejected, "rejects": total_rejects,
            "rejects_file": str(out / REJECTS_FILE)}


def _in_unit(where: str, unit: Unit) -> bool:
    line = int(where.rsplit(":", 1)[1])
    return unit.line <= line < unit.line + unit.count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="omniembed shards", description="Pack a manifest and its media into "
                                "WebDataset shards (DIR/shard-000000.tar, ...), in parallel; a rerun finishes "
                                "an interrupted one; records that cannot be packed go to DIR/rejects.jsonl.")
    p.add_argument("manifest", help="manifest.jsonl (docs/manifest.md)")
    p.add_argument("--out", required=True, help="folder for the shards (created)")
    p.add_argument("--maxcount", type=int, default=1000, help="manifest lines per shard (default 1000)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU, up to 8)")
    p.add_argument("--check-media", action="store_true", help="also decode every media file (slower)")
    args = p.parse_args(argv)
    try:
        summary = pack_manifest(args.manifest, args.out, args.maxcount, args.workers, args.check_media)
    except (ManifestError, ValueError) as err:
        print(f"omniembed shards: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
