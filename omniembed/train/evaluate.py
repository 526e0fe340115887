"""Held-out evaluation of a training run: cross-modal recall@k and mAP for every ordered pair of the modalities
present at every Matryoshka dim, from the tokenized corpus through the torch model, scored by omniembed.eval
(the code `omniembed eval` scores bundles and runs with), and how often generated captions name an item's
attributes. What counts as a hit is the config's eval section (omniembed.eval.hits).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from omniembed.eval.hits import describe, hit_key, resolve_rule
from omniembed.eval.matrix import matrix_from_embeddings
from omniembed.model import OmniModel
from omniembed.tokenization.windows import pool
from omniembed.train.batches import pad_batch
from omniembed.train.corpus import Corpus
from omniembed.train.rundir import EVAL_FILE

EVAL_MODALITIES = ("text", "image", "audio", "video")
# the pairs logged on one line at each evaluation
HEADLINE = ("text->image", "image->text", "text->audio", "audio->text", "text->video", "video->text",
            "image->audio")


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
                  max_tokens: int, rule: str = "attributes", label: str | None = None) -> dict:
    """omniembed.eval.matrix's result over the given items' views (each item's first caption is its text).
    Items that the hit rule cannot judge (no such label) take no part."""
    was_training = model.training
    model.eval()
    full: dict[str, np.ndarray] = {}
    keys: dict[str, list] = {}
    for m in EVAL_MODALITIES:
        members, mkeys = [], []
        for i in item_indices:
            item = corpus.items[i]
            key = hit_key(rule, item.id, item.attributes, item.group, label)
            if key is not None and m in item.views():
                members.append(i)
                mkeys.append(key)
        if not members:
            continue
        # a long clip is all its windows, pooled as the embedders pool them (omniembed.tokenization.windows)
        owners, seqs = [], []
        for row, i in enumerate(members):
            item = corpus.items[i]
            for w in range(len(item.windows.get(m, ())) or 1):
                owners.append(row)
                seqs.append(corpus.view_ids(item, m, 0, max_tokens, window=w))
        vectors = embed_sequences(model, seqs).numpy()
        if len(seqs) == len(members):
            full[m] = vectors
        else:
            owners = np.asarray(owners)
            full[m] = np.stack([pool(vectors[owners == row]) for row in range(len(members))])
        keys[m] = mkeys
    model.train(was_training)
    result = matrix_from_embeddings(full, keys, dims)
    result["items"] = len(item_indices)
    return result


# ---- captions ---------------------------------------------------------------------------------------------
def names_value(text: str, synonyms: dict[str, Sequence[str]]) -> str | None:
    """The one value one of whose synonyms occurs in `text` as whole words, or None when none or several do."""
    import re

    text = text.lower()
    found = {value for value, words in synonyms.items()
             if any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text) for w in words)}
    return found.pop() if len(found) == 1 else None


CAPTION_ATTRIBUTES = ("colour", "shape")  # the attributes whose words the synthetic world's vocabulary knows


def caption_rates(captions: Sequence[str], attributes: Sequence[dict]) -> dict | None:
    """How often a caption names the item's colour and shape (synthetic world vocabulary), vs chance; each
    counted over the items that have that attribute. None when no item has either."""
    from omniembed.data.synth.captions import COLOUR_WORDS, SHAPE_NOUNS

    words = {"colour": COLOUR_WORDS, "shape": SHAPE_NOUNS}
    out: dict = {"n": len(captions)}
    for name in CAPTION_ATTRIBUTES:
        judged = [(c, a[name]) for c, a in zip(captions, attributes) if name in a]
        if judged:
            out[name] = sum(names_value(c, words[name]) == v for c, v in judged) / len(judged)
            out[f"{name}_n"] = len(judged)
            out[f"{name}_chance"] = 1 / len(words[name])
    return out if any(name in out for name in CAPTION_ATTRIBUTES) else None


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
    rule = resolve_rule(cfg.eval.hit, cfg.eval.label, (corpus.items[i].attributes for i in held))
    record: dict = {"step": step, "hit": describe(rule, cfg.eval.label), "hit_rule": rule}
    if not held:
        record["note"] = "no held-out items: recall not measured"
        return record
    t0 = time.perf_counter()
    record["recall"] = recall_matrix(model, corpus, held, model.cfg.embed_dims, cfg.data.max_view_tokens, rule,
                                     cfg.eval.label)
    with_image = [i for i in held if "image" in corpus.items[i].blocks][:cfg.loop.eval_captions]
    if with_image:
        vocab = doc_tok.vocab
        rows = caption_items(model, corpus, with_image, list(vocab.text_range), "image", cfg.loop.caption_tokens)
        texts = [doc_tok.text.decode([vocab.local(t) for t in row if t in vocab.text_range]) for row in rows]
        rates = caption_rates(texts, [corpus.items[i].attributes for i in with_image])
        examples = [{"item": corpus.items[i].id, "attributes": corpus.items[i].attributes, "caption": t}
                    for i, t in list(zip(with_image, texts))[:5]]
        if rates is None:
            record["captions"] = {"n": len(texts), "note": "not scored: the items have no colour or shape attribute",
                                  "examples": examples}
        else:
            record["captions"] = {**rates, "examples": examples}
    record["eval_s"] = round(time.perf_counter() - t0, 2)
    return record


def headline(record: dict) -> str:
    """One log line of an evaluation record, live or read back from eval.jsonl (where JSON has made the dims
    and ks strings): R@1 of the headline pairs at the full dim and at 64."""
    if "recall" not in record:
        return record.get("note", "")
    dims = {int(d): {p: {int(k): v for k, v in ks.items()} for p, ks in pairs.items()}
            for d, pairs in record["recall"]["dims"].items()}
    parts = []
    for d in sorted(dims)[-1:] + ([64] if 64 in dims and 64 != max(dims) else []):
        parts.append(f"R@1 dim {d}: " + " ".join(f"{p}={dims[d][p][1]:.2f}" for p in HEADLINE if p in dims[d]))
    cap = record.get("captions") or {}
    named = [f"{a} {cap[a]:.2f} (chance {cap[a + '_chance']:.2f})" for a in CAPTION_ATTRIBUTES if a in cap]
    if named:
        parts.append("captions name " + ", ".join(named))
    if record["recall"].get("skipped"):
        parts.append(f"{len(record['recall']['skipped'])} pairs skipped")
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
    for d, table in record.get("recall", {}).get("map", {}).items():
        for pair, v in table.items():
            writer.add_scalar(f"mAP/dim{d}/{pair}", v, step)
    cap = record.get("captions") or {}
    for name in CAPTION_ATTRIBUTES:
        if name in cap:
            writer.add_scalar(f"captions/{name}", cap[name], step)
    writer.flush()
