"""The main job, end to end on the embedded defaults: `omniembed demo` (what scripts/demo.sh runs).

    omniembed demo [--out runs/demo] [--config small] [--n N] [--seed S]
                   [--manifest YOUR/manifest.jsonl [--heldout YOUR/heldout.jsonl]] [key=value ...]

Stages, each printed as it runs:
  1. train     `omniembed train`: the synthetic world (or your manifest, docs/manifest.md), the
               tokenizers, then the trunk, with held-out evaluation at the end
  2. export    `omniembed export`: the ONNX bundle the torch-free runtime serves
  3. serve     `omniembed serve` in a subprocess on a free localhost port
  4. index     every view of every held-out item upserted through the service (embedded by the server)
  5. queries   over gRPC: text->image, image->audio, audio->video, video->text and a caption+image query
               (on held-out data with fewer modalities: every pair of those it has); a hit is a top result
               that the run's hit rule accepts (omniembed.eval.hits: by default the same attribute set)
key=value arguments override the training config (e.g. loop.steps=200).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from omniembed.errors import OmniEmbedError
from omniembed.serve.process import ServerProcess

def _stage(n: int, title: str) -> float:
    print(f"\n== {n}. {title}", flush=True)
    return time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omniembed demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/demo", help="working folder (run, bundle, index)")
    p.add_argument("--config", default="small", help="training config: a packaged name (tiny, small, base) or a "
                                                    "YAML path")
    p.add_argument("--n", type=int, help="synthetic world size (default: the config's data.synth_n)")
    p.add_argument("--seed", type=int, help="synthetic world seed (default: the config's data.synth_seed)")
    p.add_argument("--manifest", help="your own manifest.jsonl instead of the synthetic world")
    p.add_argument("--heldout", help="held-out manifest to index and query (default: heldout.jsonl beside it)")
    p.add_argument("--show", type=int, default=3, help="example queries printed per pair")
    p.add_argument("--skip-training", action="store_true", help="reuse OUT/run from an earlier demo")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="training config overrides")
    return p


def train_overrides(args) -> list[str]:
    out = list(args.overrides)
    if args.manifest:
        out.append(f"data.manifest={Path(args.manifest).resolve()}")
        if args.heldout:
            out.append(f"data.heldout={Path(args.heldout).resolve()}")
    if args.n is not None:
        out.append(f"data.synth_n={args.n}")
    if args.seed is not None:
        out.append(f"data.synth_seed={args.seed}")
    return out


def heldout_items(run_dir: Path, args) -> tuple[list, str]:
    """The items to index and query, and where they came from."""
    from omniembed.data.manifest import Item, load_manifest

    if args.manifest:
        manifest = Path(args.manifest)
        path = Path(args.heldout) if args.heldout else manifest.with_name("heldout.jsonl")
        if not path.is_file():
            path = manifest  # no held-out split: query the training items themselves (said in the output)
    else:
        path = run_dir / "world" / "heldout.jsonl"
    items = [r for r in load_manifest(path) if isinstance(r, Item)]
    if not items:
        raise OmniEmbedError(f"{path}: no item records to index")
    return items, str(path)


def last_eval(run_dir: Path) -> dict:
    path = run_dir / "eval.jsonl"
    if not path.is_file():
        return {}
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else {}


def eval_summary(record: dict) -> str:
    """Recall@1 at the full dim from the run's last evaluation record (eval.jsonl, JSON keys)."""
    dims = record.get("recall", {}).get("dims", {})
    if not dims:
        return ""
    full = max(dims, key=int)
    pairs = " ".join(f"{pair}={at['1']:.2f}" for pair, at in dims[full].items())
    return f"recall@1 at dim {full}: {pairs}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    run_dir, bundle, index_dir = out / "run", out / "bundle", out / "index"
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    try:
        t = _stage(1, f"train: data, tokenizers and the trunk ({args.config})")
        if args.skip_training:
            if not (run_dir / "checkpoint.pt").is_file():
                raise OmniEmbedError(f"--skip-training: no finished run in {run_dir}")
        else:
            from omniembed.train.cli import main as train_main

            if run_dir.exists():
                shutil.rmtree(run_dir)
            code = train_main(["--config", args.config, "--out", str(run_dir), *train_overrides(args)])
            if code != 0:
                raise OmniEmbedError(f"training failed (exit {code}); see {run_dir}/train.log")
        timings["train"] = time.perf_counter() - t
        summary = eval_summary(last_eval(run_dir))
        if summary:
            print(f"held-out evaluation in torch: {summary}")

        t = _stage(2, f"export: ONNX bundle -> {bundle}")
        from omniembed.export import export_run

        if bundle.exists():
            shutil.rmtree(bundle)
        export_run(run_dir, bundle)
        timings["export"] = time.perf_counter() - t

        t = _stage(3, "serve: gRPC server on localhost (torch-free runtime + FAISS index)")
        if index_dir.exists():
            shutil.rmtree(index_dir)
        server = ServerProcess(["--bundle", str(bundle), "--index", str(index_dir)], out / "server.log")
        print(f"listening on {server.target} (log: {out / 'server.log'})")
        timings["serve"] = time.perf_counter() - t
        try:
            code = _index_and_query(server.target, run_dir, bundle, args, timings)
        finally:
            exit_code = server.stop()
            print(f"server stopped (exit {exit_code}); index persisted in {index_dir}")
    except OmniEmbedError as err:
        print(f"omniembed demo: {err}", file=sys.stderr)
        return 2
    timings["total"] = time.perf_counter() - t_all
    (out / "timings.json").write_text(json.dumps({k: round(v, 2) for k, v in timings.items()}, indent=2) + "\n")
    print("\ntimings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return code


def _index_and_query(target: str, run_dir: Path, bundle: Path, args, timings: dict) -> int:
    import grpc
    import yaml
    from tqdm import tqdm

    from omniembed.demo.queries import index_entries, plan, run_queries
    from omniembed.eval.hits import resolve_rule
    from omniembed.runtime import read_manifest
    from omniembed.serve import Client

    items, source = heldout_items(run_dir, args)
    settings = (yaml.safe_load((run_dir / "train.yaml").read_text()) or {}).get("eval") or {}
    label = settings.get("label")
    rule = resolve_rule(settings.get("hit", "auto"), label, (i.attributes for i in items))
    embeddable = set(read_manifest(bundle, verify=False).get("modalities", ("text", "image", "audio", "video")))
    t = _stage(4, f"index: every view of {len(items)} held-out items from {source}, embedded by the server")
    entries = [e for e in index_entries(items) if e[2]["modality"] in embeddable]
    refused: list[str] = []
    with Client(target, timeout=120.0) as client:
        chunk = 32
        for start in tqdm(range(0, len(entries), chunk), desc="upsert", unit="batch", file=sys.stdout):
            part = entries[start:start + chunk]
            try:
                client.upsert([e[0] for e in part], items=[e[1] for e in part], metadata=[e[2] for e in part])
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                for e in part:  # one bad view (a file that does not decode) must not stop the others
                    try:
                        client.upsert([e[0]], items=[e[1]], metadata=[e[2]])
                    except grpc.RpcError as one:
                        if one.code() != grpc.StatusCode.INVALID_ARGUMENT:
                            raise
                        refused.append(f"{e[0]}: {one.details()}")
        stats = client.stats()
        print(f"index holds {stats['count']} vectors of dim {stats['index_dim']} ({stats['index_kind']})")
        for line in refused:
            print(f"  not indexed: {line}")
        timings["index"] = time.perf_counter() - t

        hit = {"attributes": "same attribute set", "label": f"same {label}", "instance": "the item itself"}[rule]
        t = _stage(5, f"queries over gRPC (top-1; hit = {hit})")
        pairs, skipped = plan(items)

        def search(query, modality):
            return client.search(query, k=1, filter={"modality": modality})

        results = run_queries(search, items, args.show, rule, label, pairs,
                              progress=lambda xs: tqdm(xs, desc="query", unit="q", leave=False, file=sys.stdout))
        timings["queries"] = time.perf_counter() - t
    for res in results:
        score = "n/a" if res.recall is None else f"{res.recall:.3f}"
        print(f"\n{res.name}: recall@1 {score} ({res.hits}/{res.queries})")
        for line in res.examples:
            print(f"  {line}")
    for line in skipped:
        print(f"\nskipped {line}")
    summary = {r.name: None if r.recall is None else round(r.recall, 4) for r in results}
    (Path(args.out) / "queries.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\nsummary: " + ", ".join(f"{k} {'n/a' if v is None else f'{v:.2f}'}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
