"""The trunk's inputs for media codes from the tokenizers' codebooks: embedding rows started from them
(`train.code_init`), and the fixed code table of `model.code_features` (set_code_features, below).

A VQ code is an id to the trunk, and a randomly initialised table knows nothing of which codes look or sound
alike: two strokes of one digit in a font never seen in training get codes whose embeddings are unrelated.
Started from the codebook vectors instead (centred, reduced to d_model by their principal directions, or
rotated into d_model by a random orthonormal map where the codebook is narrower; distances kept up to scale),
near codes start near, and training moves them from there. On the spoken and drawn digits of
bench/spoken_digits, 1-NN over codebook vectors finds 0.87 of held-out digits against 0.53 over code identity,
and the trunk's held-out text->audio R@1 rose 0.39 -> 0.69; on the synthetic world's image+audio+text subset
image->audio fell 0.90 -> 0.83, so it is an option, not the default (bench/results/spoken_digits_sweep.md).

A start fades as training moves the rows. `model.code_features` keeps the codebook in the input for good: a
fixed table of each code's codebook vector and one learned map from it, added to the code's row (`add`, the
default, the map started at zero) or in place of it (`replace`); there the digits' held-out R@1 rose from
0.27-0.50 to 0.64-0.98 with the synthetic world's recall kept.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn

log = logging.getLogger("omniembed.train")
CODE_INITS = ("codebook", "random")


def codebook_rows(codebook: torch.Tensor, width: int, std: float, seed: int = 0) -> torch.Tensor:
    """(num_codes, dim) code vectors -> (num_codes, width) rows with per-entry std `std`, pairwise distances
    proportional to the codes' own within the top-`width` principal directions."""
    c = codebook.double() - codebook.double().mean(0, keepdim=True)
    u, s, _ = torch.linalg.svd(c, full_matrices=False)
    k = min(width, s.numel())
    rows = u[:, :k] * s[:k]  # (N, k): the codes in their principal coordinates
    if k < width:  # widen by a random orthonormal map (k, width): distances unchanged
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(width, k, generator=g, dtype=torch.float64))
        rows = rows @ q.T
    scale = rows.pow(2).mean().sqrt().clamp(min=1e-12)
    return (rows / scale * std).float()


def _table(model: nn.Module, ids: range) -> tuple[torch.Tensor, int]:
    """The embedding weight that holds the unified ids `ids`, and the row of ids.start in it."""
    towers = getattr(model, "towers", None)
    if towers is None:
        return model.tok_emb.weight, ids.start
    for name, (lo, hi) in model.ranges.items():  # late fusion: a tower's local ids (specials first)
        if lo <= ids.start < hi:
            return towers[name].tok_emb.weight, ids.start - lo + model.starts[0]
    raise ValueError(f"no tower holds ids {ids.start}..{ids.stop - 1}")


@torch.no_grad()
def init_code_embeddings(model: nn.Module, vocab, quantizers: dict, seed: int = 0) -> list[str]:
    """Copy codebook rows into the model's embeddings of each trained quantizer's codes.
    quantizers: {"image": VectorQuantizer, "audio": ...}; untrained ones (a modality the data lacks) are
    skipped. Returns the modalities initialised."""
    ranges = {"image": vocab.image_range, "audio": vocab.audio_range}
    done = []
    for name, vq in quantizers.items():
        ids = ranges[name]
        if not bool(vq.initialized) or vq.codebook.shape[0] != len(ids):
            continue
        weight, row = _table(model, ids)
        std = float(model.cfg.init_std)
        weight[row:row + len(ids)] = codebook_rows(vq.codebook, weight.shape[1], std, seed).to(weight)
        done.append(name)
    if done:
        log.info("code embeddings of %s started from the tokenizers' codebooks (train.code_init=codebook)",
                 " and ".join(done))
    return done


@torch.no_grad()
def set_code_features(model: nn.Module, vocab, quantizers: dict, seed: int = 0) -> list[str]:
    """Fill the trunk's fixed code table (model.code_features) from the tokenizers' codebooks: each media
    code's row holds its codebook vector in principal coordinates (codebook_rows, unit std), image codes in
    the first half of the columns and audio codes in the second, so the one learned projection acts on each
    modality by its own half. With code_features "replace" those codes then enter by this table alone
    (code_free 0), with "add" by it and their own rows. Other ids, and the codes of a quantizer the data did
    not train, enter by their rows only. Returns the modalities filled."""
    table = getattr(model, "code_table", None)
    if table is None:
        raise ValueError("model.code_features is off: this model has no code table")
    half = table.shape[1] // 2
    columns = {"image": slice(0, half), "audio": slice(half, table.shape[1])}
    ranges = {"image": vocab.image_range, "audio": vocab.audio_range}
    done = []
    for name, vq in quantizers.items():
        ids, cols = ranges[name], columns[name]
        if not bool(vq.initialized) or vq.codebook.shape[0] != len(ids):
            continue
        width = cols.stop - cols.start
        table[ids.start:ids.stop, cols] = codebook_rows(vq.codebook, width, 1.0, seed).to(table)
        if model.cfg.code_features == "replace":
            model.code_free[ids.start:ids.stop] = 0.0
        done.append(name)
    if done:
        log.info("code features of %s set from the tokenizers' codebooks (model.code_features)", " and ".join(done))
    return done
