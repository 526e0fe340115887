"""`omniembed export RUN_DIR --out BUNDLE_DIR [--int8] [--fp16]` (also `python -m omniembed.export`): a training
run -> a serving bundle, checked against torch before it is written (omniembed.export.bundle).
"""

from __future__ import annotations

import argparse
import sys

import torch

from omniembed.errors import ConfigError
from omniembed.export.bundle import export_run
from omniembed.export.graphs import OPSET
from omniembed.export.parity import PARITY_FILE


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="omniembed export", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="training run directory (train.yaml, tokenizers/, checkpoint.pt)")
    p.add_argument("--out", required=True, help="bundle directory to write (an earlier bundle there is replaced)")
    p.add_argument("--int8", action="store_true", help="also write the INT8 dynamically quantized trunk (CPU)")
    p.add_argument("--fp16", action="store_true", help="also write the fp16 trunk (GPU)")
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs torch check")
    p.add_argument("--threads", type=int, default=2, help="torch threads while exporting (default 2)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        out = export_run(args.run_dir, args.out, int8=args.int8, fp16=args.fp16, opset=args.opset,
                         verify=not args.no_verify)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"omniembed export: {exc}", file=sys.stderr)
        return 2
    files = sorted(f.name for f in out.iterdir())
    print(f"wrote {out}: {', '.join(files)}")
    if (out / PARITY_FILE).is_file():
        print(f"ONNX Runtime vs torch ({PARITY_FILE}): {(out / PARITY_FILE).read_text().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
