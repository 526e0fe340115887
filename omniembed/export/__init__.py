"""Export: a trained run -> a bundle of ONNX graphs that omniembed.runtime serves without torch.

    bundle.py    export_bundle / export_run: the graphs, tokenizer files and checksummed manifest
    graphs.py    the trunk and tokenizer encoders as exportable torch modules
    variants.py  INT8 (CPU) and fp16 (GPU) trunks
    parity.py    ONNX Runtime against torch, the check every export ends with
    cli.py       `omniembed export RUN_DIR --out BUNDLE`
"""

from omniembed.export.bundle import export_bundle, export_run
from omniembed.export.cli import main
from omniembed.export.parity import PARITY_FILE, check_parity, id_agreement

__all__ = ["PARITY_FILE", "check_parity", "export_bundle", "export_run", "id_agreement", "main"]
