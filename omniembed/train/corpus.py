"""Stage 2 of training: a manifest tokenized ONCE into id arrays, so training steps never touch media.

Per item: one id block per media view (image, audio, video; the document body of a single-item document
as its "interleaved" view) and the ids of every caption; per document: its body for the next-token loss.
Blocks carry no <bos>/<eos>/<embed>: `view_ids` and `caption_sequence` add them when a batch is built.

Every distinct media file is decoded and tokenized once (documents reuse their items' files), and the
result is cached as RUN_DIR/corpus.npz (one flat int32 array) + corpus.json (where each block lies).
An item's audio or video longer than its window (omniembed.tokenization.windows) is tokenized window by
window: `windows[view]` holds every window's block and `spans[view]` their times; `blocks[view]` is the
first window. A training step reads one of the windows; evaluation pools them all, as the embedders do.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from omniembed.data.manifest import Document, Item, media_of
from omniembed.errors import ManifestError, MediaError
from omniembed.tokenization.document import DocumentTokenizer, TextSegment
from omniembed.tokenization.inputs import image_side, media_segment
from omniembed.tokenization.windows import Windowing, input_documents
from omniembed.media.pool import fork_pool, worth_forking

log = logging.getLogger("omniembed.train")
CORPUS_VERSION = 2


@dataclass
class CorpusItem:
    id: str
    split: str  # "train" | "heldout"
    group: str  # items sharing a group are true duplicates: never negatives of each other
    attributes: dict[str, str]
    blocks: dict[str, np.ndarray] = field(default_factory=dict)  # view -> ids (no bos/eos/embed)
    texts: list[np.ndarray] = field(default_factory=list)  # one ids array per caption
    windows: dict[str, list[np.ndarray]] = field(default_factory=dict)  # view -> every window's block (long media)
    spans: dict[str, list[list[float]]] = field(default_factory=dict)  # view -> each window's [start, end] seconds

    def views(self) -> tuple[str, ...]:
        return (("text",) if self.texts else ()) + tuple(self.blocks)


@dataclass
class Corpus:
    items: list[CorpusItem]
    documents: list[np.ndarray]  # train-split document bodies for the next-token loss
    specials: dict[str, int]  # bos, eos, embed, pad ids

    def split(self, name: str) -> list[int]:
        return [i for i, it in enumerate(self.items) if it.split == name]

    def view_ids(self, item: CorpusItem, view: str, caption: int = 0, max_tokens: int = 256,
                 window: int = 0) -> np.ndarray:
        """<bos> block <eos> <embed>, the block cut so the whole fits max_tokens; a windowed view's block is
        window `window` (modulo their count)."""
        if view == "text":
            body = item.texts[caption % len(item.texts)]
        elif view in item.windows:
            body = item.windows[view][window % len(item.windows[view])]
        else:
            body = item.blocks[view]
        body = body[:max_tokens - 3]
        s = self.specials
        return np.concatenate([[s["bos"]], body, [s["eos"], s["embed"]]]).astype(np.int64)

    def caption_sequence(self, item: CorpusItem, view: str, caption: int, max_tokens: int) -> tuple[np.ndarray, int]:
        """(<bos> media block, then a caption, <eos>; the prompt length): teaches the next-token head to caption
        media. Tokens from the prompt length on are the caption and its <eos>."""
        text = item.texts[caption % len(item.texts)]
        media = item.blocks[view][:max(0, max_tokens - 2 - len(text))]
        s = self.specials
        seq = np.concatenate([[s["bos"]], media, text, [s["eos"]]]).astype(np.int64)
        return seq[:max_tokens], 1 + len(media)

    def document_sequence(self, index: int, max_tokens: int) -> np.ndarray:
        return self.body_sequence(self.documents[index], max_tokens)

    def body_sequence(self, body: np.ndarray, max_tokens: int) -> np.ndarray:
        """<bos> a document body <eos>, cut to max_tokens."""
        s = self.specials
        return np.concatenate([[s["bos"]], body[:max_tokens - 2], [s["eos"]]]).astype(np.int64)

    # ---- cache ----------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        arrays: list[np.ndarray] = []
        where: list[int] = [0]

        def put(a: np.ndarray) -> list[int]:
            arrays.append(np.asarray(a, dtype=np.int32))
            where.append(where[-1] + len(a))
            return [where[-2], where[-1]]

        meta = {"version": CORPUS_VERSION, "specials": self.specials, "items": [], "documents": []}
        for it in self.items:
            meta["items"].append({"id": it.id, "split": it.split, "group": it.group, "attributes": it.attributes,
                                  "blocks": {k: put(v) for k, v in it.blocks.items()},
                                  "texts": [put(t) for t in it.texts],
                                  "windows": {k: [put(b) for b in v] for k, v in it.windows.items()},
                                  "spans": it.spans})
        meta["documents"] = [put(d) for d in self.documents]
        flat = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
        tmp = directory / "corpus.tmp.npz"
        np.savez(tmp, ids=flat)
        tmp.replace(directory / "corpus.npz")
        (directory / "corpus.json.tmp").write_text(json.dumps(meta))
        (directory / "corpus.json.tmp").replace(directory / "corpus.json")

    @classmethod
    def load(cls, directory: Path) -> "Corpus":
        meta = json.loads((directory / "corpus.json").read_text())
        if meta.get("version") != CORPUS_VERSION:
            raise ManifestError(f"{directory / 'corpus.json'}: corpus cache version {meta.get('version')}, "
                                f"this build reads {CORPUS_VERSION}; delete it to re-tokenize")
        flat = np.load(directory / "corpus.npz")["ids"].astype(np.int64)

        def get(span):
            return flat[span[0]:span[1]]

        items = [CorpusItem(m["id"], m["split"], m["group"], m["attributes"],
                            {k: get(v) for k, v in m["blocks"].items()}, [get(t) for t in m["texts"]],
                            {k: [get(b) for b in v] for k, v in m["windows"].items()}, m["spans"])
                 for m in meta["items"]]
        return cls(items, [get(d) for d in meta["documents"]], meta["specials"])


def group_key(item: Item) -> str:
    """The duplicate group: meta["group"] when the manifest gives one, else the attribute set, else the id."""
    if "group" in item.meta:
        return str(item.meta["group"])
    if item.attributes:
        return json.dumps(item.attributes, sort_keys=True)
    return item.id


def training_group(group: str, attributes: dict | None, label: str | None) -> str:
    """The group whose rows are never negatives of each other: the duplicate group, or under a label hit rule
    (eval.label) the label's value when the item has it. Items of one digit are each other's hits, and a
    contrastive loss that pushed them apart would fight the retrieval it is judged by."""
    if label is not None and attributes and label in attributes:
        return f"label:{json.dumps(attributes[label], sort_keys=True)}"
    return f"group:{group}"


_WORKER: "_Tokenize | None" = None  # the parent's tokenizer, inherited by forked prefetch workers


def _encode_in_worker(media) -> tuple[str, tuple | MediaError]:
    try:
        return media.source, _WORKER.encode_media(media)
    except MediaError as err:  # sent back, raised where the block is used, as on the inline path
        return media.source, err


class _Tokenize:
    """Media blocks cached by source, so a file shared by an item and a document is decoded once."""

    def __init__(self, doc_tok: DocumentTokenizer, sample_rate: int, video_fps: float,
                 windowing: Windowing | None = None, cache: bool = True):
        self.doc, self.rate, self.fps, self.windowing = doc_tok, sample_rate, video_fps, windowing
        self.side = image_side(doc_tok.image)
        self.cache: dict[str, tuple | MediaError] = {}
        self.keep = cache  # False for a stream: memory must not grow with the corpus
        self.batched: dict[str, tuple | MediaError] = {}  # encode_images' blocks, each used once

    def encode_media(self, media, whole: bool = False) -> tuple[list[np.ndarray], list | None]:
        """(the blocks of one media file, their windows' [start, end] or None when it is one block)."""
        if not whole and self.windowing is not None and self.windowing.spec(media.modality) is not None:
            src = media.source if media.data is None and not media.is_url else media.read_bytes()
            docs, spans = input_documents({media.modality: src}, self.windowing, sample_rate=self.rate,
                                          video_fps=self.fps, image_side=self.side)
            blocks = [np.asarray(self.doc.encode(d, bos=False, eos=False), dtype=np.int64) for d in docs]
            return blocks, [list(s) for s in spans] if spans else None
        seg = media_segment(media, self.rate, self.fps, self.side)
        return [np.asarray(self.doc.encode([seg], bos=False, eos=False), dtype=np.int64)], None

    def encode_images(self, medias: list) -> None:
        """Decode these image files, then encode them in ONE batch of the image tokenizer (a stream worker's
        chunk: one forward instead of one per image); `media` hands each block out once. A file that does not
        decode keeps its MediaError, raised where it is used."""
        from omniembed.tokenization.document import ImageCodes

        pixels, sources = [], []
        for m in medias:
            try:
                pixels.append(media_segment(m, self.rate, self.fps, self.side).pixels)
                sources.append(m.source)
            except MediaError as err:
                self.batched[m.source] = err
        if not pixels:
            return
        codes = self.doc._image_codes(pixels, 0)  # (B, N)
        for source, c in zip(sources, codes):
            self.batched[source] = ([np.asarray(self.doc.encode([ImageCodes(c)], bos=False, eos=False),
                                                dtype=np.int64)], None)

    def media(self, media) -> tuple[list[np.ndarray], list | None]:
        if media.source in self.batched:
            got = self.batched.pop(media.source)
            if isinstance(got, MediaError):
                raise got
            return got
        if not self.keep:
            return self.encode_media(media)
        if media.source not in self.cache:
            self.cache[media.source] = self.encode_media(media)
        got = self.cache[media.source]
        if isinstance(got, MediaError):  # decoded in a worker (prefetch): raised where it is used, as inline
            raise got
        return got

    def whole_media(self, media) -> np.ndarray:
        """One block for the file, however long (documents are cut to lm_max_len, not windowed)."""
        blocks, spans = self.media(media)
        if spans is None:
            return blocks[0]
        key = "whole:" + media.source
        if not self.keep:
            return self.encode_media(media, whole=True)[0][0]
        if key not in self.cache:
            self.cache[key] = self.encode_media(media, whole=True)
        return self.cache[key][0][0]

    def prefetch(self, records: list, workers: int) -> None:
        """Decode and encode every distinct media file of `records` in `workers` processes, into the cache.

        Decoding (PNG, WAV, MP4) and the tokenizer encoders are most of this stage and independent per file;
        the blocks are the same as the inline path's, in any order, so the corpus does not depend on workers."""
        todo, seen = [], set(self.cache)
        for r in records:
            for _, m in media_of(r):
                if m.source not in seen:
                    seen.add(m.source)
                    todo.append(m)
        # fork: workers inherit the loaded tokenizers instead of loading them again (elsewhere: inline)
        if not worth_forking(workers, len(todo)):
            return
        global _WORKER
        _WORKER = self
        try:
            with fork_pool(workers) as pool:
                for source, got in tqdm(pool.imap_unordered(_encode_in_worker, todo, chunksize=16),
                                        total=len(todo), desc="tokenize media", unit="file", leave=False):
                    self.cache[source] = got
        finally:
            _WORKER = None

    def text(self, text: str) -> np.ndarray:
        return np.asarray(self.doc.encode([TextSegment(text)], bos=False, eos=False), dtype=np.int64)

    def texts(self, texts: list[str]) -> list[np.ndarray]:
        """The ids of each text, as `text` gives them, from one batched BPE call and one vocabulary mapping."""
        if not texts:
            return []
        pieces = self.doc.text.encode_batch(list(texts))
        if not any(pieces):
            return [np.zeros(0, np.int64) for _ in pieces]
        flat = self.doc.vocab.text_ids(np.asarray([i for p in pieces for i in p], dtype=np.int64))
        return np.split(np.asarray(flat, dtype=np.int64), np.cumsum([len(p) for p in pieces])[:-1])

    def document(self, doc: Document) -> np.ndarray:
        parts, pending = [], []
        for s in doc.segments:
            if s.media is None:
                pending.append(s.text)
                continue
            if pending:  # adjacent text is joined before BPE, as DocumentTokenizer.encode does
                parts.append(self.text("".join(pending)))
                pending = []
            parts.append(self.whole_media(s.media))
        if pending:
            parts.append(self.text("".join(pending)))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def corpus_item(record: Item, tok: _Tokenize, split: str) -> tuple[CorpusItem, int]:
    """(the tokenized item, how many of its views did not decode and were left out, each logged)."""
    it = CorpusItem(record.id, split, group_key(record), dict(record.attributes or {}))
    it.texts = tok.texts(list(record.texts))
    skipped = 0
    for view, media in record.media.items():
        try:
            blocks, spans = tok.media(media)
            it.blocks[view] = blocks[0]
            if spans is not None:
                it.windows[view], it.spans[view] = blocks, spans
        except MediaError as err:
            skipped += 1
            log.warning("item %s: skipping its %s view: %s", record.id, view, err)
    return it, skipped


def build_corpus(train: list, heldout: list, doc_tok: DocumentTokenizer, sample_rate: int,
                 video_fps: float, workers: int = 1, windowing: Windowing | None = None) -> Corpus:
    """Tokenize the records of both splits. Items missing a decodable view keep their other views (logged).
    `workers` > 1 decodes and encodes the media files in that many processes first (same corpus)."""
    tok = _Tokenize(doc_tok, sample_rate, video_fps, windowing)
    tok.prefetch(list(train) + list(heldout), workers)
    items: list[CorpusItem] = []
    by_id: dict[str, CorpusItem] = {}
    documents: list[np.ndarray] = []
    skipped = 0
    records = [(r, "train") for r in train] + [(r, "heldout") for r in heldout]
    for record, split in tqdm(sorted(records, key=lambda x: isinstance(x[0], Document)),
                              desc="tokenize", unit="rec", leave=False):
        split = record.split or split
        if isinstance(record, Item):
            it, bad = corpus_item(record, tok, split)
            skipped += bad
            items.append(it)
            by_id[it.id] = it
            continue
        try:
            body = tok.document(record)
        except MediaError as err:
            skipped += 1
            log.warning("document %s skipped: %s", record.id, err)
            continue
        if split == "train":
            documents.append(body)
        members = (record.meta or {}).get("items", [])
        if len(members) == 1 and members[0] in by_id:  # a document about one item is another view of it
            by_id[members[0]].blocks["interleaved"] = body
    if not items:
        raise ManifestError("the manifest has no items: contrastive training needs multi-view items")
    if skipped:
        log.warning("%d views or documents could not be decoded and were skipped", skipped)
    return Corpus(items, documents, corpus_specials(doc_tok.vocab))


def corpus_specials(vocab) -> dict[str, int]:
    """The special ids the row builders add: bos, eos, embed, pad."""
    sp = vocab.special
    return {"bos": sp("<bos>"), "eos": sp("<eos>"), "embed": sp("<embed>"), "pad": sp("<pad>")}
