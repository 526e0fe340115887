"""Bundle variants of the fp32 trunk graph: INT8 dynamic quantization (CPU) and fp16 weights (GPU).

Only the trunk gets variants: it holds nearly all the compute. The tokenizer encoders stay fp32 in every
variant, because their outputs are argmins over codebooks, where a lower precision flips codes (and so ids).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Weights of every MatMul/Gemm to int8 (per output channel), activations quantized on the fly per batch.

    reduce_range keeps weights to 7 bits: on x86 CPUs without VNNI (AVX2 only, like the machines this was
    measured on) the u8 x s8 kernel sums pairs of products in int16, which saturates with full 8-bit weights
    (measured on the small trunk: worst cosine to fp32 0.9991 with 8 bits, 0.99995 with 7). The graph is
    shape-inferred first (onnxruntime's quant_pre_process), which the quantizer needs to find MatMuls whose
    weight is a constant."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        quant_pre_process(os.fspath(src), os.fspath(prepped), skip_symbolic_shape=True)
        quantize_dynamic(prepped, os.fspath(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         op_types_to_quantize=["MatMul", "Gemm"])
    return Path(dst)


def convert_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """fp16 weights and activations inside, fp32 ids/mask in and vectors out (keep_io_types), for GPUs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(os.fspath(src))
    # keep_io_types: callers feed and read fp32 whatever the variant
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    onnx.save(half, os.fspath(dst))
    return Path(dst)
