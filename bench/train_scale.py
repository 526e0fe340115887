"""Training memory and speed as the corpus grows: the streamed path (data.shards) against the in-memory one.

    python -m bench.train_scale                                   # the committed run: 2k, 20k, 200k items
    python -m bench.train_scale --sizes 2000 --memory-sizes 2000 --steps 20 --out /tmp/ts   # a quick look

A cheap world: 256 synthetic items (omniembed.data.synth, no video) give their image and captions to N
items under distinct ids (manifest lines cycling through them), packed into shards of 1,000 by
`omniembed shards`. Tokenizers are trained once (the tiny config's tokenizer section) and reused, so every
run trains the same model on the same vocabulary. Each run is `python -m omniembed.train --config tiny` with
text-image pairs for --steps steps:
  - streamed: data.shards=DIR, the default loader workers (the CPUs beside the trainer's thread: 1 on 2
    cores), decoding and tokenizing while the trunk trains;
  - in memory: data.manifest=MANIFEST (stage 2 tokenizes the whole corpus into memory first; with 256
    distinct files its per-file cache makes that stage cheap here, its memory still grows with N).
At the smallest size each arm runs --repeats times, alternating with the other arm, and the medians are
reported (the machine is shared: a busy minute would otherwise land on one arm); larger sizes run once. Memory is sampled every 0.1 s from /proc: the trainer's own RSS, and the PSS of its whole process tree
(loader workers included; PSS shares copy-on-write pages out instead of counting them in every worker).
Tokens/s is the training loop's, from RUN_DIR/throughput.json: over the whole loop (loader start-up included
for the stream) and from step 1's data on (the steady rate a long run sees);
wall is the whole command. Ratios against the smallest streamed run, and streamed against in-memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.common import RESULTS, command_line, results_header  # noqa: E402

BASE_ITEMS = 256
# the trunk shapes compared: the tiny config's (where data work weighs most against a step) and the demo's
MODELS = {"tiny": [], "small": ["model.d_model=96", "model.n_layers=3", "model.embed_dims=[16, 32, 64, 96]"]}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def _kib(path: str, key: str) -> int:
    try:
        for line in open(path):
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemoryWatch(threading.Thread):
    """Peak RSS of `pid` and peak PSS of its process tree, in MiB."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_rss, self.peak_tree, self.done = pid, 0, 0, False

    def run(self) -> None:
        while not self.done:
            tree, todo, pss = _children(), [self.pid], 0
            while todo:
                p = todo.pop()
                pss += _kib(f"/proc/{p}/smaps_rollup", "Pss:")
                todo += tree.get(p, [])
            self.peak_rss = max(self.peak_rss, _kib(f"/proc/{self.pid}/status", "VmRSS:"))
            self.peak_tree = max(self.peak_tree, pss)
            time.sleep(0.1)


def run_training(args: list[str], out: Path) -> dict:
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "omniembed.train", "--config", "tiny", "--out", str(out), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watch = MemoryWatch(proc.pid)
    watch.start()
    _, err = proc.communicate()
    watch.done = True
    watch.join()
    if proc.returncode != 0:
        raise SystemExit(f"training failed ({out}):\n{err[-3000:]}")
    speed = json.loads((out / "throughput.json").read_text())
    return {"wall": time.perf_counter() - t, "rss": watch.peak_rss / 1024, "tree": watch.peak_tree / 1024,
            "tok_s": speed["tokens_per_s"], "steady": speed["steady_tokens_per_s"], "mfu": speed["mfu"]}


def median_run(runs: list[dict]) -> dict:
    """The median of each figure over repeated runs (memory: the largest peak)."""
    import statistics

    out = {k: statistics.median(r[k] for r in runs) for k in ("wall", "tok_s", "steady")}
    out.update(rss=max(r["rss"] for r in runs), tree=max(r["tree"] for r in runs), repeats=len(runs))
    return out


def write_world(base: Path, n: int, out: Path) -> Path:
    """A manifest of n text+image items cycling through the base world's items."""
    items = [json.loads(l) for l in (base / "manifest.jsonl").read_text().splitlines()
             if json.loads(l)["kind"] == "item"]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.jsonl", "w") as f:
        for i in range(n):
            src = items[i % len(items)]
            f.write(json.dumps({"id": f"x{i:07d}", "kind": "item", "attributes": src["attributes"],
                                "views": {"text": src["views"]["text"],
                                          "image": str(base / src["views"]["image"])}}) + "\n")
    return out / "manifest.jsonl"


