"""The `omniembed` console script: one subcommand per stage, each delegating to a module's `main(argv)`.

Subcommands import their module lazily so `omniembed --help` is instant and the serving commands
never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with main(argv), one-line help). Add a stage by adding a row.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("omniembed.data.synth.cli", "generate the synthetic multimodal world (media + manifest.jsonl)"),
    "shards": ("omniembed.data.pack", "pack a manifest and its media into WebDataset shards"),
    "tokenizers": ("omniembed.tokenization.train", "train the text BPE, image VQ-VAE and audio VQ tokenizers"),
    "train": ("omniembed.train.cli", "train the trunk: tokenizers, tokenized corpus, joint LM + contrastive training"),
    "demo": ("omniembed.demo.cli", "run the main job end to end on the embedded defaults"),
    "export": ("omniembed.export.cli", "export a training run to an ONNX bundle for the torch-free runtime"),
    "eval": ("omniembed.eval.cli", "recall@k and mAP of a bundle or run on any manifest, every modality pair and dim"),
    "serve": ("omniembed.serve.__main__", "serve embeddings and search over gRPC (omniembed.serve)"),
    "ingest": ("omniembed.ingest.cli", "bulk-embed a manifest or shards into an index with Ray Data actors"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="omniembed", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(SUBCOMMANDS), help="stage to run")
    parser.epilog = "\n".join(f"  {name:12s} {help_}" for name, (_, help_) in sorted(SUBCOMMANDS.items()))
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args = parser.parse_args(argv[:1])
    try:
        module = importlib.import_module(SUBCOMMANDS[args.command][0])
        return int(module.main(argv[1:]) or 0)
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] == "omniembed":
            raise
        # a client-only install (`pip install omniembed`) has the console script but not the stages' libraries
        extra = {"serve": "serve", "ingest": "ray"}.get(args.command, "train")
        print(f"omniembed {args.command}: needs {err.name}, which this install lacks: "
              f"pip install 'omniembed[{extra}]'", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
