"""The model side of the server: request items -> decoded segments -> omniembed.runtime.Embedder vectors.

Media bytes are decoded here, in the request's own thread, before any batching: a corrupt file fails
only its own request with INVALID_ARGUMENT naming the item, and decoding runs in parallel across
requests while the batcher thread only runs the model.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import grpc
import numpy as np

from omniembed.errors import MediaError, OmniEmbedError

from .convert import RawSegment, RequestError, invalid


def decode_segment(seg: RawSegment, where: str) -> Any:
    """A RawSegment -> the runtime's segment type (text stays a str)."""
    from omniembed import media
    from omniembed.tokenization.document import AudioSegment, ImageSegment, TextSegment, VideoSegment

    try:
        if seg.kind == "text":
            return TextSegment(seg.value)
        if seg.kind == "image":
            return ImageSegment(media.decode_image(seg.value))
        if seg.kind == "audio":
            return AudioSegment(media.decode_audio(seg.value), media.SAMPLE_RATE)
        return VideoSegment.from_video(media.decode_video(seg.value))
    except MediaError as exc:
        raise invalid(f"{where} ({seg.kind}): {exc.reason}") from None


class ModelEmbedder:
    """A loaded bundle: `embed(documents, dim)` -> (N, dim) float32 L2-normalised vectors."""

    def __init__(self, embedder: Any, bundle: str):
        self.embedder = embedder
        self.bundle = bundle
        probe = self._run([[self._text("probe")]], None)
        self.full_dim = int(getattr(embedder, "dim", 0) or probe.shape[1])
        dims = getattr(embedder, "dims", None) or [self.full_dim]
        self.dims = sorted(int(d) for d in dims)

    @classmethod
    def load(cls, bundle: str | os.PathLike) -> "ModelEmbedder":
        from omniembed.runtime import Embedder  # torch-free: ONNX Runtime under the hood

        return cls(Embedder.load(bundle), os.fspath(bundle))

    @staticmethod
    def _text(text: str) -> Any:
        from omniembed.tokenization.document import TextSegment

        return TextSegment(text)

    def check_dim(self, dim: int, where: str = "dim") -> int:
        """0 -> the full dim; anything past the full dim is refused."""
        if dim == 0:
            return self.full_dim
        if dim > self.full_dim:
            raise invalid(f"{where}={dim} exceeds the model's embedding dim {self.full_dim}")
        return dim

    def prepare(self, segments: Sequence[RawSegment], where: str) -> list[Any]:
        """Decode one item's segments; the result is what the batcher hands to `embed`."""
        return [decode_segment(seg, f"{where}" if len(segments) == 1 else f"{where}.document.segments[{j}]")
                for j, seg in enumerate(segments)]

    def embed(self, documents: Sequence[list[Any]], dim: int) -> np.ndarray:
        return self._run(documents, dim)

    def _run(self, documents: Sequence[list[Any]], dim: int | None) -> np.ndarray:
        # A one-segment text item goes in as the plain string: the runtime's most direct input form.
        inputs = [doc[0].text if len(doc) == 1 and getattr(doc[0], "kind", "") == "text" else doc for doc in documents]
        try:
            vectors = self.embedder.embed(inputs, dim=dim) if dim else self.embedder.embed(inputs)
        except (MediaError, ValueError, OmniEmbedError) as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"cannot embed: {exc}") from None
        return np.asarray(vectors, dtype=np.float32)
