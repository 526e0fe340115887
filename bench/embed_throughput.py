"""Embedding throughput on this machine: torch eager fp32, torch bf16 autocast, ONNX Runtime fp32 and INT8.

    python -m bench.embed_throughput [RUN_DIR] [--model small] [--threads 2] [--out bench/results/embed_throughput.md]

On the same inputs in one run (synthetic-world captions, PNG images, 2 s WAVs, 2 s MP4s with sound, and
interleaved documents), items/s per modality for each engine, two ways:
- end to end: encoded bytes in, vectors out (media decoding, tokenizer encoders, trunk);
- trunk only: the same id sequences into the trunk + embedding head, where nearly all the FLOPs are.
The trunk's achieved GFLOP/s is set against this CPU's fp32 matrix-product peak, measured in the same run.
Without RUN_DIR the weights are freshly initialised (same FLOPs; vectors are meaningless but identical work).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

# Before torch loads OpenMP: busy-waiting OpenMP threads on a shared 2-core host made torch eager 40x slower
# than with passive waiting (1.5 s vs 0.04 s for one small-trunk batch); onnxruntime gets spin=False likewise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

from bench.common import RESULTS, command_line, results_header

MODALITIES = ("text", "image", "audio", "video", "interleaved")
ENGINES = ("torch fp32", "torch bf16 autocast", "ORT fp32", "ORT INT8")


def matmul_peak_gflops(dtype: torch.dtype, n: int = 1024, reps: int = 5) -> float:
    """Best-of-`reps` GFLOP/s of one (n, n) @ (n, n) product in `dtype` on torch's CPU threads."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def cpu_flags() -> str:
    """The SIMD features that decide int8 and bf16 speed, as /proc/cpuinfo lists them."""
    try:
        flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")).split()
    except (OSError, StopIteration):
        return "flags unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
    return ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in wanted)


