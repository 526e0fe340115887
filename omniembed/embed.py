"""Embed and caption with a trained run, in torch (the ONNX runtime embedder is omniembed.runtime).

    from omniembed.run import load_run
    from omniembed.embed import Embedder
    emb = Embedder(load_run("runs/small"))
    vecs = emb.embed(["a red circle", Path("cat.png"), wav_bytes, ["a sound:", Path("a.wav")]], dim=64)
    text = emb.caption(Path("cat.png"))

An input is text (str), media (bytes, or a pathlib.Path / os.PathLike to an image, sound or video file;
the modality is read from the bytes), or a list of those segments: an interleaved document.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from omniembed.errors import MediaError
from omniembed.tokenization.document import (AudioSegment, ImageSegment, TextSegment, VideoSegment)

MEDIA_TYPES = (bytes, bytearray, memoryview, os.PathLike)


class Embedder:
    """A Run's model and tokenizers behind `embed(inputs, dim=)` and `caption(media)`."""

    def __init__(self, run, batch_size: int = 32):
        self.run, self.model, self.batch_size = run, run.model, batch_size
        self.doc = run.document_tokenizer()
        self.vocab = run.vocab
        self.sample_rate = run.tokenizers.config.sample_rate
        self.video_fps = run.tokenizers.config.video_fps
        self.pad = self.vocab.special("<pad>")
        self.eos = self.vocab.special("<eos>")

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(self.model.cfg.embed_dims)

    # ---- inputs -> segments -> ids ----------------------------------------------------------------------
    def segment(self, x: Any):
        """One input segment: str -> text; bytes or a path -> image / audio / video by its content."""
        from omniembed.media import decode_audio, decode_image, decode_video, detect_modality

        if isinstance(x, str):
            return TextSegment(x)
        if not isinstance(x, MEDIA_TYPES):
            raise TypeError(f"cannot embed a {type(x).__name__}: pass text (str), media bytes, a path, "
                            "or a list of those")
        kind = detect_modality(x)
        if kind == "image":
            return ImageSegment(decode_image(x))
        if kind == "audio":
            return AudioSegment(decode_audio(x, sample_rate=self.sample_rate), self.sample_rate)
        return VideoSegment.from_video(decode_video(x, fps=self.video_fps, sample_rate=self.sample_rate))

    def token_ids(self, x: Any) -> list[int]:
        """The id stream the model embeds: <bos> segments <eos> <embed>, cut to the model's max_len."""
        segments = [self.segment(s) for s in x] if isinstance(x, (list, tuple)) else [self.segment(x)]
        ids = self.doc.encode(segments, embed=True)
        limit = self.model.cfg.max_len
        return ids if len(ids) <= limit else ids[:limit - 2] + ids[-2:]  # keep <eos> <embed>

    def _pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        T = max(len(r) for r in rows)
        ids = torch.full((len(rows), T), self.pad, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.as_tensor(r, dtype=torch.long)
        mask = torch.arange(T)[None, :] < torch.tensor([len(r) for r in rows])[:, None]
        return ids, mask

    # ---- the two verbs ----------------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, inputs: Any | Sequence[Any], dim: int | None = None) -> np.ndarray:
        """(N, dim) float32 L2-normalised vectors; a single input (not a list of inputs) gives (1, dim).

        A list is a list of inputs; wrap an interleaved document in a list inside it: [[text, image]]."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        full = max(self.dims)
        dim = full if dim is None else int(dim)
        if not 0 < dim <= full:
            raise ValueError(f"dim={dim}: must be in 1..{full} (trained Matryoshka dims {self.dims})")
        rows = [self.token_ids(x) for x in items]
        out = np.zeros((len(rows), dim), dtype=np.float32)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths share a batch
        device = next(self.model.parameters()).device
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            ids, mask = self._pad([rows[i] for i in idx])
            raw = self.model.embed_raw(ids.to(device), mask.to(device)).float()[:, :dim]
            out[idx] = F.normalize(raw, dim=-1).cpu().numpy()
        return out

    @torch.no_grad()
    def caption(self, media: Any, max_new_tokens: int = 24) -> str:
        """Greedy text from the next-token head after the media block (output restricted to text ids)."""
        seg = self.segment(media)
        if isinstance(seg, TextSegment):
            raise MediaError("<text>", "caption() needs an image, sound or video, got text")
        prompt = self.doc.encode([seg], eos=False)
        room = self.model.cfg.max_len - max_new_tokens
        if room < 2:
            raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in "
                             f"max_len={self.model.cfg.max_len}")
        prompt = prompt[:room]
        device = next(self.model.parameters()).device
        new = self.model.generate(torch.tensor(prompt, device=device), max_new_tokens,
                                  allowed_ids=list(self.vocab.text_range), eos_id=self.eos).tolist()
        if self.eos in new:
            new = new[:new.index(self.eos)]
        return self.doc.text.decode([self.vocab.local(t) for t in new])
