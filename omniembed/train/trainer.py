"""One joint training step, the core of `python -m omniembed.train`: next-token loss on an LM batch plus
the Matryoshka contrastive loss on a pair batch, weighted; bf16 autocast; gradient clipping; skipping of
non-finite or spiking steps; DDP/FSDP when torch.distributed is up; checkpoint save/resume.

The data pipeline is not here: the caller hands in `TokenBatch` / `PairBatch` tensors and the data
position (e.g. a `ResumableSampler` state) to save with the checkpoint.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from omniembed.train import distributed as D
from omniembed.train.checkpoint import load_checkpoint, save_checkpoint
from omniembed.errors import ConfigError, OmniEmbedError
from omniembed.train.losses import IGNORE_INDEX, lm_targets, matryoshka_contrastive_loss, next_token_loss
from omniembed.model import OmniModel
from omniembed.model.code_init import CODE_INITS
from omniembed.train.schedule import build_scheduler

log = logging.getLogger("omniembed.train")
PRECISIONS = ("fp32", "bf16", "auto")


class TrainingDiverged(OmniEmbedError, RuntimeError):
    """Too many consecutive steps were skipped for a non-finite or spiking loss."""


@dataclass
class TrainConfig:
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 10
    total_steps: int = 1000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping (the norm is still checked)
    lm_weight: float = 1.0
    contrastive_weight: float = 1.0
    matryoshka_dims: tuple[int, ...] | None = None  # None: the model's embed_dims
    precision: str = "fp32"  # bf16: autocast matmuls to bfloat16; auto: bf16 on CUDA or native-bf16 CPUs, else fp32
    parallel: str = "auto"  # auto (DDP under torchrun) | none | ddp | fsdp
    ddp_find_unused: bool = False  # set when DDP steps may lack the LM or the pair batch
    spike_factor: float = 4.0  # a loss above spike_factor * its running mean skips the step; 0 disables
    spike_warmup: int = 20  # good steps before spike detection starts (early losses fall fast)
    max_bad_steps: int = 5  # consecutive skipped steps that stop the run
    grad_accum: int = 1  # micro-batches per optimizer step (gradients summed, DDP/FSDP syncing on the last only)
    activation_checkpointing: bool = False  # recompute each block's activations in backward: memory for time
    compile: bool | str = False  # torch.compile the model: true (inductor) or a backend name (e.g. aot_eager)
    fsdp_reshard: bool = True  # FSDP: free gathered parameters after forward (ZeRO-3); false keeps them (ZeRO-2)
    peak_tflops: float | None = None  # per-device peak for MFU; None: a table of GPUs, or measured on CPU
    # the trunk's media-code embeddings: random, or from the tokenizers' codebooks (omniembed.model.code_init;
    # measured both ways in bench/results/spoken_digits.md)
    code_init: str = "random"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train precision={self.precision!r}: must be one of {PRECISIONS}")
        if self.parallel not in D.PARALLEL_MODES:
            raise ConfigError(f"train parallel={self.parallel!r}: must be one of {D.PARALLEL_MODES}")
        if self.max_bad_steps < 1:
            raise ConfigError(f"train max_bad_steps={self.max_bad_steps}: must be >= 1")
        if self.grad_accum < 1:
            raise ConfigError(f"train grad_accum={self.grad_accum}: must be >= 1")
        if self.code_init not in CODE_INITS:
            raise ConfigError(f"train code_init={self.code_init!r}: must be one of {CODE_INITS}")
        if self.matryoshka_dims is not None:
            self.matryoshka_dims = tuple(int(d) for d in self.matryoshka_dims)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"train config: unknown keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)


@dataclass
class TokenBatch:
    """Interleaved documents for the next-token loss: ids (B, T), pad_mask (B, T) True on real tokens.
    loss_mask (B, T), optional: True on the tokens to predict (e.g. only a caption, not the image before it)."""
    ids: torch.Tensor
    pad_mask: torch.Tensor
    loss_mask: torch.Tensor | None = None


@dataclass
class PairBatch:
    """Two views per item, row i of a with row i of b; labels (B,) mark items that are not negatives."""
    a_ids: torch.Tensor
    a_mask: torch.Tensor
    b_ids: torch.Tensor
    b_mask: torch.Tensor
    labels: torch.Tensor | None = None

    def tokens(self) -> int:
        return int(self.a_mask.sum() + self.b_mask.sum())


@dataclass
class ViewsBatch:
    """Several views of the same items: views[k] = (ids (B, T_k), pad_mask (B, T_k)), row i of every view
    is item i. The contrastive loss is the weighted mean over `pairs` (k, l, weight) of the loss between
    views k and l, so each view is encoded once and serves every pair it is part of."""
    views: list[tuple[torch.Tensor, torch.Tensor]]
    pairs: list[tuple[int, int, float]]
    labels: torch.Tensor | None = None

    def to(self, device) -> "ViewsBatch":
        return ViewsBatch([(i.to(device), m.to(device)) for i, m in self.views], self.pairs,
                          None if self.labels is None else self.labels.to(device))

    def tokens(self) -> int:
        return int(sum(m.sum() for _, m in self.views))


@dataclass
class MaskedViewsBatch:
    """A streamed batch: one row per record, every view in `views` for every row, `present` (B, V) True
    where the row's item has that view (other rows hold a bare placeholder and take no part). The loss is
    the weighted mean over `pairs` (k, l, weight) with two or more rows having both views, across all ranks,
    each pair's InfoNCE over just those rows. Every rank has the same B (rows of non-items are masked)."""
    views: list[tuple[torch.Tensor, torch.Tensor]]
    present: torch.Tensor
    pairs: list[tuple[int, int, float]]
    labels: torch.Tensor

    def to(self, device) -> "MaskedViewsBatch":
        return MaskedViewsBatch([(i.to(device), m.to(device)) for i, m in self.views], self.present.to(device),
                                self.pairs, self.labels.to(device))

    def tokens(self) -> int:
        return int(sum((m & self.present[:, k:k + 1]).sum() for k, (_, m) in enumerate(self.views)))


