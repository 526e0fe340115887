"""`VectorQuantizer`: nearest-code lookup with a straight-through gradient, EMA codebook, dead-code restart.

Why EMA updates rather than a codebook loss: the codebook then moves to the running mean of the encoder
outputs assigned to each code (online k-means), independent of the optimiser's learning rate and of Adam's
per-parameter scaling, which is what makes small, fast CPU runs converge without tuning a second loss weight.
The only loss left is the commitment term that keeps encoder outputs close to their codes.

Codebook collapse (most codes never chosen) is the known failure: codes unused for `dead_after` training
steps are re-initialised from encoder outputs of the current batch (the most recent ones available), so they
land where the data is. The codebook starts from data too: `init_kmeans` (k-means++ seeds, then Lloyd steps,
so rare vectors such as a small coloured shape among background get codes of their own), called by the
training stage after its warm-up; a quantiser trained without that call starts from its first batch.
`bypass` (training only) passes vectors through unquantised, for that warm-up.

`cosine=True` l2-normalises vectors and codes (lookup by angle); the shipped configs use Euclidean lookup,
which the "patch" image codes need (a patch's brightness is its norm) and which also did better for audio.

Inference (`eval()`) is exportable: a matmul, a sum of squares and an argmin; no data-dependent Python.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def squared_distances(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N, K) squared Euclidean distances, expanded so it is one matmul."""
    return x.pow(2).sum(1, keepdim=True) - 2.0 * x @ codebook.t() + codebook.pow(2).sum(1)[None, :]


def code_usage(codes: torch.Tensor, num_codes: int) -> dict[str, float]:
    """Usage statistics of a set of codes: fraction of the codebook used and perplexity exp(H(p))."""
    counts = torch.bincount(codes.reshape(-1).long(), minlength=num_codes).double()
    return usage_from_counts(counts)


def usage_from_counts(counts: torch.Tensor) -> dict[str, float]:
    total = float(counts.sum())
    if total == 0:
        return {"used_fraction": 0.0, "perplexity": 0.0, "codes_used": 0, "num_codes": int(counts.numel())}
    p = counts / total
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return {
        "used_fraction": float((counts > 0).double().mean()),
        "perplexity": math.exp(entropy),
        "codes_used": int((counts > 0).sum()),
        "num_codes": int(counts.numel()),
    }


def check_code_range(codes: torch.Tensor, num_codes: int, what: str) -> None:
    """Codes out of [0, num_codes) would index another modality's ids or crash inside embedding."""
    if codes.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{what}: expected integer codes, got {codes.dtype}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= num_codes):
        raise ValueError(f"{what}: values must lie in [0, {num_codes}), got [{int(codes.min())}, {int(codes.max())}]")


