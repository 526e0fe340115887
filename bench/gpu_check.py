"""The GPU check: train configs/base.yaml for a few hundred steps on a generated world, export the bundle, embed
with ONNX Runtime's GPU providers (CUDA, TensorRT; fp32 and fp16 trunks) and search with faiss-gpu, writing one
markdown table. Run through bench/gpu_check.sh (a time budget of 8 minutes on one GPU); `--smoke` runs the
same stages on CPU with the tiny config, which is how CI-less machines check the script itself.

Every stage records what it measured or why it could not run (a library or provider absent on that host),
so one run always ends with a complete report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench.common import command_line, results_header


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _run(cmd: list[str], timeout: float) -> None:
    _log(" ".join(cmd))
    subprocess.run(cmd, check=True, timeout=timeout)


def stage_world(work: Path, n: int, video: str) -> Path:
    from omniembed.data.synth import generate

    generate(work / "world", n, 0, video_format=video)
    _run([sys.executable, "-m", "omniembed", "shards", str(work / "world" / "manifest.jsonl"), "--out",
          str(work / "shards"), "--maxcount", "500"], 600)
    return work / "world"


def stage_train(work: Path, world: Path, config: str, steps: int, extra: list[str], timeout: float) -> dict:
    run = work / "run"
    _run([sys.executable, "-m", "omniembed.train", "--config", config, "--out", str(run),
          f"data.shards={work / 'shards'}", f"data.heldout={world / 'heldout.jsonl'}", f"loop.steps={steps}",
          "loop.eval_every=0", "loop.ckpt_every=0", "loop.log_every=20", "loop.eval_captions=8", *extra], timeout)
    speed = json.loads((run / "throughput.json").read_text())
    evals = [json.loads(l) for l in (run / "eval.jsonl").read_text().splitlines()] if (run / "eval.jsonl").is_file() else []
    return {"throughput": speed, "eval": evals[-1] if evals else {}}


def stage_export(work: Path, timeout: float) -> Path:
    _run([sys.executable, "-m", "omniembed.export", str(work / "run"), "--out", str(work / "bundle"), "--fp16"],
         timeout)
    return work / "bundle"


def stage_embed(bundle: Path, world: Path, n: int) -> list[dict]:
    """Items/s of text and image embedding per provider and trunk variant (the same inputs for each)."""
    import onnxruntime as ort

    from omniembed.data.manifest import load_manifest
    from omniembed.runtime import Embedder

    items = [r for r in load_manifest(world / "manifest.jsonl") if getattr(r, "texts", None)][:n]
    texts = [it.texts[0] for it in items]
    images = [{"image": it.media["image"].read_bytes()} for it in items if "image" in it.media]
    available = ort.get_available_providers()
    rows = []
    for provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"):
        for variant in ("fp16", "fp32"):
            row = {"provider": provider, "variant": variant}
            if provider not in available:
                rows.append({**row, "note": f"not in this onnxruntime ({ort.__version__}: {', '.join(available)})"})
                continue
            if variant == "fp16" and provider == "CPUExecutionProvider":
                continue
            try:
                emb = Embedder.load(bundle, providers=[provider, "CPUExecutionProvider"], variant=variant)
                emb.embed(texts[:8])  # warm: TensorRT builds its engine here
                for name, inputs in (("text", texts), ("image", images)):
                    t = time.perf_counter()
                    emb.embed(inputs)
                    row[f"{name}_per_s"] = round(len(inputs) / (time.perf_counter() - t), 1)
            except Exception as err:  # a provider that loads but fails on this graph: say so, go on
                row["note"] = f"{type(err).__name__}: {str(err)[:160]}"
            rows.append(row)
    return rows


def stage_faiss(dim: int = 256, n: int = 200_000, queries: int = 1000) -> dict:
    import numpy as np

    try:
        import faiss
    except ImportError:
        return {"n": n, "queries": queries, "note": "faiss is not installed on this host"}
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, dim), dtype=np.float32)
    q = rng.standard_normal((queries, dim), dtype=np.float32)
    out = {"n": n, "queries": queries}
    cpu = faiss.IndexFlatIP(dim)
    cpu.add(base)
    t = time.perf_counter()
    _, ref = cpu.search(q, 10)
    out["cpu_qps"] = round(queries / (time.perf_counter() - t), 1)
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        out["note"] = "faiss without GPU support here (faiss-gpu not installed, or no GPU visible)"
        return out
    res = faiss.StandardGpuResources()
    gpu = faiss.index_cpu_to_gpu(res, 0, cpu)
    gpu.search(q[:10], 10)
    t = time.perf_counter()
    _, got = gpu.search(q, 10)
    out["gpu_qps"] = round(queries / (time.perf_counter() - t), 1)
    out["gpu_vs_cpu"] = round(out["gpu_qps"] / out["cpu_qps"], 2)
    out["top10_agreement"] = round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ref, got)])), 4)
    return out


def device_line() -> str:
    import torch

    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"no CUDA device (torch {torch.__version__}): CPU smoke run"


def report(results: dict, argv, smoke: bool) -> list[str]:
    lines = results_header("GPU check" + (" (CPU smoke run of the script, not a GPU result)" if smoke else ""),
                           command_line(argv, module="bench.gpu_check"))
    lines += [f"- device: {results.get('device', '?')}", f"- total wall: {results.get('wall_s', 0):.0f} s", ""]
    train = results.get("train", {})
    if "error" in train:
        lines += [f"Training failed: `{train['error']}`", ""]
    elif train:
        t = train["throughput"]
        mfu = "n/a" if t["mfu"] is None else f"{t['mfu']:.1%}"
        lines += ["## Training (python -m omniembed.train, streamed shards)", "",
                  "| config | steps | tokens/s | MFU | peak TFLOP/s (source) | mean seq len |", "|---|---|---|---|---|---|",
                  f"| {results['config']} | {results['steps']} | {t['tokens_per_s']:,.0f} | {mfu} | "
                  f"{t['peak_tflops_per_device']} ({t['peak_source']}) | {t['mean_seq_len']} |", ""]
        if train.get("eval"):
            from omniembed.train.evaluate import headline

            lines += [f"Held-out eval after training: {headline(train['eval'])}", ""]
    embed = results.get("embed")
    if isinstance(embed, dict) and "error" in embed:
        lines += [f"Embedding failed: `{embed['error']}`", ""]
    elif embed:
        lines += ["## Embedding through the bundle (omniembed.runtime.Embedder)", "",
                  "| provider | trunk | text items/s | image items/s | note |", "|---|---|---|---|---|"]
        for r in embed:
            lines.append(f"| {r['provider']} | {r['variant']} | {r.get('text_per_s', '')} | "
                         f"{r.get('image_per_s', '')} | {r.get('note', '')} |")
        lines.append("")
    fa = results.get("faiss")
    if fa:
        lines += [f"## FAISS flat search, {fa.get('n', 0):,} x 256, {fa.get('queries', 0):,} queries, k=10", "",
                  "| | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in fa.items()] + [""]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="CPU: tiny config, few steps (checks the script)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--n", type=int, default=None, help="synthetic items")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default="bench/results/gpu_check.md")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    config = "tiny" if args.smoke else "base"
    steps = args.steps or (6 if args.smoke else 300)
    n = args.n or (48 if args.smoke else 2000)
    extra = [] if args.smoke else ["loop.pair_batch=128", "loop.lm_batch=32", "train.warmup_steps=30",
                                   "tokenizer.image_steps=150", "tokenizer.audio_steps=150", "loop.threads=8",
                                   "data.loader_workers=8"]
    work = Path(args.work or f"/tmp/gpu-check-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"config": config, "steps": steps, "device": device_line()}
    try:
        world = stage_world(work, n, "mp4")
        try:
            results["train"] = stage_train(work, world, config, steps, extra, timeout=330)
            bundle = stage_export(work, timeout=120)
            results["embed"] = stage_embed(bundle, world, 256 if not args.smoke else 16)
        except Exception as err:
            traceback.print_exc()
            results.setdefault("train", {"error": f"{type(err).__name__}: {err}"})
            results.setdefault("embed", {"error": f"{type(err).__name__}: {err}"})
        results["faiss"] = stage_faiss(n=20_000 if args.smoke else 200_000, queries=100 if args.smoke else 1000)
    finally:
        results["wall_s"] = time.perf_counter() - t0
        lines = report(results, argv if argv is not None else sys.argv[1:], args.smoke)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")
        (Path(args.out).with_suffix(".json")).write_text(json.dumps(results, indent=1, default=str) + "\n")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
