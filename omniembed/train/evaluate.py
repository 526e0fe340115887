"""Held-out evaluation: cross-modal recall@k for every ordered pair of modalities at every Matryoshka dim,
and how often generated captions name an item's attributes.

A retrieval hit is a retrieved item whose attribute set equals the query's exactly (items carry their
attributes in the manifest; without attributes, the item's duplicate group or its id stands in). The
query's own item is in the gallery, and so are other items with the same attributes: all count as hits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from omniembed.model import OmniModel
from omniembed.train.batches import pad_batch
from omniembed.train.corpus import Corpus
from omniembed.train.rundir import EVAL_FILE

EVAL_MODALITIES = ("text", "image", "audio", "video")
KS = (1, 5, 10)
# the pairs logged on one line at each evaluation
HEADLINE = ("text->image", "image->text", "text->audio", "audio->text", "text->video", "video->text",
            "image->audio")


def recall_at_k(queries: np.ndarray, gallery: np.ndarray, query_keys: Sequence, gallery_keys: Sequence,
                ks: Sequence[int] = KS) -> dict[int, float]:
    """Share of queries whose top-k gallery rows (by cosine) include one with the query's key.

    queries (Q, D), gallery (G, D): L2-normalised rows. Ties are broken by gallery order."""
    sim = queries @ gallery.T  # (Q, G)
    order = np.argsort(-sim, axis=1, kind="stable")
    gk = np.asarray([hash_key(k) for k in gallery_keys])
    qk = np.asarray([hash_key(k) for k in query_keys])
    hits = gk[order] == qk[:, None]  # (Q, G) True where the ranked item matches
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def hash_key(key) -> str:
    return key if isinstance(key, str) else repr(key)


@torch.no_grad()
def embed_sequences(model: OmniModel, seqs: list[np.ndarray], batch: int = 64) -> torch.Tensor:
    """Full-width raw embeddings (N, max(embed_dims)), batched by similar length to waste little padding."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = torch.zeros(len(seqs), max(model.cfg.embed_dims))
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        ids, mask = pad_batch([seqs[i] for i in idx], model.cfg.pad_id)
        out[idx] = model.embed_raw(ids.to(_device(model)), mask.to(_device(model))).float().cpu()
    return out


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def recall_matrix(model: OmniModel, corpus: Corpus, item_indices: list[int], dims: Sequence[int],
                  max_tokens: int, ks: Sequence[int] = KS) -> dict:
    """{"dims": {d: {"q->g": {k: recall}}}, "items": n, "queries": {modality: n}} over the given items.

    Each item contributes its first caption as its text view."""
    was_training = model.training
    model.eval()
    embs: dict[str, torch.Tensor] = {}
    keys: dict[str, list] = {}
    for m in EVAL_MODALITIES:
        members = [i for i in item_indices if m in corpus.items[i].views()]
        if not members:
            continue
        seqs = [corpus.view_ids(corpus.items[i], m, 0, max_tokens) for i in members]
        embs[m] = embed_sequences(model, seqs)
        keys[m] = [_key(corpus.items[i]) for i in members]
    model.train(was_training)
    result: dict = {"items": len(item_indices), "queries": {m: len(k) for m, k in keys.items()}, "dims": {}}
    for d in dims:
        normed = {m: F.normalize(e[:, :d], dim=-1).numpy() for m, e in embs.items()}
        table = {}
        for q in normed:
            for g in normed:
                if q != g:
                    table[f"{q}->{g}"] = recall_at_k(normed[q], normed[g], keys[q], keys[g], ks)
        result["dims"][int(d)] = table
    return result


def _key(item) -> str:
    return repr(sorted(item.attributes.items())) if item.attributes else item.group


# ---- captions ---------------------------------------------------------------------------------------------
def names_value(text: str, synonyms: dict[str, Sequence[str]]) -> str | None:
    """The one value one of whose synonyms occurs in `text` as whole words, or None when none or several do."""
    import re

    text = text.lower()
    found = {value for value, words in synonyms.items()
             if any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text) for w in words)}
    return found.pop() if len(found) == 1 else None