def kmeans_pp_seeds(x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """k rows of x (N, D) chosen by k-means++: each next seed with probability proportional to its squared
    distance from the seeds so far. With fewer than k distinct rows, the remaining seeds repeat rows."""
    n = x.shape[0]
    first = int(torch.randint(0, n, (1,), generator=generator))
    seeds = [first]
    d2 = squared_distances(x, x[first:first + 1]).squeeze(1).clamp_min(0)  # (N,)
    for _ in range(k - 1):
        total = float(d2.sum())
        if total <= 0:
            idx = int(torch.randint(0, n, (1,), generator=generator))
        else:
            idx = int(torch.multinomial(d2 / total, 1, generator=generator))
        seeds.append(idx)
        d2 = torch.minimum(d2, squared_distances(x, x[idx:idx + 1]).squeeze(1).clamp_min(0))
    return x[torch.tensor(seeds)].clone()


class VectorQuantizer(nn.Module):
    """forward(z (..., D)) -> (z_q (..., D) with straight-through gradient, codes (...), commitment loss)."""

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, decay: float = 0.99,
                 dead_after: int = 50, eps: float = 1e-5, cosine: bool = False):
        super().__init__()
        self.num_codes, self.dim, self.cosine = num_codes, dim, cosine
        self.beta, self.decay, self.dead_after, self.eps = beta, decay, dead_after, eps
        self.register_buffer("codebook", torch.randn(num_codes, dim) * 0.1)
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialized", torch.tensor(False))
        # Bookkeeping for restarts and usage(); not part of the saved tokenizer.
        self.register_buffer("steps_unused", torch.zeros(num_codes, dtype=torch.long), persistent=False)
        self.register_buffer("usage_counts", torch.zeros(num_codes, dtype=torch.float64), persistent=False)
        self.restarts = 0  # codes restarted since construction
        self.bypass = False  # warm-up: pass (projected) encoder outputs through unquantised

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """With `cosine`, vectors live on the unit sphere: lookup by angle, which keeps codes from drifting
        into regions no encoder output visits (better usage, as in ViT-VQGAN's l2-normalised codes)."""
        return F.normalize(z, dim=-1) if self.cosine else z

    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code index for each vector: (..., D) -> (...) int64."""
        flat = self.project(z.reshape(-1, self.dim).float())
        codes = squared_distances(flat, self.codebook).argmin(dim=1)
        return codes.reshape(z.shape[:-1])

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """(...) int64 -> (..., D) code vectors."""
        return F.embedding(codes, self.codebook)

    def forward(self, z: torch.Tensor):
        z = self.project(z.float())
        if self.bypass and self.training:
            return z, self.lookup(z), z.new_zeros(())
        codes = self.lookup(z)
        if self.training:
            self._update(z.detach().reshape(-1, self.dim), codes.reshape(-1))
            codes = self.lookup(z)  # the codebook moved (first-batch init, restarts): quantise against it
        z_q = self.embed(codes)
        commitment = self.beta * F.mse_loss(z, z_q.detach())
        z_st = z + (z_q - z).detach()  # straight-through: forward is z_q, gradient flows to z unchanged
        return z_st, codes, commitment

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        if not bool(self.initialized):
            self._init_from(flat)
            return
        counts = torch.bincount(codes, minlength=self.num_codes).to(flat.dtype)  # (K,)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, flat)  # (K, D)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing keeps rarely used codes from dividing by ~0.
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n
        self.codebook.copy_(self.project(self.ema_sum / smoothed[:, None]))

        self.usage_counts.add_(counts.double())
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        dead = (self.steps_unused >= self.dead_after).nonzero().flatten()
        if dead.numel():
            self._restart(dead, flat)

    def _init_from(self, flat: torch.Tensor) -> None:
        vectors = self.project(self._sample(flat, self.num_codes))
        self.codebook.copy_(vectors)
        self.ema_sum.copy_(vectors)
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def init_kmeans(self, flat: torch.Tensor, iters: int = 10) -> None:
        """Set the codebook to k-means centroids of `flat` (N, D) (spherical k-means when `cosine`), seeded
        with k-means++ so that rare vectors (a small coloured shape among background) still get codes."""
        flat = self.project(flat.float())
        centroids = self.project(kmeans_pp_seeds(flat, self.num_codes))
        for _ in range(iters):
            codes = squared_distances(flat, centroids).argmin(dim=1)
            counts = torch.bincount(codes, minlength=self.num_codes)
            sums = torch.zeros_like(centroids).index_add_(0, codes, flat)
            empty = counts == 0
            centroids = torch.where(empty[:, None], centroids, self.project(sums / counts.clamp_min(1)[:, None]))
        self.codebook.copy_(centroids)
        self.ema_sum.copy_(centroids)
        self.ema_count.fill_(1.0)
        self.steps_unused.zero_()
        self.initialized.fill_(True)

    def _restart(self, dead: torch.Tensor, flat: torch.Tensor) -> None:
        vectors = self.project(self._sample(flat, dead.numel()))
        self.codebook[dead] = vectors
        self.ema_sum[dead] = vectors
        self.ema_count[dead] = 1.0
        self.steps_unused[dead] = 0
        self.restarts += int(dead.numel())

    def _sample(self, flat: torch.Tensor, k: int) -> torch.Tensor:
        """k rows of the batch (with replacement only when the batch is smaller), slightly jittered so that
        codes restarted from one vector can still separate."""
        n = flat.shape[0]
        idx = torch.randperm(n, device=flat.device)[:k] if n >= k else torch.randint(0, n, (k,), device=flat.device)
        picked = flat[idx]
        return picked + 0.01 * picked.std().clamp_min(1e-6) * torch.randn_like(picked)

    def usage(self) -> dict[str, float]:
        """Usage since construction or the last reset_usage(): fraction of codes chosen, perplexity, and how
        many codes have been restarted."""
        stats = usage_from_counts(self.usage_counts)
        stats["restarts"] = self.restarts
        return stats

    def reset_usage(self) -> None:
        self.usage_counts.zero_()


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, commitment: torch.Tensor):
    """The VQ-VAE training objective with an EMA codebook: reconstruction MSE plus the commitment term.

    Returns (loss to backpropagate, the MSE alone as a float for logging)."""
    mse = F.mse_loss(recon.float(), target.float())
    return mse + commitment, float(mse.detach())
