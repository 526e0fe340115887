"""Users' own data shapes with the default settings: the main command on subsets of the synthetic world with two
and three modalities, and its held-out recall@1 on every pair present. bench/results/own_data.md.

    python -m bench.own_data [--shapes text+image,image+audio+text] [--config small] [--world DIR] [--out DIR]
                             [--set key=value ...]

Each shape's manifest keeps only those views of the world's items (bench/worlds.py; documents keep only those
segments) and is run through `omniembed demo --manifest M` exactly as a user would run theirs: the tokenizers
learn only the modalities present, training forms its all-views batches from the views the items have,
and the queries are every ordered pair of those modalities. Two figures per pair: the run's own held-out
evaluation in torch (omniembed.eval, recall@1 at the full dim over the held-out split) and the demo's top-1
over gRPC.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.common import RESULTS, command_line, results_header, run_main_command
from bench.worlds import subset

TARGET = 0.9


def run_shape(world: Path, shape: str, config: str, work: Path, overrides: list[str] = ()) -> dict:
    manifest, _ = subset(world, work / shape / "data", shape.split("+"))
    out = work / shape / "demo"
    result = run_main_command(out, config, manifest, *overrides, what=shape)
    return {"shape": shape, **result, "timings": json.loads((out / "timings.json").read_text())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.own_data", description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="text+image,image+audio+text")
    p.add_argument("--config", default="small")
    p.add_argument("--world", help="a generated world (default: the config's, generated here)")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--work", help="scratch folder (default: a temporary one)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a training config override for every shape (default settings without it)")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="own_data_"))
    world = Path(args.world) if args.world else None
    if world is None:
        from omniembed.data.synth import generate
        from omniembed.train.config import load_config

        data = load_config(args.config).data
        world = generate(work / "world", data.synth_n, data.synth_seed, video_format=data.synth_video)
    rows = []
    for shape in args.shapes.split(","):
        print(f"{shape}: the main command with --config {args.config} ...", file=sys.stderr, flush=True)
        rows.append(run_shape(world, shape, args.config, work, args.set))
        print(f"  torch R@1 {rows[-1]['torch']}; gRPC top-1 {rows[-1]['grpc']}", file=sys.stderr, flush=True)
    lines = results_header("Own data shapes: the main command on 2- and 3-modality subsets of the synthetic world",
                           command_line(argv, "bench.own_data"))
    settings = ", ".join(f"`{o}`" for o in args.set) or "default settings"
    lines += [f"- world: `{world}`; each shape keeps only its views of the same items (bench/worlds.py); config "
              f"`{args.config}`, {settings} otherwise; target: held-out R@1 >= {TARGET} on every pair", "",
              "| shape | pair | R@1 held-out, torch eval (full dim) | top-1 over gRPC (demo) | >= 0.9 | main command |",
              "|---|---|---:|---:|:-:|---:|"]
    for r in rows:
        for pair, value in r["torch"].items():
            grpc = r["grpc"].get(pair)
            ok = value >= TARGET and (grpc is None or grpc >= TARGET)
            lines.append(f"| {r['shape']} | {pair} | {value:.3f} | {'—' if grpc is None else f'{grpc:.3f}'} | "
                         f"{'yes' if ok else 'no'} | {r['seconds'] / 60:.1f} min |")
    lines += ["", "The two figures differ in path, not in data: torch scores the tokenized corpus with the trained "
              "model; the demo embeds the files through the exported ONNX bundle, serves them over gRPC and "
              "takes the top hit.", ""]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "own_data.md").write_text("\n".join(lines))
    (out / "own_data.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out / 'own_data.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