def heldout(base: Path, out: Path) -> Path:
    rows = []
    for line in (base / "heldout.jsonl").read_text().splitlines():
        obj = json.loads(line)
        if obj["kind"] == "item":
            rows.append(json.dumps({"id": obj["id"], "kind": "item", "attributes": obj["attributes"],
                                    "views": {"text": obj["views"]["text"],
                                              "image": str(base / obj["views"]["image"])}}))
    out.write_text("\n".join(rows) + "\n")
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, marker in (("streamed", "o"), ("in memory", "s")):
        got = [r for r in rows if r["mode"] == mode]
        if got:
            a.plot([r["n"] for r in got], [r["tree"] for r in got], marker=marker, label=mode)
            b.plot([r["n"] for r in got], [r["tok_s"] for r in got], marker=marker, label=mode)
    for ax, label in ((a, "peak PSS of the process tree (MiB)"), (b, "training tokens/s")):
        ax.set_xscale("log")
        ax.set_xlabel("items in the corpus")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    a.set_ylim(bottom=0)
    b.set_ylim(bottom=0)
    fig.suptitle("omniembed.train: streamed shards vs in-memory corpus")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,20000,200000", help="corpus sizes for the streamed path")
    ap.add_argument("--memory-sizes", default="2000,20000,200000", help="corpus sizes for the in-memory path")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each arm, alternating; medians reported")
    ap.add_argument("--speed-model", default="small", choices=sorted(MODELS),
                    help="a second trunk shape, compared at the smallest size only (speed)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from omniembed.data.pack import pack_manifest
    from omniembed.data.synth import generate
    from omniembed.tokenization.train import main as train_tokenizers

    sizes = [int(s) for s in args.sizes.split(",") if s]
    memory_sizes = [int(s) for s in args.memory_sizes.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="train-scale-"))
    common = [f"loop.steps={args.steps}", "loop.pair_batch=32", "loop.lm_batch=16", "loop.eval_captions=0",
              "loop.multiview=0", "loop.hard_negatives=0", "loop.pair_weights={text-image: 1.0}", "loop.log_every=20"]
    rows, speed_rows = [], []
    try:
        _log(f"generating the base world of {BASE_ITEMS} items")
        generate(work / "base", BASE_ITEMS, 5, video_format="none", workers=1)
        held = heldout(work / "base", work / "heldout.jsonl")
        first = write_world(work / "base", min(sizes + memory_sizes), work / "tok-world")
        _log("training the tokenizers once")
        assert train_tokenizers(["--manifest", str(first), "--out", str(work / "tok"), "--config", "tiny"]) == 0
        shared = [f"tokenizers={work / 'tok'}", f"data.heldout={held}", *common]
        for n in sorted(set(sizes) | set(memory_sizes)):
            manifest = write_world(work / "base", n, work / f"w{n}")
            if n in sizes:
                t = time.perf_counter()
                pack_manifest(manifest, work / f"w{n}" / "shards", maxcount=1000, workers=2)
                _log(f"{n} items packed in {time.perf_counter() - t:.1f}s")
            arms = ([("streamed", [f"data.shards={work / f'w{n}' / 'shards'}"])] if n in sizes else []) + \
                ([("in memory", [f"data.manifest={manifest}"])] if n in memory_sizes else [])
            runs: dict[str, list[dict]] = {mode: [] for mode, _ in arms}
            reps = args.repeats if n == min(sizes + memory_sizes) else 1  # the speed target is at the smallest size
            for rep in range(reps):  # the arms alternate, so a noisy minute hits both
                for mode, data in arms:
                    _log(f"{n} items, {mode}, run {rep + 1}/{reps}")
                    runs[mode].append(run_training([*data, *shared], work / f"{mode.replace(' ', '-')}-{n}-{rep}"))
                    _log(str(runs[mode][-1]))
            for mode, got in runs.items():
                rows.append({"mode": mode, "n": n, "model": "tiny", **median_run(got)})
            if n == min(sizes) and n in memory_sizes and args.speed_model != "tiny":
                extra = MODELS[args.speed_model]
                runs = {mode: [] for mode, _ in arms}
                for rep in range(args.repeats):
                    for mode, data in arms:
                        _log(f"{n} items, {mode}, {args.speed_model} trunk, run {rep + 1}/{args.repeats}")
                        runs[mode].append(run_training([*data, *shared, *extra],
                                                       work / f"{mode.replace(' ', '-')}-{n}-m-{rep}"))
                        _log(str(runs[mode][-1]))
                speed_rows = [{"mode": mode, "n": n, "model": args.speed_model, **median_run(got)}
                              for mode, got in runs.items()]
            shutil.rmtree(work / f"w{n}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    streamed = [r for r in rows if r["mode"] == "streamed"]
    memory = {r["n"]: r for r in rows if r["mode"] == "in memory"}
    base = streamed[0] if streamed else rows[0]
    lines = results_header("Training at corpus scale: streamed shards vs the in-memory corpus",
                           command_line(argv, module="bench.train_scale")) + [
        f"World: {BASE_ITEMS} synthetic items lend their image and captions to N items (text-image pairs only), "
        f"tiny model, {args.steps} steps of 32 pairs + 16 caption sequences, one trainer thread; streamed: the "
        "default data.loader_workers (CPUs beside the trainer thread). Memory: the trainer's peak RSS and the peak PSS of its whole process tree; tokens/s: the "
        "training loop (throughput.json), over the whole loop (the stream's worker start-up included) and from the end of step 1's data on. Ratios: memory against the smallest streamed run; speed, streamed "
        f"against in-memory at the same N. At {min(sizes + memory_sizes):,} items each arm ran {args.repeats} times, "
        "alternating with the other arm: medians of the speeds, the largest memory peak (larger sizes: one run "
        "each, for memory).", "",
        "| path | items | trainer peak RSS MiB | tree peak PSS MiB | PSS vs smallest streamed | tokens/s, whole loop | "
        "streamed/in-memory | tokens/s after step 1 | streamed/in-memory | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mem = memory.get(r["n"]) if r["mode"] == "streamed" else None
        vs = f"{r['tok_s'] / mem['tok_s']:.2f}" if mem else ""
        vs_steady = f"{r['steady'] / mem['steady']:.2f}" if mem else ""
        lines.append(f"| {r['mode']} | {r['n']:,} | {r['rss']:.0f} | {r['tree']:.0f} | "
                     f"{r['tree'] / base['tree']:.2f} | {r['tok_s']:.0f} | {vs} | {r['steady']:.0f} | {vs_steady} | "
                     f"{r['wall']:.1f} |")
    if len(streamed) > 1:
        lines += ["", "The speed columns above the smallest size are single runs (kept for memory, which does not "
                  "depend on the machine's load); on this shared 2-core machine single runs of the same arm vary "
                  "by +-10%, so compare speeds at the smallest size, where each arm ran several times.", ""]
        lines += [f"Streamed tree PSS from {streamed[0]['n']:,} to {streamed[-1]['n']:,} items: "
                  f"{streamed[-1]['tree'] / streamed[0]['tree']:.2f}x (target <= 1.2x)."]
    if speed_rows:
        by = {r["mode"]: r for r in speed_rows}
        lines += ["", f"The same comparison at {speed_rows[0]['n']:,} items with the demo's trunk shape "
                  f"(`{args.speed_model}`: {' '.join(MODELS[args.speed_model])}), where a step weighs more "
                  "against the data work:", "",
                  "| path | tokens/s, whole loop | tokens/s after step 1 | wall s |", "|---|---|---|---|"]
        for r in speed_rows:
            lines.append(f"| {r['mode']} | {r['tok_s']:.0f} | {r['steady']:.0f} | {r['wall']:.1f} |")
        if {"streamed", "in memory"} <= set(by):
            s_, m_ = by["streamed"], by["in memory"]
            lines += ["", f"Streamed/in-memory: {s_['tok_s'] / m_['tok_s']:.2f} over the whole loop, "
                      f"{s_['steady'] / m_['steady']:.2f} after step 1."]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_scale.md").write_text("\n".join(lines) + "\n![train_scale](train_scale.png)\n")
    plot(rows, out / "train_scale.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