def int8_reading() -> str:
    """Why dynamic INT8 gains what it does here, by what this CPU has."""
    flags = cpu_flags()
    if any(f"{f} yes" in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8")):
        return (f"This CPU has int8 dot-product instructions ({flags}), so the int8 products themselves are cheap; "
                "the gain stays small likely because dynamic INT8 quantizes each batch's activations first, a "
                "large share of the work at this trunk's small matrices (d_model 96).")
    return (f"This CPU has no VNNI ({flags}): int8 products go through vpmaddubsw/vpmaddwd at about the rate of "
            "fp32 FMAs, and the per-batch activation quantization is extra work, so dynamic INT8 buys little speed "
            "here; it is built for VNNI/AMX CPUs, where the same graph runs int8 dot products natively.")


def trunk_flops(cfg, lengths) -> float:
    """Forward FLOPs of the trunk + embedding head over sequences of these lengths (matmuls only; 2 per MAC)."""
    d, f, L = cfg.d_model, cfg.ffn_hidden, cfg.n_layers
    per_token = L * (2 * 4 * d * d + 2 * 3 * d * f)  # qkv + out projections, SwiGLU gate/up + down
    total = 0.0
    for t in lengths:
        total += t * per_token + L * 2 * 2 * t * t * d  # + QK^T and AV
        total += 2 * d * max(cfg.embed_dims)  # the head on the pooled token
    return total


def synth_inputs(root: Path, n: int) -> dict[str, list]:
    """Encoded media and texts of a small synthetic world (generated into `root`), n per modality."""
    from omniembed.data.manifest import Document
    from omniembed.data.synth import generate, load_world

    generate(root, max(n, 12), seed=11, workers=1)
    world = load_world(root)
    items = [it for it in world.items if {"image", "audio", "video"} <= set(it.media) and it.texts]
    docs = [r for r in world.train + world.heldout if isinstance(r, Document)]
    return {
        "text": [it.texts[0] for it in items[:n]],
        "image": [Path(it.media["image"].source).read_bytes() for it in items[:n]],
        "audio": [Path(it.media["audio"].source).read_bytes() for it in items[:n]],
        "video": [Path(it.media["video"].source).read_bytes() for it in items[:n]],
        "interleaved": [[s.text if s.media is None else Path(s.media.source) for s in d.segments] for d in docs[:n]],
    }, world


def padded(seqs, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)  # (B, T)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s)
    return ids, torch.arange(width)[None, :] < torch.tensor([len(s) for s in seqs])[:, None]


def timed(fn, reps: int) -> float:
    """Best wall time of `reps` calls after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?", help="trained RUN_DIR (default: fresh weights of --model)")
    p.add_argument("--model", default="small", help="model size without RUN_DIR (default small)")
    p.add_argument("--n", type=int, default=16, help="items per modality")
    p.add_argument("--bf16-n", type=int, default=2, help="items per modality for bf16 autocast (slow where emulated)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokenizers", help="tokenizer dir to reuse without RUN_DIR (default: train tiny ones)")
    p.add_argument("--out", default=str(RESULTS / "embed_throughput.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from omniembed.model.embedder import TorchEmbedder
    from omniembed.export import export_bundle
    from omniembed.train.rundir import Run, load_run
    from omniembed.runtime import Embedder
    from omniembed.train.trainer import cpu_has_native_bf16

    work = Path(tempfile.mkdtemp(prefix="embed_bench_"))
    inputs, world = synth_inputs(work / "world", args.n)
    if args.run_dir:
        run = load_run(args.run_dir)
        source = f"trained run {args.run_dir} (step {run.step})"
    else:
        from bench.bundles import fresh_components

        comp = fresh_components(world.manifest_path, args.tokenizers or work / "tokenizers", model=args.model)
        run = Run(comp.model, comp.tokenizers, comp.vocab, {}, work)
        source = f"fresh `{args.model}` weights with tiny tokenizers (the tiny config's tokenizer section)"
    bundle = export_bundle(run.model, run.tokenizers, run.vocab, work / "bundle", int8=True)
    cfg = run.model.cfg
    torch_emb = TorchEmbedder.from_run(run)
    ort = {"ORT fp32": Embedder.load(bundle, threads=args.threads, variant="fp32", spin=False),
           "ORT INT8": Embedder.load(bundle, threads=args.threads, variant="int8", spin=False)}
    peak32 = matmul_peak_gflops(torch.float32)
    peak16 = matmul_peak_gflops(torch.bfloat16, n=256, reps=2)

    rows = {}  # (modality, engine) -> (end-to-end items/s, trunk items/s, trunk GFLOP/s)
    lengths = {}
    for m in MODALITIES:
        seqs = ort["ORT fp32"].tokenize(inputs[m])
        lengths[m] = [len(s) for s in seqs]
        for engine in ENGINES:
            bf16 = engine == "torch bf16 autocast"
            items = inputs[m][:args.bf16_n] if bf16 else inputs[m]
            ids = seqs[:len(items)]
            flops = trunk_flops(cfg, [len(s) for s in ids])
            if engine.startswith("torch"):
                ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext

                def e2e(items=items, ctx=ctx):
                    with ctx():
                        torch_emb.embed(items)

                def trunk(ids=ids, ctx=ctx):
                    with torch.no_grad(), ctx():
                        run.model.embed(*padded(ids, cfg.pad_id))
            else:
                emb = ort[engine]

                def e2e(items=items, emb=emb):
                    emb.embed(items)

                def trunk(ids=ids, emb=emb):
                    emb.embed_ids(ids, batch_size=len(ids))
            reps = 1 if bf16 else args.reps
            t_e2e, t_trunk = timed(e2e, reps), timed(trunk, reps)
            rows[m, engine] = (len(items) / t_e2e, len(ids) / t_trunk, flops / t_trunk / 1e9)
            print(f"{m:12s} {engine:20s} e2e {rows[m, engine][0]:8.2f}/s  trunk {rows[m, engine][1]:8.2f}/s  "
                  f"{rows[m, engine][2]:6.2f} GFLOP/s", flush=True)

    write_report(Path(args.out), rows, lengths, cfg, source, peak32, peak16, cpu_has_native_bf16(), args)
    return 0


def write_report(out: Path, rows, lengths, cfg, source, peak32, peak16, native_bf16, args) -> None:
    lines = results_header("Embedding throughput: torch vs ONNX Runtime",
                           command_line(None, "bench.embed_throughput"))
    lines += [
        f"- model: {source}; d_model {cfg.d_model}, {cfg.n_layers} layers, embed dims {list(cfg.embed_dims)}",
        f"- {args.threads} threads for torch and ONNX Runtime, waiting passively (OMP_WAIT_POLICY=PASSIVE, ORT "
        f"spin=False: spinning threads on this shared host slowed torch 40x); best of {args.reps} timed passes after "
        f"a warm-up; "
        f"{args.n} items per modality ({args.bf16_n} for bf16 autocast, one pass)",
        f"- measured matrix-product peak (1024^2 fp32 matmul, torch, same run): **{peak32:.1f} GFLOP/s fp32**; "
        f"bf16 {peak16:.1f} GFLOP/s (native bf16 on this CPU: {native_bf16})",
        "- CUDA / TensorRT providers: **not run** (no GPU lent to this session); the fp16 bundle variant is for them",
        "- mean id sequence length: " + ", ".join(f"{m} {np.mean(lengths[m]):.0f}" for m in MODALITIES),
        "",
        "## End to end (encoded bytes -> vectors): items/s, and the ratio to torch fp32", "",
        "| modality | " + " | ".join(ENGINES) + " |", "|---|" + "---|" * len(ENGINES)]
    for m in MODALITIES:
        base = rows[m, "torch fp32"][0]
        cells = [f"{rows[m, e][0]:.1f} ({rows[m, e][0] / base:.2f}x)" for e in ENGINES]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "## Trunk + embedding head only (same ids): items/s, ratio to torch fp32, and share of the fp32 "
              "matmul peak", "", "| modality | " + " | ".join(ENGINES) + " |", "|---|" + "---|" * len(ENGINES)]
    for m in MODALITIES:
        base = rows[m, "torch fp32"][1]
        lines.append(f"| {m} | " + " | ".join(
            f"{rows[m, e][1]:.1f} ({rows[m, e][1] / base:.2f}x; {rows[m, e][2]:.1f} GFLOP/s = "
            f"{100 * rows[m, e][2] / peak32:.0f}%)" for e in ENGINES) + " |")
    int8 = [rows[m, "ORT INT8"][0] / rows[m, "torch fp32"][0] for m in MODALITIES]
    int8_trunk = [rows[m, "ORT INT8"][1] / rows[m, "torch fp32"][1] for m in MODALITIES]
    bf = [rows[m, "ORT INT8"][0] / rows[m, "torch bf16 autocast"][0] for m in MODALITIES]
    vs_fp32 = [rows[m, "ORT INT8"][1] / rows[m, "ORT fp32"][1] for m in MODALITIES]
    lines += ["", "## Against the goals", "",
              f"- ORT INT8 vs torch fp32, end to end: {min(int8):.2f}x to {max(int8):.2f}x "
              f"(goal >= 3x: {'met' if min(int8) >= 3 else 'not met for every modality'}); trunk only "
              f"{min(int8_trunk):.2f}x to {max(int8_trunk):.2f}x",
              f"- ORT INT8 vs torch bf16 autocast, end to end: {min(bf):.1f}x to {max(bf):.1f}x "
              f"(goal > 1x: {'met' if min(bf) > 1 else 'not met'})",
              f"- ORT INT8 vs ORT fp32, trunk only: {min(vs_fp32):.2f}x to {max(vs_fp32):.2f}x. {int8_reading()}",
              "- GFLOP/s count the trunk's matmuls on real (unpadded) tokens; INT8 GFLOP/s are the same FLOPs done in "
              "int8, set against the fp32 peak for comparison.",
              "- End to end includes decoding media (PyAV/Pillow) and the image/audio tokenizer encoders, which the "
              "torch and ORT paths both run; where those dominate (short sequences, small trunk) the ratios shrink "
              "toward 1.", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    plot(out.with_suffix(".png"), rows)
    print(f"wrote {out}")


def plot(path: Path, rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    x = np.arange(len(MODALITIES))
    for ax, k, title in ((axes[0], 0, "end to end"), (axes[1], 1, "trunk + head only")):
        for i, e in enumerate(ENGINES):
            ax.bar(x + (i - 1.5) * 0.2, [rows[m, e][k] for m in MODALITIES], 0.2, label=e)
        ax.set_xticks(x, MODALITIES)
        ax.set_yscale("log")
        ax.set_ylabel("items/s (log)")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
