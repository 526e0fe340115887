"""Where records come from, for every reader of a corpus (training's stream, `omniembed shards`, the Ray
ingest): a JSONL manifest or WebDataset shards, cut into read units, each unit read into records.

Inputs: one `.jsonl` manifest, or shards given as files, brace patterns (`train-{000000..000099}.tar`),
a folder of `*.tar`, a list of any of those, or `pipe:COMMAND` (a command whose stdout is one tar, as
WebDataset reads it). A unit is a run of manifest lines (found by one binary scan for newlines, no JSON
parsed, so line numbers survive into error messages) or one shard. Reading a unit yields, per record,
(where, raw) cheaply (the line's bytes or the sample's members) and `parse_raw` validates it later, so a
reader can shuffle or skip raw records without paying for their parsing.

torch-free: the serving image's ingest and the shard packer use it without a training framework.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import subprocess

import numpy as np
from dataclasses import asdict, dataclass
from typing import Iterator

from omniembed.data.manifest import Record, parse_record
from omniembed.errors import ManifestError

LINES_PER_UNIT = 256
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
PIPE = "pipe:"


@dataclass(frozen=True)
class Unit:
    """One read task: `count` lines of a manifest from byte `offset` (first numbered `line`), or one shard."""

    path: str
    kind: str  # "lines" | "shard"
    offset: int = 0
    line: int = 0
    count: int = 0

    def as_row(self) -> dict:
        return asdict(self)


def plan_units(source: str | os.PathLike | list, lines_per_unit: int = LINES_PER_UNIT,
               min_units: int = 1) -> list[Unit]:
    """Read units for a manifest (.jsonl), a shard, a brace pattern or list of shards, or a folder of shards.
    A manifest is cut into at least `min_units` units where it has the lines (so every reader gets work)."""
    paths = expand_inputs(source)
    manifests = [p for p in paths if not is_shard(p)]
    if manifests and len(paths) > 1:
        raise ManifestError(f"{manifests[0]}: give one JSONL manifest, or shards only (got {len(paths)} inputs)")
    if manifests:
        units = list(line_units(manifests[0], lines_per_unit))
        if 0 < len(units) < min_units:  # a small manifest: scan it again, cut finer so every reader gets work
            per_unit = -(-sum(u.count for u in units) // min_units)
            units = list(line_units(manifests[0], per_unit))
        return units
    return [Unit(path=p, kind="shard") for p in paths]


def is_shard(path: str) -> bool:
    return path.startswith(PIPE) or path.endswith(SHARD_SUFFIXES)


def expand_inputs(source: str | os.PathLike | list) -> list[str]:
    """Absolute paths (or pipe: commands) of every input named by `source`, in order; ManifestError if a
    path does not exist or a folder holds no shard."""
    entries = [os.fspath(s) for s in source] if isinstance(source, (list, tuple)) else [os.fspath(source)]
    out: list[str] = []
    for entry in entries:
        if entry.startswith(PIPE):
            out.append(entry)
            continue
        if os.path.isdir(entry):
            found = sorted(p for p in glob.glob(os.path.join(entry, "*")) if p.endswith(SHARD_SUFFIXES))
            if not found:
                raise ManifestError(f"{entry}: a folder with no shards (*.tar) in it")
            out += [os.path.abspath(p) for p in found]
            continue
        for path in _braces(entry):
            if not os.path.isfile(path):
                raise ManifestError(f"{path}: no such manifest or shard")
            out.append(os.path.abspath(path))
    if not out:
        raise ManifestError(f"{source!r}: names no manifest or shard")
    return out


def _braces(entry: str) -> list[str]:
    """'shard-{000000..000099}.tar' -> its paths (as webdataset reads them), where braceexpand is installed."""
    try:
        import braceexpand
    except ImportError:  # a serve-only install: no patterns, plain paths still work
        return [entry]
    return list(braceexpand.braceexpand(entry))


def line_units(path: str, lines_per_unit: int) -> Iterator[Unit]:
    """Units of `lines_per_unit` lines, from one binary scan for newlines (no JSON parsed here)."""
    offset, line, start, start_line, count = 0, 1, 0, 1, 0
    try:
        handle = open(path, "rb")
    except OSError as err:
        raise ManifestError(f"{path}: cannot open manifest: {err.strerror or err}") from err
    with handle:
        for raw in handle:
            if count == 0:
                start, start_line = offset, line
            offset, line, count = offset + len(raw), line + 1, count + 1
            if count == lines_per_unit:
                yield Unit(path, "lines", start, start_line, count)
                count = 0
    if count:
        yield Unit(path, "lines", start, start_line, count)


# ---- reading -------------------------------------------------------------------------------------------
@dataclass
class Raw:
    """One record before parsing: a manifest line's bytes, or a shard sample's members."""

    where: str  # file:line or shard#key, for messages and rejects
    line: bytes | None = None
    sample: dict | None = None
    path: str = ""  # the manifest (relative media paths resolve against its folder)
    lineno: int = 0


class UnreadableShard(ManifestError):
    """A shard (or what a pipe: command wrote) is not a readable tar from some point on."""


def read_raw(unit: Unit | dict) -> Iterator[Raw]:
    """Every record of a unit, unparsed, in order. Blank lines are skipped (they carry nothing). A broken
    tar raises UnreadableShard after the last good sample."""
    u = unit if isinstance(unit, Unit) else Unit(**unit)
    if u.kind == "lines":
        with open(u.path, "rb") as handle:
            handle.seek(u.offset)
            for lineno in range(u.line, u.line + u.count):
                raw = handle.readline()
                if raw.strip():
                    yield Raw(f"{u.path}:{lineno}", line=raw, path=u.path, lineno=lineno)
        return
    from omniembed.data.shards import iter_tar_samples

    for key, sample in iter_tar_samples(u.path):
        yield Raw(f"{u.path}#{key}", sample=sample)


def parse_raw(raw: Raw) -> Record:
    """The validated record of a Raw (the manifest's and the shard reader's own checks); ManifestError if bad."""
    if raw.sample is not None:
        from omniembed.data.shards import record_from_sample

        return record_from_sample(raw.sample, raw.where)
    try:
        text = raw.line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError(f"{raw.where}: not UTF-8 text: {err.reason} at byte {err.start}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise ManifestError(f"{raw.where}: invalid JSON: {err.msg} at column {err.colno}") from None
    return parse_record(obj, base_dir=os.path.dirname(raw.path), where=(raw.path, raw.lineno))


def raw_id(raw: Raw) -> str:
    """The record id, read without validating the record ('' when there is none to read)."""
    try:
        if raw.sample is not None:
            obj = json.loads(bytes(raw.sample.get("record.json", b"{}")).decode("utf-8"))
        else:
            obj = json.loads(raw.line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ""
    id_ = obj.get("id") if isinstance(obj, dict) else None
    return id_ if isinstance(id_, str) else ""


def open_pipe(command: str):
    """(stdout stream, process) of a `pipe:` command, which writes one tar."""
    proc = subprocess.Popen(shlex.split(command[len(PIPE):]), stdout=subprocess.PIPE)
    return proc.stdout, proc


def sample_records(source, n: int, seed: int, strict: bool = False) -> tuple[list[Record], int]:
    """(a seeded sample of `n` valid records, how many read units it came from): whole read units (runs
    of 256 lines, or shards) in a seeded order until `n` records are in, so the cost is bounded by `n` (plus
    one unit), not by the corpus; a unit's records come in a row, which is why the units are small. When the
    whole corpus fits (or n <= 0) the records come in file order, as reading the manifest would give them.
    Invalid records are skipped (the stream reports them), or with `strict` raise their ManifestError."""
    units = plan_units(source)
    order = np.random.default_rng([seed, 5]).permutation(len(units)) if n > 0 else np.arange(len(units))
    got: list[tuple[int, list[Record]]] = []
    total = 0
    for u in order:
        if 0 < n <= total:
            break
        records = []
        try:
            for raw in read_raw(units[u]):
                try:
                    records.append(parse_raw(raw))
                except ManifestError:
                    if strict:
                        raise
        except UnreadableShard:
            if strict:
                raise
        got.append((int(u), records))
        total += len(records)
    if len(got) == len(units):  # everything was read: keep the corpus's own order
        got.sort(key=lambda x: x[0])
    out = [r for _, records in got for r in records]
    return (out[:n] if n > 0 else out), len(got)
