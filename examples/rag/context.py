"""Retrieve context for a question across modalities and assemble it for a generator.

    ctx = retrieve(client, "a big red circle moving left", per_modality=2, caption=Captioner(run_dir))
    print(ctx.prompt)          # the block a generator would read
    ctx.as_dict()              # the same, as a structure

Each modality is searched on its own (a metadata filter per call), so a strong text match cannot crowd the
images and sounds out of the context; passages are then ranked together by score.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

MODALITIES = ("text", "image", "audio", "video")
CAPTIONER = "the embedding model's own next-token head (greedy, text ids only)"


@dataclass
class Passage:
    rank: int
    id: str
    modality: str
    score: float
    source: str  # the path relative to the indexed folder
    text: str | None  # the passage itself, or the media's caption
    captioned: bool = False  # text is a generated caption, not the file's content


@dataclass
class RagContext:
    question: str
    passages: list[Passage] = field(default_factory=list)
    prompt: str = ""
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _local_path(uri: str | None) -> Path | None:
    if not uri or urlparse(uri).scheme != "file":
        return None
    return Path(unquote(urlparse(uri).path))


def query_item(question: str, attachments: list[str | os.PathLike] = ()):
    """The question as a service item: plain text, or an interleaved document of the text and media files."""
    if not attachments:
        return question
    from omniembed.media import detect_modality

    segments: list = [question]
    for a in attachments:
        data = Path(a).read_bytes()
        segments.append({detect_modality(data): data})
    return segments


def retrieve(client, question: str, per_modality: int = 2, modalities=MODALITIES,
             caption: Callable[[Path], str] | None = None, attachments=(), min_score: float | None = None
             ) -> RagContext:
    """Top `per_modality` hits of each modality for the question, captioned when `caption` is given."""
    item = query_item(question, list(attachments))
    found = []
    for m in modalities:
        for hit in client.search(item, k=per_modality, filter={"modality": m}):
            if min_score is None or hit.score >= min_score:
                found.append((m, hit))
    found.sort(key=lambda mh: -mh[1].score)
    passages = []
    for rank, (m, hit) in enumerate(found, 1):
        payload = hit.metadata.get("payload") or {}
        text, captioned = payload.get("text"), False
        path = _local_path(hit.metadata.get("uri"))
        if m != "text" and caption is not None and path is not None and path.is_file():
            text, captioned = caption(path), True
        passages.append(Passage(rank, hit.id, m, round(float(hit.score), 4), payload.get("path", hit.id), text,
                                captioned))
    note = ("media captions: " + CAPTIONER) if caption is not None else \
        "media are listed without captions (pass --run RUN_DIR to caption them with the model)"
    ctx = RagContext(question, passages, note=note)
    ctx.prompt = assemble_prompt(ctx)
    return ctx


def _describe(p: Passage) -> str:
    kind = {"text": "text passage", "image": "image", "audio": "sound", "video": "video"}[p.modality]
    head = f"[{p.rank}] {kind} from {p.source} (similarity {p.score:.3f})"
    if p.modality == "text":
        return f"{head}:\n    {p.text}"
    if p.text is None:
        return f"{head}: no caption"
    if p.captioned and not p.text:
        return f"{head}: the model's caption had no words"
    return f"{head}, described by the model as: \"{p.text}\"" if p.captioned else f"{head}: {p.text}"


def assemble_prompt(ctx: RagContext) -> str:
    """The block handed to a generator: instructions, numbered context across modalities, the question."""
    lines = ["Answer the question from the context below. The context was retrieved from a library of text, "
             "images, sounds and videos; media are given by a short machine-written description. Cite passages "
             "by their [number]; say so if the context does not answer the question.", "", "Context:"]
    lines += [_describe(p) for p in ctx.passages] or ["(nothing retrieved)"]
    lines += ["", f"Question: {ctx.question}", "Answer:"]
    return "\n".join(lines)
