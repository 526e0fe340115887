"""Seconds per training step of the real entry point on CPU: one process of 1 or 2 threads against 2
data-parallel processes of 1 thread (`loop.processes`), same config, same data, same global batches.

    .venv/bin/python -m bench.train_parallel RUN_DIR [--steps 100] [--arms 1x1,1x2,2x1]
        [--out bench/results/train_parallel.md]

RUN_DIR is a finished run: its config (train.yaml), data, tokenizers and corpus are reused, so only the
training loop is timed. Each arm runs `python -m omniembed.train` for --steps steps and reads the loop's clock from
steps.jsonl; the first 10 steps (allocator and thread-pool warm-up) are left out. Writes a markdown table
with ratios against the first arm, and a bar chart next to it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bench.common import command_line, results_header

RESULTS = Path(__file__).resolve().parent / "results" / "train_parallel.md"
SKIP = 10


def parse_arms(text: str) -> list[tuple[int, int]]:
    """"1x2,2x1" -> [(1 process, 2 threads), (2 processes, 1 thread)]."""
    arms = []
    for part in text.split(","):
        procs, _, threads = part.partition("x")
        if not (procs.isdigit() and threads.isdigit()) or int(procs) < 1 or int(threads) < 1:
            raise SystemExit(f"--arms: {part!r} is not PROCESSESxTHREADS (e.g. 2x1)")
        arms.append((int(procs), int(threads)))
    return arms


def seconds_per_step(run_dir: Path) -> float:
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    if len(steps) <= SKIP + 1:
        raise SystemExit(f"{run_dir}: only {len(steps)} steps logged; use --steps > {SKIP + 1}")
    first, last = steps[SKIP], steps[-1]
    return (last["seconds"] - first["seconds"]) / (last["step"] - first["step"])


def run_arm(source: Path, steps: int, procs: int, threads: int, work: Path) -> float:
    out = work / f"{procs}x{threads}"
    config = yaml.safe_load((source / "train.yaml").read_text())
    manifest = config["data"]["manifest"] or source / "world" / "manifest.jsonl"
    cmd = [sys.executable, "-m", "omniembed.train", "--config", str(source / "train.yaml"), "--out", str(out),
           f"data.manifest={manifest}", f"tokenizers={source / 'tokenizers'}",
           f"data.corpus_cache={source}", f"loop.steps={steps}", "loop.eval_every=0", "loop.ckpt_every=0",
           "loop.eval_captions=0", f"loop.processes={procs}", f"loop.threads={threads}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"arm {procs}x{threads} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds_per_step(out)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([r["arm"] for r in rows], [r["steps_per_s"] for r in rows], color="#4c72b0")
    ax.set_ylabel("training steps / s")
    ax.set_title("training on this CPU: processes x threads")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run directory (train.yaml, tokenizers, corpus)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--arms", default="1x1,1x2,2x1", help="PROCESSESxTHREADS, the first is the baseline")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    arms = parse_arms(args.arms)
    for need in ("train.yaml", "corpus.json", "tokenizers"):
        if not (args.run / need).exists():
            raise SystemExit(f"{args.run}: not a finished run directory (no {need})")
    header = results_header("Training steps on CPU: one process against data-parallel processes",
                            command_line(argv, "bench.train_parallel"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="train_parallel_") as work:
        for procs, threads in arms:
            sec = run_arm(args.run.resolve(), args.steps, procs, threads, Path(work))
            rows.append({"arm": f"{procs} x {threads}", "procs": procs, "threads": threads, "sec": sec,
                         "steps_per_s": 1 / sec})
            print(f"{procs} process(es) x {threads} thread(s): {sec:.3f} s/step", flush=True)
    base = rows[0]
    lines = header + [
        f"- config, data, tokenizers and corpus of the run `{args.run}`; {args.steps} steps per "
        f"arm, timed from step {SKIP + 1} on by the loop's own clock (steps.jsonl); evaluation off",
        "- every arm trains on the same global batches: with 2 processes each rank takes half of each batch "
        "(DDP over gloo, gradients all-reduced, contrastive rows all-gathered)",
        "",
        "| processes x threads | s / step | steps / s | speed vs " + base["arm"] + " |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['sec']:.3f} | {r['steps_per_s']:.2f} | {base['sec'] / r['sec']:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    plot(rows, png)
    lines += ["", f"![steps per second]({png.name})", ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
