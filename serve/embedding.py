"""The model side of the server: request items -> decoded documents -> omniembed.runtime.Embedder vectors.

Media bytes are decoded here, in the request's own thread, before any batching: a corrupt file fails
only its own request with INVALID_ARGUMENT naming the item, decoding runs in parallel across requests,
and the batcher thread only tokenizes and runs the model. A long audio or video item is decoded window by
window (the bundle's windows), its vector pooled from theirs.
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
    def load(cls, bundle: str | os.PathLike, threads: int | None = None, **limits) -> "ModelEmbedder":
        from omniembed.runtime import Embedder  # torch-free: ONNX Runtime under the hood

        return cls(Embedder.load(bundle, threads=threads, **limits), os.fspath(bundle))

    @property
    def text_bytes(self) -> int:
        """Bytes of a text past which the model reads nothing: the characters windows.py keeps before BPE, at up
        to 4 UTF-8 bytes each (a cut there leaves them all), plus one character's worth of slack."""
        text = self.embedder.document.text
        return 4 * (text.chars_for(self.embedder.max_tokens) + 1)

    def check_dim(self, dim: int, where: str = "dim") -> int:
        """0 -> the full dim; anything past the full dim is refused."""
        if dim == 0:
            return self.full_dim
        if dim > self.full_dim:
            raise invalid(f"{where}={dim} exceeds the model's embedding dim {self.full_dim}")
        return dim

    def prepare(self, segments: Sequence[RawSegment], where: str):
        """One item's segments decoded (omniembed.tokenization.windows.Decoded): a single audio or video item
        window by window, a document segment by segment."""
        from omniembed.tokenization.document import DocumentError
        from omniembed.tokenization.inputs import check_modalities, to_segments
        from omniembed.tokenization.windows import Decoded

        emb = self.embedder
        if len(segments) == 1 and segments[0].kind in ("audio", "video"):
            seg = segments[0]
            try:
                return emb.decode([{seg.kind: seg.value}])[0]
            except MediaError as exc:
                raise invalid(f"{where} ({seg.kind}): {exc.reason}") from None
            except DocumentError as exc:
                raise invalid(f"{where}: {str(exc).replace('input 0', 'this item')}") from None
        out = []
        for j, seg in enumerate(segments):
            name = where if len(segments) == 1 else f"{where}.document.segments[{j}]"
            part = seg.value if seg.kind == "text" else {seg.kind: seg.value}
            try:
                decoded = to_segments(part, sample_rate=emb.sample_rate, video_fps=emb.video_fps, index=j,
                                      image_side=emb.image.image_size)
                check_modalities(decoded, emb.modalities, name)
            except MediaError as exc:
                raise invalid(f"{name} ({seg.kind}): {exc.reason}") from None
            except DocumentError as exc:
                raise invalid(f"{name}: {exc}" if not str(exc).startswith(name) else str(exc)) from None
            out.extend(decoded)
        return Decoded([out])

    def prepare_many(self, items: Sequence[Sequence[RawSegment]], names: Sequence[str]) -> list:
        """prepare() of every item, a request's media decoded together by the embedder's decoding workers when
        there are two or more; an item that fails is named by decoding the items one by one again."""
        from omniembed.tokenization.document import TextSegment
        from omniembed.tokenization.inputs import has_media
        from omniembed.tokenization.windows import Decoded

        emb = self.embedder
        if all(len(segs) == 1 and segs[0].kind == "text" for segs in items) and "text" in emb.modalities:
            # a search by text, the common call: one document of one text segment each, nothing to decode
            return [Decoded([[TextSegment(segs[0].value)]]) for segs in items]
        inputs = [_as_input(segs) for segs in items]
        pool = getattr(emb, "decode_pool", None)
        if pool is not None and pool.worth(sum(has_media(x) for x in inputs)):
            try:
                return emb.decode(inputs)
            except (OmniEmbedError, ValueError, TypeError):
                pass  # a client's mistake: found and named below
        return [self.prepare(segs, name) for segs, name in zip(items, names)]

    def embed(self, prepared: Sequence[Any], dim: int) -> np.ndarray:
        """(N, dim) pooled vectors of prepared items; each item's `cut` tells whether its ids were cut."""
        try:
            vectors = self.embedder.embed_decoded(list(prepared), dim=dim)
        except (ConfigError, ValueError, OmniEmbedError) as exc:
            raise invalid(f"cannot embed: {exc}") from None
        return np.asarray(vectors, dtype=np.float32)

    def embed_windows(self, prepared: Sequence[Any]) -> list[tuple[np.ndarray, list | None]]:
        """Per prepared item, (its windows' full-dim vectors, their spans) or (its vector, None)."""
        try:
            return self.embedder.embed_windows_decoded(list(prepared))
        except (ConfigError, ValueError, OmniEmbedError) as exc:
            raise invalid(f"cannot embed: {exc}") from None


def _as_input(segments: Sequence[RawSegment]) -> Any:
    """An item's segments as the Embedder's input: text, {kind: bytes}, or a document of them."""
    parts = [seg.value if seg.kind == "text" else {seg.kind: seg.value} for seg in segments]
    return parts[0] if len(parts) == 1 else parts
