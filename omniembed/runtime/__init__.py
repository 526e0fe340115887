"""The torch-free runtime: load an exported bundle with ONNX Runtime and embed any modality.

    from omniembed.runtime import Embedder
    emb = Embedder.load("bundle/", threads=2)
    vecs = emb.embed(["text", pathlib.Path("img.png")], dim=64)

Importing this package never imports torch (tests/runtime checks it in a fresh interpreter).
"""

from omniembed.runtime.bundle import MANIFEST_FILE, read_manifest
from omniembed.runtime.embedder import Embedder, prefix
from omniembed.runtime.session import default_providers

__all__ = ["Embedder", "MANIFEST_FILE", "default_providers", "prefix", "read_manifest"]
