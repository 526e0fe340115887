"""Subsets of a synthetic world with fewer modalities, for the tests and benchmarks of users' own data shapes:
the same items with only some of their views, written as a new manifest pair beside the same media files."""

from __future__ import annotations

import json
from pathlib import Path

VIEWS = ("text", "image", "audio", "video")


def _keep(obj: dict, views: set[str], drop_attributes: bool) -> dict | None:
    obj = dict(obj)
    if drop_attributes:
        obj.pop("attributes", None)
    if obj["kind"] == "item":
        obj["views"] = {k: v for k, v in obj["views"].items() if k in views}
        return obj if obj["views"] else None
    obj["segments"] = [s for s in obj["segments"] if next(iter(s)) in views]
    return obj if obj["segments"] else None


def subset(world: str | Path, out: str | Path, views, *, every: dict[str, set[str]] | None = None,
           drop_attributes: bool = False) -> tuple[Path, Path]:
    """Write OUT/manifest.jsonl and OUT/heldout.jsonl: the world's records with only `views` (item views and
    document segments; media paths made absolute). `every`: {"0": {...}, "1": {...}} gives items whose index is
    even or odd other view sets (mixed view sets). drop_attributes: no labels at all (instance retrieval)."""
    world, out = Path(world), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("manifest.jsonl", "heldout.jsonl"):
        lines = []
        for n, line in enumerate((world / name).read_text().splitlines()):
            obj = json.loads(line)
            for key, value in (obj.get("views") or {}).items():
                if key != "text":
                    obj["views"][key] = str((world / value).resolve())
            for seg in obj.get("segments") or []:
                (k, v), = seg.items()
                if k != "text":
                    seg[k] = str((world / v).resolve())
            keep = set(views) if every is None else every[str(n % 2)]
            kept = _keep(obj, keep, drop_attributes)
            if kept is not None:
                lines.append(json.dumps(kept))
        (out / name).write_text("\n".join(lines) + "\n")
        written.append(out / name)
    return written[0], written[1]
