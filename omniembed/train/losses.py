"""Training losses as pure functions: the next-token loss with Chameleon's z-loss, and the Matryoshka
symmetric InfoNCE over nested embedding prefixes (distributed-aware).

Each returns (loss, stats): `loss` is a scalar to backprop, `stats` a dict of detached 0-d tensors,
converted to numbers by the caller at logging time (one device sync per step, not one per stat).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from omniembed.train import distributed as D

IGNORE_INDEX = -100


def lm_targets(ids: torch.Tensor, pad_mask: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Targets aligned with the logits of `ids`: target[t] = ids[t+1]; the last position and every
    target that is padding are ignored. (B, T) -> (B, T)."""
    targets = torch.full_like(ids, ignore_index)
    nxt_real = pad_mask[:, 1:] & pad_mask[:, :-1]
    targets[:, :-1] = torch.where(nxt_real, ids[:, 1:], torch.full_like(ids[:, 1:], ignore_index))
    return targets


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                    z_loss_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Mean cross-entropy over non-ignored targets + z_loss_weight * mean(log Z ** 2).

    The z-loss (PaLM, Chameleon) pulls the softmax normaliser log Z toward 0 so logits cannot drift
    upward without bound, a known source of late bf16 divergence. logits (B, T, V), targets (B, T)."""
    V = logits.shape[-1]
    logits = logits.float().reshape(-1, V)  # (N, V), fp32: the log-sum-exp over a big vocab needs it
    targets = targets.reshape(-1)
    valid = targets != ignore_index
    n = valid.sum()
    denom = n.clamp(min=1).float()
    lse = torch.logsumexp(logits, dim=-1)  # (N,)
    safe = torch.where(valid, targets, torch.zeros_like(targets))
    target_logit = logits.gather(1, safe[:, None]).squeeze(1)
    ce = ((lse - target_logit) * valid).sum() / denom
    z = (lse.pow(2) * valid).sum() / denom
    loss = ce + z_loss_weight * z
    with torch.no_grad():
        acc = ((logits.argmax(dim=-1) == targets) & valid).sum() / denom
    return loss, {"lm/ce": ce.detach(), "lm/z": z.detach(), "lm/acc": acc, "lm/tokens": n.detach()}


def matryoshka_contrastive_loss(a: torch.Tensor, b: torch.Tensor, dims: Sequence[int],
                                temperature: float | torch.Tensor, gather: bool = True,
                                labels: torch.Tensor | None = None,
                                dim_weights: Sequence[float] | None = None) -> tuple[torch.Tensor, dict]:
    """Symmetric InfoNCE between rows of a and b (row i of a and row i of b are positives), computed on
    every prefix a[:, :d] (re-normalised) for d in dims and averaged (or weighted by dim_weights).

    a, b: (B, D) embeddings, raw or normalised. temperature: a float or a tensor (learnable).
    labels: optional (B,) ints; rows sharing a label are not negatives of each other (masked out).
    gather: under torch.distributed, compare local rows against every rank's rows. The local rows keep
    their gradient through an all-gather with autograd; each rank's loss is the mean over its own rows,
    so with DDP's gradient averaging the update equals one process on the global batch.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"a and b must both be (batch, dim); got {tuple(a.shape)} and {tuple(b.shape)}")
    if max(dims) > a.shape[1] or min(dims) <= 0:
        raise ValueError(f"matryoshka dims {list(dims)} must lie in 1..{a.shape[1]}")
    weights = torch.ones(len(dims)) / len(dims) if dim_weights is None else torch.as_tensor(dim_weights).float()
    if len(weights) != len(dims):
        raise ValueError(f"dim_weights has {len(weights)} entries for {len(dims)} dims")
    B = a.shape[0]
    a, b = a.float(), b.float()
    if gather and D.is_distributed():
        a_all, b_all = D.all_gather_with_grad(a), D.all_gather_with_grad(b)
        labels_all = None if labels is None else D.all_gather_nograd(labels)
        offset = D.rank() * B
    else:
        a_all, b_all, labels_all, offset = a, b, labels, 0
    targets = torch.arange(B, device=a.device) + offset
    blocked = None
    if labels is not None:
        blocked = labels[:, None] == labels_all[None, :]  # (B, B_all) same label: not a negative
        blocked[torch.arange(B, device=a.device), targets] = False
    total = a.new_zeros(())
    stats = {}
    for d, w in zip(dims, weights.tolist()):
        a_d, b_d = F.normalize(a[:, :d], dim=-1), F.normalize(b[:, :d], dim=-1)
        a_all_d, b_all_d = F.normalize(a_all[:, :d], dim=-1), F.normalize(b_all[:, :d], dim=-1)
        logits_ab = a_d @ b_all_d.T / temperature  # (B, B_all)
        logits_ba = b_d @ a_all_d.T / temperature
        if blocked is not None:
            logits_ab = logits_ab.masked_fill(blocked, float("-inf"))
            logits_ba = logits_ba.masked_fill(blocked, float("-inf"))
        loss_d = (F.cross_entropy(logits_ab, targets) + F.cross_entropy(logits_ba, targets)) / 2
        total = total + w * loss_d
        with torch.no_grad():
            stats[f"con/loss@{d}"] = loss_d.detach()
            stats[f"con/acc@{d}"] = ((logits_ab.argmax(1) == targets).float().mean()
                                     + (logits_ba.argmax(1) == targets).float().mean()) / 2
    stats["con/loss"] = total.detach()
    return total, stats
