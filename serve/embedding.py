"""The model side of the server: request items -> decoded segments -> omniembed.runtime.Embedder vectors.

Media bytes are decoded here, in the request's own thread, before any batching: a corrupt file fails
only its own request with INVALID_ARGUMENT naming the item, decoding runs in parallel across requests,
and the batcher thread only tokenizes and runs the model.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from omniembed.errors import ConfigError, MediaError, OmniEmbedError

from .convert import RawSegment, invalid


class ModelEmbedder:
    """A loaded bundle: `prepare(segments)` per item, then `embed(prepared, dim)` -> (N, dim) unit rows."""

    def __init__(self, embedder: Any, bundle: str):
        self.embedder = embedder
        self.bundle = bundle
        self.full_dim = int(embedder.dim)
        self.dims = sorted(int(d) for d in embedder.dims)

    @classmethod
    def load(cls, bundle: str | os.PathLike, threads: int | None = None) -> "ModelEmbedder":
        from omniembed.runtime import Embedder  # torch-free: ONNX Runtime under the hood

        return cls(Embedder.load(bundle, threads=threads), os.fspath(bundle))

    def check_dim(self, dim: int, where: str = "dim") -> int:
        """0 -> the full dim; anything past the full dim is refused."""
        if dim == 0:
            return self.full_dim
        if dim > self.full_dim:
            raise invalid(f"{where}={dim} exceeds the model's embedding dim {self.full_dim}")
        return dim

    def prepare(self, segments: Sequence[RawSegment], where: str) -> list[Any]:
        """One item's segments decoded into the runtime's segment types (its document form)."""
        from omniembed.tokenization.inputs import to_segments
        from omniembed.tokenization.document import DocumentError

        out = []
        for j, seg in enumerate(segments):
            name = where if len(segments) == 1 else f"{where}.document.segments[{j}]"
            part = seg.value if seg.kind == "text" else {seg.kind: seg.value}
            try:
                out.extend(to_segments(part, sample_rate=self.embedder.sample_rate,
                                       video_fps=self.embedder.video_fps, index=j))
            except MediaError as exc:
                raise invalid(f"{name} ({seg.kind}): {exc.reason}") from None
            except DocumentError as exc:
                raise invalid(f"{name}: {exc}") from None
        return out

    def embed(self, documents: Sequence[list[Any]], dim: int) -> np.ndarray:
        try:
            vectors = self.embedder.embed(list(documents), dim=dim)
        except (ConfigError, ValueError, OmniEmbedError) as exc:
            raise invalid(f"cannot embed: {exc}") from None
        return np.asarray(vectors, dtype=np.float32)
