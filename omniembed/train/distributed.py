"""torch.distributed helpers: process-group setup from torchrun's environment, model wrapping, and the
all-gather WITH gradients that the contrastive loss needs.

Everything degrades to a no-op in a single process, so the same training code runs with or without torchrun.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
import torch.nn as nn

from omniembed.errors import ConfigError

PARALLEL_MODES = ("auto", "none", "ddp", "fsdp")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def init_from_env(backend: str | None = None, timeout_s: float = 300.0) -> torch.device:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT); gloo on CPU, nccl on
    GPU. Without WORLD_SIZE in the environment this is a single process and nothing is initialised.
    Returns the device this process should use."""
    if "WORLD_SIZE" not in os.environ or dist.is_initialized():
        return _local_device()
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return _local_device()


def _local_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every rank; nothing to wait for in a single process."""
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        # Every rank reaches here before any tears gloo down: a rank that destroyed its group while a peer
        # still had a collective (a checkpoint's) in flight aborted the peer at exit ("terminate called ...").
        dist.barrier()
        dist.destroy_process_group()


def wrap_model(model: nn.Module, mode: str = "auto", find_unused: bool = False, bf16: bool = False,
               reshard: bool = True) -> nn.Module:
    """DDP or FSDP (FSDP2 `fully_shard`, one unit per transformer block plus the root) around `model`.

    `auto` picks DDP when a multi-process group is up and leaves the model alone otherwise. FSDP shards
    parameters in place and returns the same object; DDP returns a wrapper whose `.module` is the model.
    `find_unused`: DDP must be told when some steps leave parameters without gradients (e.g. an LM-only
    step never touches the embedding head); it costs a graph walk per step, so it is off by default.
    FSDP with `bf16`: parameters are gathered and computed in bfloat16, gradients reduced in fp32 and the
    sharded master weights stay fp32 (MixedPrecisionPolicy); `reshard` False keeps gathered parameters
    between forward and backward (ZeRO-2: more memory, fewer all-gathers).
    """
    if mode not in PARALLEL_MODES:
        raise ConfigError(f"parallel={mode!r}: must be one of {PARALLEL_MODES}")
    if mode == "auto":
        mode = "ddp" if is_distributed() else "none"
    if mode == "none":
        return model
    if not (dist.is_available() and dist.is_initialized()):
        raise ConfigError(f"parallel={mode!r} needs torch.distributed initialised (run under torchrun)")
    if mode == "ddp":
        device_ids = [model_device(model).index] if model_device(model).type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                                   find_unused_parameters=find_unused)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 \
        else MixedPrecisionPolicy()
    for block in getattr(model, "blocks", []):
        fully_shard(block, mp_policy=policy, reshard_after_forward=reshard)
    fully_shard(model, mp_policy=policy, reshard_after_forward=reshard)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def is_sharded(model: nn.Module) -> bool:
    """True when parameters are FSDP2 DTensors, which need the full-state-dict API to save/load."""
    return any(type(p).__name__ == "DTensor" for p in model.parameters())


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's (n, ...) tensor along dim 0; backward returns this rank's slice of the SUM
    of all ranks' gradients, because every rank's loss used this rank's rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # all_reduce rather than reduce_scatter: gloo (CPU) has no reduce_scatter
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(n, ...) per rank -> (world * n, ...), differentiable. Every rank must pass the same n."""
    return _AllGatherWithGrad.apply(x) if is_distributed() else x


@torch.no_grad()
def all_gather_nograd(x: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def all_gather_object(obj) -> list:
    """Every rank's `obj` (picklable), in rank order; [obj] in a single process."""
    if not is_distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return x
    x = x.detach().clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x / dist.get_world_size()
