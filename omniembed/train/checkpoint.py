"""Training checkpoints: model, optimizer, scheduler, RNG states, data position, config, extras.

Written atomically (temp file in the same folder, fsync, rename, fsync the folder), so a crash mid-write
leaves the previous checkpoint intact. Only plain tensors and Python containers are stored, so loading
uses torch.load(weights_only=True): a checkpoint cannot execute code.

Under DDP rank 0 writes. Under FSDP2 the model and optimizer are saved sharded with
torch.distributed.checkpoint (DCP): every rank writes its own shards into `<name>.dcp/step-<N>/`, no rank
ever holds the whole model, and then rank 0 writes the small `<name>` file (step, schedule, RNG, data
position, config) naming that folder, atomically as above; older step folders are removed after. Loading
works on any world size (DCP reshards), and in a single process without a process group (export, load_run).
The RNG states are those of the writing rank (training code with dropout under DDP should seed per rank).
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from omniembed.train import distributed as D
from omniembed.errors import OmniEmbedError

FORMAT = "omniembed-checkpoint/1"


class CheckpointError(OmniEmbedError, ValueError):
    """A checkpoint is missing, unreadable, of another format, or does not fit the model it is loaded into."""


def rng_state() -> dict:
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        # numpy's state holds an ndarray, which weights_only loading refuses: keep it as a tensor
        "numpy": {"kind": np_kind, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def _model_state(model) -> dict:
    model = D.unwrap(model)
    if D.is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return model.state_dict()


def _optimizer_state(model, optimizer) -> dict:
    if D.is_sharded(D.unwrap(model)):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(D.unwrap(model), optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return optimizer.state_dict()


def save_checkpoint(path: str | Path, *, model, optimizer=None, scheduler=None, step: int = 0,
                    data_state: dict | None = None, config: dict | None = None,
                    extra: dict | None = None) -> Path:
    """Write everything a resumed run needs to `path`, atomically. Returns the path."""
    path = Path(path)
    sharded = D.is_sharded(D.unwrap(model))
    dcp_dir = _save_sharded(path, step, model, optimizer) if sharded else None
    payload = {
        "format": FORMAT,
        "step": int(step),
        "model": None if sharded else _model_state(model),
        "optimizer": None if sharded or optimizer is None else _optimizer_state(model, optimizer),
        "dcp": None if dcp_dir is None else str(dcp_dir.relative_to(path.parent)),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": rng_state(),
        "data_state": data_state or {},
        "config": config or {},
        "extra": extra or {},
    }
    if D.rank() == 0:
        _atomic_save(payload, path)
        if dcp_dir is not None:  # the new file names the new folder: the older ones are no longer reachable
            import shutil

            for old in dcp_dir.parent.glob("step-*"):
                if old != dcp_dir:
                    shutil.rmtree(old, ignore_errors=True)
    if D.is_distributed():
        dist.barrier()
    return path


def _save_sharded(path: Path, step: int, model, optimizer) -> Path:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    target = D.unwrap(model)
    folder = path.parent / f"{path.name}.dcp" / f"step-{int(step):08d}"
    model_sd, optim_sd = get_state_dict(target, optimizer if optimizer is not None else [])
    state = {"model": model_sd} if optimizer is None else {"model": model_sd, "optim": optim_sd}
    dcp.save(state, checkpoint_id=str(folder))
    return folder


def _load_sharded(path: Path, payload: dict, model, optimizer) -> None:
    """Into an FSDP model (resharded to this world size) or a plain one in a single process."""
    import torch.distributed.checkpoint as dcp

    folder = path.parent / payload["dcp"]
    if not folder.is_dir():
        raise CheckpointError(f"{path}: its sharded state {folder} is missing")
    target = D.unwrap(model)
    if D.is_sharded(target):
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        model_sd, optim_sd = get_state_dict(target, optimizer if optimizer is not None else [])
        state = {"model": model_sd} if optimizer is None else {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=str(folder))
        set_state_dict(target, optimizer if optimizer is not None else [], model_state_dict=state["model"],
                       optim_state_dict=state.get("optim", {}))
        return
    if optimizer is not None:
        raise CheckpointError(f"{path}: a sharded (FSDP) checkpoint resumes under FSDP; load the model alone "
                              "(load_model_state) to export or evaluate it")
    import warnings

    state = {"model": target.state_dict()}
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.simplefilter("ignore", UserWarning)
        dcp.load(state, checkpoint_id=str(folder), no_dist=not D.is_distributed())
    target.load_state_dict(state["model"])


def load_model_state(path: str | Path, model) -> dict:
    """Only the model's weights from a checkpoint (plain or sharded) into `model`; returns the payload."""
    path = Path(path)
    payload = read_checkpoint(path)
    try:
        if payload.get("dcp"):
            _load_sharded(path, payload, model, None)
        else:
            D.unwrap(model).load_state_dict(payload["model"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: does not fit this model: {exc}") from exc
    return payload


def _atomic_save(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # the rename itself is durable only once the folder entry is on disk
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw payload, checked for format. No model needed (e.g. to read the config before building one)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holding objects weights_only refuses
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: format {found!r} is not {FORMAT!r}")
    return payload


def load_checkpoint(path: str | Path, model, optimizer=None, scheduler=None, *,
                    restore_rng: bool = True) -> dict[str, Any]:
    """Load state into the given objects (in place) and restore RNG; returns the payload's step,
    data_state, config and extra so the caller can reposition its data and counters."""
    path = Path(path)
    payload = read_checkpoint(path)
    target = D.unwrap(model)
    try:
        if payload.get("dcp"):
            _load_sharded(path, payload, model, optimizer)
        elif D.is_sharded(target):
            from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                                 set_optimizer_state_dict)

            opts = StateDictOptions(full_state_dict=True)
            set_model_state_dict(target, payload["model"], options=opts)
            if optimizer is not None and payload["optimizer"] is not None:
                set_optimizer_state_dict(target, optimizer, payload["optimizer"], options=opts)
        else:
            target.load_state_dict(payload["model"])
            if optimizer is not None and payload["optimizer"] is not None:
                optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: does not fit this model/optimizer: {exc}") from exc
    if scheduler is not None and payload["scheduler"] is not None:
        scheduler.load_state_dict(payload["scheduler"])
    if restore_rng:
        set_rng_state(payload["rng"])
    return {k: payload[k] for k in ("step", "data_state", "config", "extra")}
