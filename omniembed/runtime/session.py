"""ONNX Runtime sessions: which execution providers, how many threads."""

from __future__ import annotations

import os
from collections.abc import Sequence

import onnxruntime as ort

from omniembed.errors import ConfigError

# Preference order: TensorRT, then CUDA, then CPU; only those this onnxruntime build has are used.
PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def default_providers() -> list[str]:
    """TensorRT and CUDA when this onnxruntime build has them (onnxruntime-gpu on a GPU host), else CPU."""
    available = set(ort.get_available_providers())
    return [p for p in PREFERRED if p in available]


def resolve_providers(providers: Sequence[str] | None) -> list[str]:
    if providers is None:
        return default_providers()
    providers = [providers] if isinstance(providers, str) else list(providers)
    available = ort.get_available_providers()
    missing = [p for p in providers if p not in available]
    if missing or not providers:
        raise ConfigError(f"execution providers {missing or providers} are not available in this onnxruntime "
                          f"build; available: {available}")
    return providers


def make_session(path: str | os.PathLike, providers: Sequence[str], threads: int | None = None,
                 inter_threads: int | None = None, spin: bool = True) -> ort.InferenceSession:
    """A session on `path`. `threads` sets intra-op threads (None: onnxruntime's default, one per core);
    `inter_threads` the threads running independent nodes in parallel (only used in parallel mode).
    `spin=False` makes idle pool threads sleep instead of busy-waiting for the next op: on a host shared with
    other busy processes, spinning threads fight them for cores (2 spinning threads can run a small trunk
    slower than 1 thread; sleeping ones, as fast)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads={threads}: must be >= 1 (or None for one per core)")
        opts.intra_op_num_threads = int(threads)
    if inter_threads is not None:
        if inter_threads < 1:
            raise ConfigError(f"inter_threads={inter_threads}: must be >= 1")
        opts.inter_op_num_threads = int(inter_threads)
        opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL if inter_threads > 1 else ort.ExecutionMode.ORT_SEQUENTIAL
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3  # warnings about unused initializers etc. are noise at serve time
    return ort.InferenceSession(os.fspath(path), sess_options=opts, providers=list(providers))
