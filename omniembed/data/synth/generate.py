"""Generating the synthetic world (`omniembed synth`, omniembed.data.synth.cli) and reading it back.

`generate` writes DIR/manifest.jsonl (train split), DIR/heldout.jsonl (items and documents whose attribute
combinations never occur in training), DIR/world.json (the attribute vocabulary and the held-out
combinations) and DIR/media/<id>.{png,wav,mp4|webm}. Every record also carries "split". The output is a
pure function of the arguments (same seed, same files), whatever the number of worker processes.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from omniembed.data.manifest import Record, load_manifest, write_manifest
from omniembed.data.synth import captions as cap
from omniembed.data.synth import world as W
from omniembed.data.synth.render import Look, render_frames, render_image
from omniembed.data.synth.sound import render_sound
from omniembed.errors import ManifestError
from omniembed.media.limits import SAMPLE_RATE

WORLD_VERSION = 3  # a world on disk of another version is regenerated, not read
TRAIN_FILE, HELDOUT_FILE, WORLD_FILE = "manifest.jsonl", "heldout.jsonl", "world.json"


@dataclass(frozen=True)
class SynthConfig:
    n: int  # items (train + held-out); documents come on top
    seed: int = 0
    heldout_frac: float = 0.125  # of attribute combinations; held-out items get the same share of n
    image_size: int = 64
    video_format: str = "mp4"  # "mp4" | "webm" | "none"
    video_seconds: float = 2.0
    fps: int = 8
    audio_seconds: float = 2.0  # the video's audio track is the same sound
    sample_rate: int = SAMPLE_RATE
    captions_per_item: int = 4
    documents: int | None = None  # default n // 2


@dataclass
class SynthWorld:
    """A generated world read back from disk: what tests and benchmarks need in one object."""

    root: Path
    world: dict
    train: list[Record] = field(default_factory=list)
    heldout: list[Record] = field(default_factory=list)

    @property
    def manifest_path(self) -> Path:
        return self.root / TRAIN_FILE

    @property
    def heldout_path(self) -> Path:
        return self.root / HELDOUT_FILE

    @property
    def items(self) -> list[Record]:
        return [r for r in self.train + self.heldout if r.kind == "item"]


def _item_record(job: tuple[SynthConfig, str, int, tuple[str, ...], str, str]) -> dict:
    """Render, encode and write one item's media; return its manifest record. Runs in a worker process."""
    from omniembed.media.encode import encode_audio, encode_image, encode_video

    cfg, out_dir, index, combo, item_id, split = job
    attrs = W.as_dict(combo)
    rng = np.random.default_rng([cfg.seed, 1, index])  # per item: identical whichever worker renders it
    look = Look.draw(attrs, rng)
    media_dir = Path(out_dir) / "media"
    wave = render_sound(attrs, cfg.audio_seconds, cfg.sample_rate, rng)
    views: dict = {"text": cap.captions(attrs, cfg.captions_per_item, rng)}

    image = render_image(attrs, look, cfg.image_size, rng)
    (media_dir / f"{item_id}.png").write_bytes(encode_image(image, "png"))
    views["image"] = f"media/{item_id}.png"
    (media_dir / f"{item_id}.wav").write_bytes(encode_audio(wave, cfg.sample_rate, "wav"))
    views["audio"] = f"media/{item_id}.wav"
    if cfg.video_format != "none":
        n_frames = int(round(cfg.video_seconds * cfg.fps))
        frames = render_frames(attrs, look, cfg.image_size, n_frames, rng)
        data = encode_video(frames, cfg.fps, cfg.video_format, audio=wave, sample_rate=cfg.sample_rate)
        (media_dir / f"{item_id}.{cfg.video_format}").write_bytes(data)
        views["video"] = f"media/{item_id}.{cfg.video_format}"
    return {"id": item_id, "kind": "item", "views": views, "attributes": attrs, "split": split}


def _document(doc_id: str, items: list[dict], rng: np.random.Generator, split: str) -> dict:
    """An interleaved text/media record about one or two items, reusing their media files."""
    segments: list[dict] = []
    for k, item in enumerate(items):
        attrs = item["attributes"]
        layouts = [lay for lay in cap.SINGLE_ITEM_LAYOUTS if all(m in item["views"] for _, m in lay)]
        layout = layouts[int(rng.integers(len(layouts)))]
        name = cap.short_name(attrs, rng)
        for i, (text, modality) in enumerate(layout):
            if i == 0 and k > 0:  # second item: a linking phrase instead of a fresh sentence
                text = f"{cap.PAIR_LINKS[int(rng.integers(len(cap.PAIR_LINKS)))]} {name}:"
            segments.append({"text": text.format(name=name)})
            segments.append({modality: item["views"][modality]})
    record = {"id": doc_id, "kind": "document", "segments": segments, "split": split,
              "meta": {"items": [it["id"] for it in items]}}
    if len(items) == 1:
        record["attributes"] = dict(items[0]["attributes"])
    return record


def _documents(cfg: SynthConfig, items: list[dict], split: str, count: int, start: int) -> list[dict]:
    docs = []
    for j in range(count):
        rng = np.random.default_rng([cfg.seed, 2, start + j])
        k = 2 if len(items) > 1 and rng.random() < 0.3 else 1
        chosen = [items[int(i)] for i in rng.choice(len(items), size=k, replace=False)]
        docs.append(_document(f"doc-{start + j:05d}", chosen, rng, split))
    return docs


