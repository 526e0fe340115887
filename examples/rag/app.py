"""Cross-modal retrieval-augmented generation over a folder of mixed media, through the omniembed service.

    python -m omniembed.serve --bundle BUNDLE --index rag-index --port 50051 &
    python examples/rag/app.py --server localhost:50051 index FOLDER
    python examples/rag/app.py --server localhost:50051 ask "a big red circle moving left" --run RUN_DIR

`index` embeds every text passage, image, sound and video under FOLDER through the service; `ask` retrieves
the top hits of each modality for a question (optionally with media attached: --with photo.png), captions
the retrieved media with the model's next-token head (--run: the training run the bundle was exported from),
and prints the context block a generator would read (--json prints the structure instead). No generator is
called: that is the next step of a real application.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the example's own modules, when run as a script

from context import MODALITIES, retrieve  # noqa: E402
from library import index_folder  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="examples/rag/app.py", description=__doc__.splitlines()[0])
    p.add_argument("--server", default="localhost:50051", help="HOST:PORT of `python -m omniembed.serve`")
    p.add_argument("--token", help="bearer token, when the server requires one")
    sub = p.add_subparsers(dest="command", required=True)
    ix = sub.add_parser("index", help="embed and store every text, image, sound and video under FOLDER")
    ix.add_argument("folder")
    ix.add_argument("--batch", type=int, default=8, help="files per Upsert call")
    ask = sub.add_parser("ask", help="retrieve context for a question and print the assembled prompt")
    ask.add_argument("question")
    ask.add_argument("--with", dest="attachments", action="append", default=[], metavar="FILE",
                     help="media to query with, beside the question (an interleaved query); repeatable")
    ask.add_argument("--per-modality", type=int, default=2, help="hits kept per modality (default 2)")
    ask.add_argument("--modalities", default=",".join(MODALITIES), help="which modalities to search")
    ask.add_argument("--run", help="training RUN_DIR whose next-token head captions retrieved media")
    ask.add_argument("--json", action="store_true", help="print the context as JSON instead of the prompt")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from omniembed.serve import Client

    with Client(args.server, token=args.token) as client:
        if args.command == "index":
            report = index_folder(client, args.folder, batch=args.batch)
            counts = ", ".join(f"{n} {m}" for m, n in sorted(report["by_modality"].items()))
            print(f"indexed {report['indexed']} entries from {args.folder} ({counts or 'nothing'}); "
                  f"{client.stats()['count']} in the index")
            for reason in report["skipped"]:
                print(f"  skipped {reason}")
            return 0
        caption = None
        if args.run:
            from captioner import Captioner

            caption = Captioner(args.run)
        ctx = retrieve(client, args.question, args.per_modality, tuple(args.modalities.split(",")), caption,
                       args.attachments)
    print(json.dumps(ctx.as_dict(), indent=2) if args.json else f"{ctx.prompt}\n\n({ctx.note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
