"""Run the benchmark suite: `python -m bench [NAMES...] [--run RUN_DIR] [--bundle B] [--quick] [--list]`.

Each benchmark is a module with `main(argv)` that writes bench/results/<name>.md (and a PNG where it plots).
The table below says which arguments each needs: `{run}` is a trained RUN_DIR (python -m omniembed.train),
`{bundle}` an exported bundle (python -m omniembed.export), `{out}` the results folder. A benchmark whose
inputs were not given is skipped with the reason; one named on the command line without them is an error.

`--quick` runs each with small sizes into a scratch folder (default /tmp/omniembed-bench-quick) so a smoke run
never overwrites the committed figures; without it the committed-figure arguments run into bench/results.

Each benchmark runs as its own process (`python -m MODULE ARGS`): the command it records in its results file
is then the one that reproduces it, and one crashing does not take the others down. `--lock PATH` takes an
exclusive flock on PATH around each one, so heavy jobs on a shared machine run one at a time.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
QUICK_OUT = Path("/tmp/omniembed-bench-quick")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Bench:
    module: str
    what: str
    args: tuple[str, ...] = ()  # the committed figures
    quick: tuple[str, ...] = ()  # a smoke run in seconds to a few minutes
    optional: dict[str, tuple[str, ...]] = field(default_factory=dict)  # input -> extra args when given

    def needs(self, quick: bool) -> set[str]:
        return {m for a in (self.quick if quick else self.args) for m in PLACEHOLDER.findall(a)} - {"out"}


SUITE: dict[str, Bench] = {
    "recall_matrix": Bench(
        "bench.recall_matrix", "held-out recall@1/5/10 for every query->target modality pair at each Matryoshka dim",
        args=("{run}", "--out", "{out}"), quick=("{run}", "--max-items", "24", "--out", "{out}")),
    "train_step": Bench(
        "bench.train_step", "training tokens/s of the joint step, fp32 vs bf16",
        args=("--out", "{out}/train_step.md"),
        quick=("--models", "tiny", "--steps", "2", "--out", "{out}/train_step.md")),
    "train_parallel": Bench(
        "bench.train_parallel", "training s/step on CPU: one process of 1 or 2 threads vs 2 data-parallel processes",
        args=("{run}", "--out", "{out}/train_parallel.md"),
        quick=("{run}", "--steps", "14", "--arms", "1x1,2x1", "--out", "{out}/train_parallel.md")),
    "index": Bench(
        "bench.index.run", "index recall@10 vs QPS (flat/HNSW/IVF-PQ), Matryoshka adaptive vs exact",
        args=("--n", "1000000", "--out", "{out}"),
        quick=("--n", "20000", "--queries", "50", "--repeats", "1", "--out", "{out}")),
    "index_filters": Bench(
        "bench.index.filters", "filtered search: exact subset scan vs ANN with an IDSelector",
        args=("--out", "{out}"), quick=("--n", "20000", "--queries", "20", "--repeats", "1", "--out", "{out}")),
    "serve_latency": Bench(
        "bench.serve_latency", "gRPC Search p50/p99 latency and QPS, micro-batching vs none",
        args=("--out", "{out}/serve_latency.md"),
        quick=("--n", "20000", "--seconds", "1", "--concurrency", "1,4", "--out", "{out}/serve_latency.md"),
        optional={"bundle": ("--bundle", "{bundle}")}),
    "train_small": Bench(
        "bench.train_small", "the `small` training run's held-out recall and captions (report of RUN_DIR)",
        args=("--report", "{run}", "--results", "{out}/train_small.md"),
        quick=("--report", "{run}", "--results", "{out}/train_small.md")),
    "fusion": Bench(
        "bench.fusion", "early fusion vs late fusion at equal parameters, steps and training tokens",
        args=("--out", "runs/fusion", "--results", "{out}"),
        quick=("--out", str(QUICK_OUT / "fusion-work"), "--results", "{out}", "loop.steps=4")),
    "embed_throughput": Bench(
        "bench.embed_throughput", "embedding items/s: torch fp32/bf16 vs ONNX Runtime fp32/INT8, per modality",
        args=("--out", "{out}/embed_throughput.md"),
        quick=("--model", "tiny", "--n", "2", "--bf16-n", "1", "--reps", "1", "--out", "{out}/embed_throughput.md"),
        optional={"run": ("{run}",)}),
    "embed_int8_recall": Bench(
        "bench.embed_int8_recall", "held-out recall@1 through ONNX Runtime, fp32 trunk vs INT8 trunk",
        args=("{run}", "--out", "{out}/embed_int8_recall.md"), quick=("{run}", "--out", "{out}/embed_int8_recall.md"),
        optional={"bundle": ("--bundle", "{bundle}")}),
    "long_audio": Bench(
        "bench.long_audio", "long audio: CPU time and peak memory of window-by-window embedding, 10 s to 10 min",
        args=("--out", "{out}"), quick=("--durations", "10,30", "--out", "{out}"),
        optional={"bundle": ("--bundle", "{bundle}")}),
    "own_data": Bench(
        "bench.own_data", "the main command on 2- and 3-modality subsets of the world: held-out R@1 per pair",
        args=("--out", "{out}"), quick=("--config", "tiny", "--shapes", "text+audio", "--out", "{out}")),
    "spoken_digits": Bench(
        "bench.spoken_digits", "the main command on spoken (espeak-ng) and drawn digits: held-out R@1 by digit",
        args=("--out", "{out}"), quick=("--config", "tiny", "--per-voice", "2", "--out", "{out}")),
    "image_dropout": Bench(
        "bench.image_dropout", "model.image_dropout against none: handwritten + spoken digits, the world's 3 views",
        args=("--out", "{out}"), quick=("--sets", "handwritten", "--rates", "0.1", "--out", "{out}")),
    "index_backends": Bench(
        "bench.index_backends", "FAISS vs Milvus Lite at 100k x 256: recall@10 and queries/s, flat and HNSW",
        args=("--out", "{out}"),
        quick=("--n", "5000", "--queries", "20", "--repeats", "1", "--kinds", "flat", "--out", "{out}")),
    "ingest": Bench(
        "bench.ingest", "bulk ingest entries/s: Ray Data with 1 and 2 actors vs a single-process loop",
        args=("--bundle", "{bundle}", "--out", "{out}"), quick=("--bundle", "{bundle}", "--n", "12", "--out", "{out}")),
    "train_scale": Bench(
        "bench.train_scale", "training peak memory and tokens/s at 2k/20k/200k items: streamed shards vs in memory",
        args=("--out", "{out}"),
        quick=("--sizes", "2000", "--memory-sizes", "2000", "--steps", "20", "--repeats", "1", "--out", "{out}")),
    "gpu_check": Bench(
        "bench.gpu_check", "the GPU check (bench/gpu_check.sh): base config tokens/s and MFU, export, ORT GPU, faiss-gpu",
        args=("--out", "{out}/gpu_check.md"), quick=("--smoke", "--out", "{out}/gpu_check.md")),
}


def discovered() -> dict[str, Bench]:
    """bench/*.py modules with a main() that the table does not list yet: runnable with no arguments."""
    listed = {b.module for b in SUITE.values()}
    found = {}
    for path in sorted(BENCH_DIR.glob("*.py")):
        module = f"bench.{path.stem}"
        if path.stem.startswith("_") or path.stem == "common" or module in listed:
            continue
        if re.search(r"^def main\(", path.read_text(errors="replace"), re.M):
            found[path.stem] = Bench(module, "(not in the suite table: runs with its own defaults)")
    return found


def available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def expand(args: tuple[str, ...], values: dict[str, str]) -> list[str]:
    return [PLACEHOLDER.sub(lambda m: values[m.group(1)], a) for a in args]


def command_for(bench: Bench, values: dict[str, str | None], quick: bool) -> list[str]:
    """The argv after `python -m MODULE`; raises KeyError naming a missing input."""
    given = {k: v for k, v in values.items() if v}
    missing = bench.needs(quick) - set(given)
    if missing:
        raise KeyError(", ".join(f"--{m}" for m in sorted(missing)))
    argv = expand(bench.quick if quick else bench.args, given)
    for name, extra in bench.optional.items():
        if name in given:
            argv += expand(extra, given)
    return argv


def print_list(suite: dict[str, Bench]) -> None:
    width = max(len(n) for n in suite)
    for name, b in suite.items():
        state = "" if available(b.module) else "  [module not present yet]"
        extra = "".join(f" [{' '.join(a)}]" for a in b.optional.values())
        print(f"{name:<{width}}  python -m {b.module} {' '.join(b.args)}{extra}{state}\n{'':<{width}}  {b.what}")


def _shown(path: Path) -> str:
    """A path inside the repository as repo-relative (the scripts run from the repo root), so the command a
    results file records reproduces on another checkout; others stay absolute."""
    full = path.resolve()
    return str(full.relative_to(BENCH_DIR.parent)) if full.is_relative_to(BENCH_DIR.parent) else str(full)


def run_one(name: str, module: str, argv: list[str], lock: str | None) -> tuple[int, float]:
    cmd = [sys.executable, "-m", module, *argv]
    print(f"== {name}: {' '.join(['python', '-m', module, *argv])}", flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(BENCH_DIR.parent),
                                                                     os.environ.get("PYTHONPATH")])))
    lock_file = open(lock, "a") if lock else None
    try:
        if lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=BENCH_DIR.parent, env=env)
        return rc, time.perf_counter() - t0
    finally:
        if lock_file:
            lock_file.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description="Run the omniembed benchmark suite.")
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all whose inputs are given)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and the command each runs")
    p.add_argument("--run", help="a trained RUN_DIR (python -m omniembed.train)")
    p.add_argument("--bundle", help="an exported bundle (python -m omniembed.export)")
    p.add_argument("--quick", action="store_true", help="small sizes, into a scratch folder")
    p.add_argument("--out", help=f"results folder (default {RESULTS}; with --quick {QUICK_OUT})")
    p.add_argument("--lock", help="flock this file around each benchmark (e.g. /tmp/omni-heavy.lock)")
    args = p.parse_args(argv)

    suite = {**SUITE, **discovered()}
    if args.list:
        print_list(suite)
        return 0
    unknown = [n for n in args.names if n not in suite]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(suite)}")
    out = Path(args.out) if args.out else (QUICK_OUT if args.quick else RESULTS)
    values = {"run": args.run and str(Path(args.run).resolve()),
              "bundle": args.bundle and str(Path(args.bundle).resolve()), "out": _shown(out)}

    chosen = args.names or list(suite)
    failures, skipped, done = [], [], []
    for name in chosen:
        bench = suite[name]
        if not available(bench.module):
            skipped.append(f"{name} (module {bench.module} not present)")
            continue
        try:
            bench_argv = command_for(bench, values, args.quick)
        except KeyError as missing:
            if args.names:
                p.error(f"{name} needs {missing.args[0]}")
            skipped.append(f"{name} (needs {missing.args[0]})")
            continue
        out.mkdir(parents=True, exist_ok=True)
        rc, seconds = run_one(name, bench.module, bench_argv, args.lock)
        (done if rc == 0 else failures).append(f"{name} ({seconds:.0f} s{'' if rc == 0 else f', exit {rc}'})")

    print(f"\nresults in {out}")
    for label, names in (("ran", done), ("failed", failures), ("skipped", skipped)):
        if names:
            print(f"{label}: {'; '.join(names)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