_OWN_MEDIA = re.compile(r"item-\d+\.(png|wav|mp4|webm)")


def _remove_stale_media(media_dir: Path, keep: set[str]) -> None:
    # A re-run into the same folder with a smaller n or without video would otherwise leave files no
    # manifest names; only names this generator writes are touched.
    for path in media_dir.iterdir():
        if _OWN_MEDIA.fullmatch(path.name) and path.name not in keep:
            path.unlink()


def _default_workers(n: int) -> int:
    # Video encoding dominates; a second process pays off only once there is enough of it to share.
    return 1 if n < 64 else max(1, min(os.cpu_count() or 1, 4))


def generate(out_dir: str | Path, n: int, seed: int = 0, *, heldout_frac: float = 0.125, image_size: int = 64,
             video_format: str = "mp4", workers: int | None = None, **options) -> Path:
    """Write a world of `n` items (plus documents) under `out_dir`; returns `out_dir` as a Path.

    `options` are further SynthConfig fields (captions_per_item, documents, audio_seconds, fps, ...).
    `video_format="none"` skips videos for a faster world.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if video_format not in ("mp4", "webm", "none"):
        raise ValueError(f"video_format must be 'mp4', 'webm' or 'none', got {video_format!r}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
    cfg = SynthConfig(n=n, seed=seed, heldout_frac=heldout_frac, image_size=image_size,
                      video_format=video_format, **options)
    out = Path(out_dir)
    (out / "media").mkdir(parents=True, exist_ok=True)

    split = W.split_combinations(seed, heldout_frac)
    n_heldout = int(round(n * heldout_frac)) if n > 1 else 0
    train_combos, heldout_combos = W.assign_items(split, n - n_heldout, n_heldout)
    jobs = [(cfg, str(out), i, c, f"item-{i:05d}", "train") for i, c in enumerate(train_combos)]
    jobs += [(cfg, str(out), len(jobs) + i, c, f"item-{len(jobs) + i:05d}", "heldout")
             for i, c in enumerate(heldout_combos)]

    workers = _default_workers(n) if workers is None else max(1, workers)
    # fork: workers inherit the imported modules instead of re-importing numpy/PyAV per process
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        # imap keeps the job order, so the output stays a pure function of the arguments
        rendered = (map(_item_record, jobs) if pool is None
                    else pool.imap(_item_record, jobs, chunksize=max(1, len(jobs) // (16 * workers))))
        records = list(tqdm(rendered, total=len(jobs), desc="render world", unit="item", leave=False,
                            disable=len(jobs) < 64))

    train_items = [r for r in records if r["split"] == "train"]
    heldout_items = [r for r in records if r["split"] == "heldout"]
    n_docs = n // 2 if cfg.documents is None else cfg.documents
    n_heldout_docs = int(round(n_docs * n_heldout / n)) if heldout_items else 0
    train_docs = _documents(cfg, train_items, "train", n_docs - n_heldout_docs, 0) if train_items else []
    heldout_docs = _documents(cfg, heldout_items, "heldout", n_heldout_docs, len(train_docs))

    _remove_stale_media(out / "media", {Path(v).name for r in records for k, v in r["views"].items() if k != "text"})
    write_manifest(train_items + train_docs, out / TRAIN_FILE)
    write_manifest(heldout_items + heldout_docs, out / HELDOUT_FILE)
    world = {
        "version": WORLD_VERSION,
        "config": asdict(cfg),
        "attributes": {k: list(v) for k, v in W.ATTRIBUTES.items()},
        "cues": {
            "image_hue_degrees": W.HUES,
            "sound_note_hz": {k: round(v, 3) for k, v in W.NOTES.items()},
            "sound_timbre": W.TIMBRES,
            "sound_pulses": W.PULSES,
            "sound_glide_semitones": W.GLIDES,
        },
        "combinations": {"total": len(W.all_combinations()), "train": len(split.train),
                         "heldout": len(split.heldout)},
        "heldout_combinations": [W.as_dict(c) for c in split.heldout],
        "counts": {"train_items": len(train_items), "heldout_items": len(heldout_items),
                   "train_documents": len(train_docs), "heldout_documents": len(heldout_docs)},
        "files": {"train": TRAIN_FILE, "heldout": HELDOUT_FILE},
    }
    (out / WORLD_FILE).write_text(json.dumps(world, indent=2) + "\n", encoding="utf-8")
    return out


def load_world(root: str | Path, *, check_media: bool = False) -> SynthWorld:
    """Read a generated world back: world.json plus both manifests, validated."""
    root = Path(root)
    try:
        world = json.loads((root / WORLD_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ManifestError(f"{root / WORLD_FILE}: not a readable synthetic world description: {err}") from err
    if world.get("version") != WORLD_VERSION:
        raise ManifestError(f"{root / WORLD_FILE}: world version {world.get('version')!r}, this build reads "
                            f"{WORLD_VERSION}; regenerate it with python -m omniembed.data.synth")
    return SynthWorld(root=root, world=world,
                      train=load_manifest(root / world["files"]["train"], check_media=check_media),
                      heldout=load_manifest(root / world["files"]["heldout"], check_media=check_media))