def caption_rates(captions: Sequence[str], attributes: Sequence[dict]) -> dict:
    """How often a caption names the item's colour and shape (synthetic world vocabulary), vs chance."""
    from omniembed.data.synth.captions import COLOUR_WORDS, SHAPE_NOUNS

    n = len(captions)
    colour = sum(names_value(c, COLOUR_WORDS) == a.get("colour") for c, a in zip(captions, attributes))
    shape = sum(names_value(c, SHAPE_NOUNS) == a.get("shape") for c, a in zip(captions, attributes))
    return {"n": n, "colour": colour / max(n, 1), "shape": shape / max(n, 1),
            "colour_chance": 1 / len(COLOUR_WORDS), "shape_chance": 1 / len(SHAPE_NOUNS)}


@torch.no_grad()
def caption_items(model: OmniModel, corpus: Corpus, item_indices: list[int], text_ids: Sequence[int],
                  view: str = "image", max_new_tokens: int = 24, batch: int = 32) -> list[list[int]]:
    """Greedy captions (text ids only, up to <eos>) for each item's `view` block."""
    s = corpus.specials
    out: list[list[int]] = []
    for start in range(0, len(item_indices), batch):
        idx = item_indices[start:start + batch]
        prompts = [np.concatenate([[s["bos"]], corpus.items[i].blocks[view]]) for i in idx]
        ids, mask = pad_batch(prompts, s["pad"])
        # left-align is fine: generate reads each row's last real token and counts positions over real tokens
        new = model.generate(ids.to(_device(model)), max_new_tokens, allowed_ids=text_ids, eos_id=s["eos"],
                             pad_mask=mask.to(_device(model))).cpu()
        for row in new.tolist():
            out.append(row[:row.index(s["eos"])] if s["eos"] in row else row)
    return out


# ---- the periodic evaluation of a training run ------------------------------------------------------------
def evaluation_record(model: OmniModel, corpus: Corpus, cfg, doc_tok, step: int) -> dict:
    """Held-out recall matrix at every Matryoshka dim, and captions of held-out images scored."""
    held = corpus.split("heldout")
    record: dict = {"step": step, "hit": "the retrieved item has exactly the query's attribute set"}
    if not held:
        record["note"] = "no held-out items: recall not measured"
        return record
    t0 = time.perf_counter()
    record["recall"] = recall_matrix(model, corpus, held, model.cfg.embed_dims, cfg.data.max_view_tokens)
    with_image = [i for i in held if "image" in corpus.items[i].blocks][:cfg.loop.eval_captions]
    if with_image:
        vocab = doc_tok.vocab
        rows = caption_items(model, corpus, with_image, list(vocab.text_range), "image", cfg.loop.caption_tokens)
        texts = [doc_tok.text.decode([vocab.local(t) for t in row if t in vocab.text_range]) for row in rows]
        rates = caption_rates(texts, [corpus.items[i].attributes for i in with_image])
        rates["examples"] = [{"item": corpus.items[i].id, "attributes": corpus.items[i].attributes, "caption": t}
                             for i, t in list(zip(with_image, texts))[:5]]
        record["captions"] = rates
    record["eval_s"] = round(time.perf_counter() - t0, 2)
    return record


def headline(record: dict) -> str:
    """One log line of an evaluation record: R@1 of the headline pairs at the full dim and at 64."""
    if "recall" not in record:
        return record.get("note", "")
    dims = record["recall"]["dims"]
    parts = []
    for d in sorted(dims)[-1:] + ([64] if 64 in dims and 64 != max(dims) else []):
        parts.append(f"R@1 dim {d}: " + " ".join(f"{p}={dims[d][p][1]:.2f}" for p in HEADLINE if p in dims[d]))
    cap = record.get("captions")
    if cap:
        parts.append(f"captions name colour {cap['colour']:.2f} (chance {cap['colour_chance']:.2f}), "
                     f"shape {cap['shape']:.2f} (chance {cap['shape_chance']:.2f})")
    return "; ".join(parts)


def write_eval(run_dir: Path, record: dict, writer) -> None:
    """Append the record to RUN_DIR/eval.jsonl, and its figures to TensorBoard when a writer is open."""
    with open(run_dir / EVAL_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")
    if writer is None:
        return
    step = record["step"]
    for d, table in record.get("recall", {}).get("dims", {}).items():
        for pair, rk in table.items():
            for k, v in rk.items():
                writer.add_scalar(f"recall@{k}/dim{d}/{pair}", v, step)
    cap = record.get("captions")
    if cap:
        writer.add_scalar("captions/colour", cap["colour"], step)
        writer.add_scalar("captions/shape", cap["shape"], step)
    writer.flush()
