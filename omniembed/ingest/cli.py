"""`omniembed ingest MANIFEST_OR_SHARDS --bundle B --index URI`: bulk embedding into an index with Ray Data."""

from __future__ import annotations

import argparse
import json
import os
import sys

from omniembed.errors import OmniEmbedError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="omniembed ingest",
        description="Embed a manifest or WebDataset shards with a pool of Ray actors (one ONNX Embedder each) and "
                    "write the vectors to an index. Resumable: entries already indexed with the same content are "
                    "skipped. Bad records go to a rejects file with the reason.")
    p.add_argument("source", nargs="+",
                   help="a manifest.jsonl, or shards: .tar files, a brace pattern 'shard-{000000..000009}.tar', "
                        "or a folder of them (omniembed shards)")
    p.add_argument("--bundle", required=True, help="exported model bundle (omniembed export)")
    p.add_argument("--index", required=True,
                   help="a folder (FAISS), milvus-lite:///path/db, or http://host:19530[?collection=NAME] (Milvus)")
    p.add_argument("--index-token", default=os.environ.get("OMNIEMBED_MILVUS_TOKEN"),
                   help="Milvus token 'user:password' or API key (default $OMNIEMBED_MILVUS_TOKEN)")
    p.add_argument("--index-kind", default="flat", choices=["flat", "hnsw", "ivfpq"], help="kind of a new index")
    p.add_argument("--dim", type=int, help="dim of a new index (default: the model's full dim)")
    p.add_argument("--actors", type=int, default=1, help="embedding actors, one ONNX Embedder each (default 1); 0: embed in this process "
                        "without Ray")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads per actor (default: cores / actors)")
    p.add_argument("--batch-size", type=int, default=32, help="entries per actor call (default 32)")
    p.add_argument("--ray-address", help="an existing Ray cluster ('auto', 'ray://host:10001', ...); default: a "
                                         "local Ray on 127.0.0.1 started for this run")
    p.add_argument("--segments", action="store_true",
                   help="also store each window of long audio and video with its time span (as Upsert segments)")
    p.add_argument("--state", help="folder for the resume ledger (default: INDEX.ingest beside a FAISS folder, "
                                   "else .omniembed-ingest/ under the current folder)")
    p.add_argument("--rejects", help="JSONL file of rejected entries with reasons (default: STATE/rejects.jsonl)")
    p.add_argument("--max-audio-seconds", type=float, help="longest audio clip embedded (default 600)")
    p.add_argument("--max-video-seconds", type=float, help="longest video embedded (default 300)")
    p.add_argument("--summary", help="write the run's figures as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .pipeline import ingest

    source = args.source[0] if len(args.source) == 1 else args.source
    try:
        result = ingest(source, args.bundle, args.index, actors=args.actors, ray_address=args.ray_address,
                        state=args.state, rejects=args.rejects, batch_size=args.batch_size, segments=args.segments,
                        kind=args.index_kind, dim=args.dim, token=args.index_token, threads=args.threads,
                        max_audio_seconds=args.max_audio_seconds, max_video_seconds=args.max_video_seconds,
                        progress=not args.no_progress)
    except (OmniEmbedError, ValueError) as err:
        print(f"omniembed ingest: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("omniembed ingest: interrupted; what was reported done is in the index, rerun to resume",
              file=sys.stderr)
        return 130
    print(f"ingested {result.written} entries ({result.skipped} already indexed, skipped; {result.rejected} "
          f"rejected) in {result.seconds:.1f} s, {result.items_per_s:.1f} entries/s; the index holds "
          f"{result.index_count}")
    if result.windows:
        print(f"stored {result.windows} windows of long media with their time spans")
    if result.reconciled:
        print(f"{result.reconciled} entries of the ledger were no longer in the index and were ingested again")
    if result.cut:
        print(f"{result.cut} entries were cut to the model's window (e.g. {', '.join(result.cut_ids[:3])})")
    if result.rejected:
        print(f"rejected entries and why: {result.rejects}")
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as handle:
            json.dump(result.as_dict(), handle, indent=2)
    return 0
