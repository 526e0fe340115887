"""python -m omniembed.serve --bundle B --index URI --port P  (also `omniembed serve ...`).

--index is a folder (FAISS, the default backend) or a Milvus URI: milvus-lite:///path/db (Milvus Lite in this
process) or http://host:19530 (a Milvus server or cluster, which several serve replicas may share). The index
is opened if it exists, otherwise created (dim: the model's full dim, or --dim; on Milvus with a field per
Matryoshka dim of the model). SIGTERM/SIGINT drain in-flight calls, snapshot the index and exit 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from omniembed.errors import OmniEmbedError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omniembed serve", description="Serve embeddings and search over gRPC.")
    p.add_argument("--bundle", help="exported model bundle (omniembed.export); omit to serve vector calls only")
    p.add_argument("--index", required=True,
                   help="index: a folder (FAISS; created when absent or empty), milvus-lite:///path/db, or "
                   "http://host:19530[?collection=NAME] for a Milvus server")
    p.add_argument("--index-token", default=os.environ.get("OMNIEMBED_MILVUS_TOKEN"),
                   help="a Milvus server's token (default: $OMNIEMBED_MILVUS_TOKEN)")
    p.add_argument("--port", type=int, default=50051, help="gRPC port (0 picks a free one, printed on start)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    p.add_argument("--dim", type=int, help="dim of a new index (default: the model's full dim)")
    p.add_argument("--index-kind", default="flat", choices=["flat", "hnsw", "ivfpq"], help="kind of a new index")
    p.add_argument("--token", default=os.environ.get("OMNIEMBED_TOKEN"),
                   help="require 'authorization: Bearer TOKEN' (default: $OMNIEMBED_TOKEN; unset = no auth)")
    p.add_argument("--tls-cert", help="PEM certificate chain; with --tls-key serves TLS")
    p.add_argument("--tls-key", help="PEM private key")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics HTTP port (off when unset)")
    p.add_argument("--max-message-mb", type=float, default=64)
    p.add_argument("--max-items", type=int, default=1024, help="items per unary Embed/Upsert call")
    p.add_argument("--max-batch", type=int, default=32, help="items per model call (micro-batch)")
    p.add_argument("--max-wait-ms", type=float, default=0.0,
                   help="how long a micro-batch under concurrent load waits for more work (default 0: a batch is "
                   "what queued while the last model call ran)")
    p.add_argument("--max-search-batch", type=int, default=64, help="vector queries merged into one index search")
    p.add_argument("--no-batching", action="store_true", help="run each request's embeds on its own")
    p.add_argument("--workers", type=int, default=8,
                   help="threads that decode, tokenize and call the index (calls waiting on clients hold none)")
    p.add_argument("--max-calls", type=int, default=256,
                   help="calls in progress beyond this are refused with RESOURCE_EXHAUSTED (Stats and health excepted)")
    p.add_argument("--stream-idle-s", type=float, default=60.0,
                   help="a request stream that sends nothing this long is closed (DEADLINE_EXCEEDED)")
    p.add_argument("--default-deadline-s", type=float, default=300.0,
                   help="the longest a call waits when its client set no deadline (or a longer one)")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: one per core)")
    p.add_argument("--decode-workers", type=int, help="processes decoding requests of two or more media items "
                   "(default one per CPU, up to 8; 0: decode in the request's thread)")
    p.add_argument("--max-audio-seconds", type=float, help="longest audio clip embedded (default 600)")
    p.add_argument("--max-video-seconds", type=float, help="longest video embedded (default 300)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds shutdown waits for in-flight calls")
    p.add_argument("--log-level", default="INFO")
    return p


def open_or_create_index(uri: str, dim: int | None, kind: str, prefixes=(), token: str | None = None):
    from omniembed.index import backend_of, open_index

    if backend_of(uri) == "faiss" and not (os.path.isdir(uri) and os.listdir(uri)) and not dim:
        raise OmniEmbedError(f"{uri}: no index there yet and no dim to create one: pass --bundle or --dim")
    return open_index(uri, dim, kind, prefixes=prefixes, token=token)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .embedding import ModelEmbedder
    from .server import Server, ServerConfig

    try:
        limits = {"max_audio_seconds": args.max_audio_seconds, "max_video_seconds": args.max_video_seconds,
                  "decode_workers": args.decode_workers}
        embedder = ModelEmbedder.load(args.bundle, threads=args.threads, **limits) if args.bundle else None
        index = open_or_create_index(args.index, args.dim or (embedder.full_dim if embedder else None),
                                     args.index_kind, prefixes=embedder.dims if embedder else (),
                                     token=args.index_token)
        config = ServerConfig(
            host=args.host, port=args.port, token=args.token or None, tls_cert=args.tls_cert, tls_key=args.tls_key,
            max_message_bytes=int(args.max_message_mb * (1 << 20)), max_items=args.max_items,
            batching=not args.no_batching, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
            max_search_batch=args.max_search_batch, workers=args.workers, max_calls=args.max_calls,
            stream_idle_s=args.stream_idle_s, default_deadline_s=args.default_deadline_s,
            metrics_port=args.metrics_port, grace_s=args.grace)
        server = Server(index, embedder, config).start()
    except (OmniEmbedError, OSError) as exc:
        print(f"omniembed serve: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum, _frame):
        logging.getLogger(__name__).info("signal %d: draining and persisting the index", signum)
        # stop() blocks while calls drain; the signal handler must return, so stop from a thread.
        threading.Thread(target=server.stop, name="omniembed-shutdown").start()

    if args.host not in ("127.0.0.1", "localhost", "::1") and not (args.token or args.tls_cert):
        logging.getLogger(__name__).warning(
            "listening on %s without --token or TLS: anyone who can reach this port can read and change the index",
            args.host)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Scripts and tests read this line to find the port (and the metrics port) when they pass 0.
    print(f"omniembed serve: listening on {server.target}"
          + (f" metrics on :{server.metrics_port}" if server.metrics_port else ""), flush=True)
    while not server.wait(0.5):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
