"""A folder of mixed media as index entries: text files cut into passages, images, sounds and videos.

Only the client talks to the model: this module reads files and sends bytes; it never imports torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from omniembed.errors import MediaError

TEXT_SUFFIXES = {".txt", ".md", ".text"}
MEDIA_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".wav", ".flac", ".ogg", ".mp3", ".m4a",
                  ".mp4", ".webm", ".mkv", ".mov", ".avi"}
PASSAGE_CHARS = 400  # the trunk reads a few hundred tokens; a longer passage would be cut, not embedded


@dataclass
class Entry:
    """One thing to index: its id (stable across re-runs, so re-indexing replaces), what it is, where it came
    from, and for text the passage itself (kept in the index payload: the service returns it with a hit)."""

    id: str
    modality: str  # text | image | audio | video
    path: Path
    text: str | None = None
    data: bytes | None = field(default=None, repr=False)

    def item(self):
        """The service's item form: a str, or {"image"|"audio"|"video": bytes}."""
        return self.text if self.modality == "text" else {self.modality: self.data}

    def metadata(self, root: Path) -> dict:
        payload = {"path": str(self.path.relative_to(root))}
        if self.text is not None:
            payload["text"] = self.text
        return {"modality": self.modality, "uri": self.path.resolve().as_uri(), "payload": payload}


def passages(text: str, limit: int = PASSAGE_CHARS) -> list[str]:
    """Paragraphs (blank-line separated) packed greedily up to `limit` characters; a longer paragraph is cut
    at word boundaries. Whitespace inside a passage is collapsed."""
    out: list[str] = []
    current = ""
    for para in (" ".join(p.split()) for p in text.split("\n\n")):
        if not para:
            continue
        if len(para) > limit and current:  # keep reading order: what came before goes out first
            out.append(current)
            current = ""
        while len(para) > limit:  # one overlong paragraph: cut at the last space before the limit
            cut = para.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            out.append(para[:cut])
            para = para[cut:].strip()
        if current and len(current) + 1 + len(para) > limit:
            out.append(current)
            current = ""
        current = f"{current} {para}".strip()
    if current:
        out.append(current)
    return out


def scan(folder: str | os.PathLike) -> tuple[list[Entry], list[str]]:
    """(entries, skipped) for every file under `folder`, in path order; skipped says why a file was left out.

    The modality of a media file is read from its bytes (a .png holding a WAV is audio), not its name."""
    from omniembed.media import detect_modality

    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    entries: list[Entry] = []
    skipped: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(root).as_posix()
        suffix = path.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as err:
                skipped.append(f"{rel}: not UTF-8 text ({err.reason} at byte {err.start})")
                continue
            chunks = passages(text)
            if not chunks:
                skipped.append(f"{rel}: empty")
            entries += [Entry(f"{rel}#{i}", "text", path, text=c) for i, c in enumerate(chunks)]
        elif suffix in MEDIA_SUFFIXES:
            data = path.read_bytes()
            try:
                entries.append(Entry(rel, detect_modality(data), path, data=data))
            except MediaError as err:
                skipped.append(f"{rel}: {err.reason}")
        else:
            skipped.append(f"{rel}: not a text, image, sound or video file (suffix {suffix or 'none'})")
    return entries, skipped


def index_folder(client, folder: str | os.PathLike, batch: int = 8) -> dict:
    """Upsert every entry of `folder` through the service (it embeds them); returns counts per modality and
    the skipped files. Media go a few per call so one message stays far under the size limit."""
    root = Path(folder)
    entries, skipped = scan(root)
    for start in range(0, len(entries), batch):
        part = entries[start:start + batch]
        client.upsert([e.id for e in part], items=[e.item() for e in part],
                      metadata=[e.metadata(root) for e in part])
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.modality] = counts.get(e.modality, 0) + 1
    return {"indexed": len(entries), "by_modality": counts, "skipped": skipped}