@dataclass
class StepResult:
    step: int  # optimizer updates applied so far
    loss: float  # weighted total, averaged over ranks
    lr: float
    grad_norm: float
    skipped: bool
    reason: str  # why the step was skipped, "" if applied
    stats: dict[str, float]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware; without it bf16 autocast is a slowdown."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not norms, not the temperature), as in GPT-2/nanoGPT."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


class Trainer:
    """Holds the (wrapped) model, optimizer, scheduler and the step / skip counters."""

    def __init__(self, model: OmniModel, cfg: TrainConfig):
        self.cfg = cfg
        self.model = model  # unwrapped, for embed/generate/export
        self.dims = cfg.matryoshka_dims or model.cfg.embed_dims
        if max(self.dims) > max(model.cfg.embed_dims):
            raise ConfigError(f"train matryoshka_dims {self.dims} exceed the model's embed_dims "
                              f"{model.cfg.embed_dims}")
        if hasattr(model, "checkpoint_activations"):
            model.checkpoint_activations = cfg.activation_checkpointing
        self.device = D.model_device(model)
        if cfg.precision == "auto":
            native = self.device.type == "cuda" or (self.device.type == "cpu" and cpu_has_native_bf16())
            cfg.precision = "bf16" if native else "fp32"
            log.info("precision=auto: %s on %s", cfg.precision, self.device)
        self.module = D.wrap_model(model, cfg.parallel, cfg.ddp_find_unused,
                                   bf16=cfg.precision == "bf16", reshard=cfg.fsdp_reshard)
        if cfg.compile:
            self.module = torch.compile(self.module, **({} if cfg.compile is True else {"backend": cfg.compile}))
        if cfg.precision == "bf16" and self.device.type == "cpu" and not cpu_has_native_bf16():
            log.warning("precision=bf16 on a CPU without AVX512-BF16 or AMX: bf16 matrix products are emulated "
                        "and far slower than fp32 here (see bench/results/train_step.md); use precision=fp32")
        self.optimizer = build_optimizer(model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio)
        self.step = 0
        self.bad_in_row = 0
        self.skipped_total = 0
        self.good_steps = 0
        self.loss_ema: float | None = None

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def _to_device(self, batch):
        if batch is None:
            return None
        if isinstance(batch, (ViewsBatch, MaskedViewsBatch)):
            return batch.to(self.device)
        moved = {k: None if v is None else v.to(self.device, non_blocking=True) for k, v in vars(batch).items()}
        return type(batch)(**moved)

    def _losses(self, lm: TokenBatch | None, pairs):
        """(the weighted loss, its stats) of one (micro-)batch; None when no rank has anything to learn from."""
        lm, pairs = self._to_device(lm), self._to_device(pairs)
        pair_kw, masked = {}, None
        if isinstance(pairs, MaskedViewsBatch):
            masked = self._agree(pairs, lm)
            if masked is None:
                return None
            lm = masked["lm"]
            if masked["needed"]:
                pair_kw = {"views": [pairs.views[k] for k in masked["needed"]]}
        elif isinstance(pairs, ViewsBatch):
            pair_kw = {"views": pairs.views}
        elif pairs is not None:
            # two passes, each view padded to its own length: a text view is not padded to a video's
            pair_kw = {"pair_ids": pairs.a_ids, "pair_mask": pairs.a_mask, "pair_b_ids": pairs.b_ids,
                       "pair_b_mask": pairs.b_mask}
        with self._autocast():
            out = self.module(lm_ids=None if lm is None else lm.ids, lm_mask=None if lm is None else lm.pad_mask,
                              **pair_kw)
        total = torch.zeros((), device=self.device)
        stats: dict[str, torch.Tensor] = {}
        if lm is not None:
            targets = lm_targets(lm.ids, lm.pad_mask.bool(), IGNORE_INDEX)
            if lm.loss_mask is not None:  # target t is token t+1: keep it where token t+1 is to be predicted
                keep = F.pad(lm.loss_mask.bool()[:, 1:], (0, 1), value=False)
                targets = targets.masked_fill(~keep, IGNORE_INDEX)
            loss, s = next_token_loss(out["logits"], targets, IGNORE_INDEX, self.model.cfg.z_loss_weight)
            total = total + self.cfg.lm_weight * loss
            stats.update(s)
        if masked is not None and masked["needed"]:
            loss, s = self._masked_loss(out["embedding"], pairs, masked, out["temperature"])
            total = total + self.cfg.contrastive_weight * loss
            stats.update(s)
            stats["temperature"] = out["temperature"].detach()
        elif pairs is not None and masked is None:
            emb = out["embedding"]  # (n_views * B, D): each view's rows in turn
            if isinstance(pairs, ViewsBatch):
                loss, s = self._views_loss(emb.chunk(len(pairs.views), dim=0), pairs, out["temperature"])
            else:
                a, b = emb.chunk(2, dim=0)
                loss, s = matryoshka_contrastive_loss(a, b, self.dims, out["temperature"], gather=True,
                                                      labels=pairs.labels)
            total = total + self.cfg.contrastive_weight * loss
            stats.update(s)
            stats["temperature"] = out["temperature"].detach()
        return total, stats

    def _agree(self, batch: MaskedViewsBatch, lm: TokenBatch | None) -> dict | None:
        """What every rank does with a streamed batch, decided from all ranks' rows so their passes and
        collectives match: the pairs with 2+ rows having both views (over all ranks), the views they need,
        and the LM batch (a rank without LM rows runs a zero-weight placeholder when another rank has some,
        so every rank logs the same stats). None: no rank has anything to learn from."""
        present_all = D.all_gather_nograd(batch.present)
        active = [(k, l, w) for k, l, w in batch.pairs if int((present_all[:, k] & present_all[:, l]).sum()) >= 2]
        needed = sorted({k for k, _, _ in active} | {l for _, l, _ in active})
        any_lm = D.all_reduce_mean(torch.tensor([float(lm is not None)], device=self.device)).item() > 0
        if not active and not any_lm:
            return None
        if any_lm and lm is None:
            ids = batch.views[0][0][:1, :2]  # two real tokens, no target counted
            lm = TokenBatch(ids, torch.ones_like(ids, dtype=torch.bool), torch.zeros_like(ids, dtype=torch.bool))
        return {"active": active, "needed": needed, "present_all": present_all, "lm": lm}

    def _masked_loss(self, emb, batch: MaskedViewsBatch, agreed: dict, temperature):
        """Every rank computes the same loss over all ranks' rows (gathered with gradient): the gradient each
        rank's rows receive is then the world's sum of one loss, which DDP's averaging turns into exactly the
        gradient of one process on the global batch."""
        needed, present_all = agreed["needed"], agreed["present_all"]
        full = {k: D.all_gather_with_grad(e.float()) for k, e in zip(needed, emb.chunk(len(needed), dim=0))}
        labels_all = D.all_gather_nograd(batch.labels)
        total_w = sum(w for _, _, w in agreed["active"])
        loss, stats = None, {}
        for k, l, w in agreed["active"]:
            rows = present_all[:, k] & present_all[:, l]
            pair_loss, s = matryoshka_contrastive_loss(full[k][rows], full[l][rows], self.dims, temperature,
                                                       gather=False, labels=labels_all[rows])
            loss = w / total_w * pair_loss if loss is None else loss + w / total_w * pair_loss
            for name, v in s.items():
                stats[name] = stats.get(name, 0.0) + w / total_w * v
        return loss, stats

    def _views_loss(self, embs, batch: ViewsBatch, temperature):
        """Weighted mean of the pairwise Matryoshka losses; stats are averaged with the same weights."""
        total_w = sum(w for _, _, w in batch.pairs)
        loss, stats = None, {}
        for k, l, w in batch.pairs:
            pair_loss, s = matryoshka_contrastive_loss(embs[k], embs[l], self.dims, temperature, gather=True,
                                                       labels=batch.labels)
            loss = w / total_w * pair_loss if loss is None else loss + w / total_w * pair_loss
            for name, v in s.items():
                stats[name] = stats.get(name, 0.0) + w / total_w * v
        return loss, stats

    def train_step(self, lm: TokenBatch | None = None, pairs=None, micro: list | None = None) -> StepResult:
        """One optimizer step on (lm, pairs), or on the micro-batches `micro` [(lm, pairs), ...] with their
        gradients summed (train.grad_accum; each micro-batch's loss weighs 1/len(micro))."""
        micro = micro if micro is not None else [(lm, pairs)]
        if any(m_lm is None and m_pairs is None for m_lm, m_pairs in micro):
            raise ValueError("train_step needs an LM batch, a pair batch, or both")
        self.module.train()
        totals, stats_sum, n_used = [], {}, 0
        for j, (m_lm, m_pairs) in enumerate(micro):
            with self._no_sync(j < len(micro) - 1):
                got = self._losses(m_lm, m_pairs)
                if got is None:  # no rank has a row to learn from in this micro-batch (e.g. all held out)
                    continue
                loss, stats = got
                # always backward, even on a bad loss: under DDP every rank must join the gradient all-reduce
                (loss / len(micro)).backward()
            totals.append(loss.detach().float())
            for k, v in stats.items():
                stats_sum[k] = stats_sum.get(k, 0.0) + v
            n_used += 1
        lr = self.optimizer.param_groups[0]["lr"]
        if not n_used:
            self.optimizer.zero_grad(set_to_none=True)
            return StepResult(self.step, float("nan"), lr, 0.0, True, "no trainable rows", {})
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
        # one all-reduce and one device sync for everything we log or decide on
        names = list(stats_sum)
        packed = torch.stack([sum(totals) / n_used] + [(stats_sum[k] / n_used).float().to(self.device)
                                                        for k in names])
        packed = D.all_reduce_mean(packed).tolist()
        total, values = packed[0], dict(zip(names, packed[1:]))
        grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
        reason = self._bad_reason(total, grad_norm)
        if reason:
            return self._skip(reason, total, lr, grad_norm, values)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        self.good_steps += 1
        self.bad_in_row = 0
        self.loss_ema = total if self.loss_ema is None else 0.95 * self.loss_ema + 0.05 * total
        return StepResult(self.step, total, lr, grad_norm, False, "", values)

    def _no_sync(self, skip: bool):
        """Gradients of a micro-batch that is not the step's last stay local (no all-reduce) under DDP/FSDP."""
        import contextlib

        if not skip:
            return contextlib.nullcontext()
        module = getattr(self.module, "_orig_mod", self.module)  # under torch.compile
        if isinstance(module, torch.nn.parallel.DistributedDataParallel):
            return module.no_sync()
        if hasattr(module, "set_requires_gradient_sync"):  # FSDP2
            @contextlib.contextmanager
            def fsdp_no_sync():
                module.set_requires_gradient_sync(False)
                try:
                    yield
                finally:
                    module.set_requires_gradient_sync(True)
            return fsdp_no_sync()
        return contextlib.nullcontext()

    def _bad_reason(self, loss: float, grad_norm: float) -> str:
        if not math.isfinite(loss):
            return f"loss is {loss}"
        if not math.isfinite(grad_norm):
            return f"gradient norm is {grad_norm}"
        f = self.cfg.spike_factor
        if f > 0 and self.good_steps >= self.cfg.spike_warmup and self.loss_ema is not None \
                and loss > f * self.loss_ema:
            return f"loss spiked to {loss:.4g}, over {f:g}x its running mean {self.loss_ema:.4g}"
        return ""

    def _skip(self, reason, total, lr, grad_norm, values) -> StepResult:
        self.optimizer.zero_grad(set_to_none=True)
        self.bad_in_row += 1
        self.skipped_total += 1
        msg = (f"step {self.step + 1}: {reason}; step skipped, weights unchanged "
               f"({self.bad_in_row}/{self.cfg.max_bad_steps} in a row)")
        log.warning(msg)
        if self.bad_in_row >= self.cfg.max_bad_steps:
            raise TrainingDiverged(f"stopping: {self.bad_in_row} consecutive steps skipped, last: {msg}. "
                                   "Lower the learning rate or resume from an earlier checkpoint.")
        return StepResult(self.step, total, lr, grad_norm, True, reason, values)

    # ---- checkpoints --------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"step": self.step, "bad_in_row": self.bad_in_row, "skipped_total": self.skipped_total,
                "good_steps": self.good_steps, "loss_ema": self.loss_ema}

    def load_state_dict(self, state: dict) -> None:
        for key in ("step", "bad_in_row", "skipped_total", "good_steps", "loss_ema"):
            setattr(self, key, state[key])

    def save(self, path, data_state: dict | None = None, config: dict | None = None, extra: dict | None = None):
        config = config if config is not None else {"model": self.model.cfg.to_dict(), "train": asdict(self.cfg)}
        return save_checkpoint(path, model=self.module, optimizer=self.optimizer, scheduler=self.scheduler,
                               step=self.step, data_state=data_state, config=config,
                               extra={"trainer": self.state_dict(), **(extra or {})})

    def resume(self, path) -> dict:
        """Restore model, optimizer, scheduler, RNG and counters; returns the checkpoint's data_state etc."""
        state = load_checkpoint(path, self.module, self.optimizer, self.scheduler)
        self.load_state_dict(state["extra"]["trainer"])
        return state
