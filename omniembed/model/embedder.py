"""`TorchEmbedder`: embed and caption with a trained run, in torch (`omniembed.runtime.Embedder` is the same
verb on an exported ONNX bundle, without torch).

    from omniembed.train.rundir import load_run
    from omniembed.model.embedder import TorchEmbedder
    emb = TorchEmbedder.from_run(load_run("runs/small"))
    vecs = emb.embed(["a red circle", Path("cat.png"), wav_bytes, ["a sound:", Path("a.wav")]], dim=64)
    text = emb.caption(Path("cat.png"))

Inputs are those of omniembed.tokenization.inputs.to_segments (text, media bytes or paths, explicit
{"image": ...} dicts, pixels, segments, or a list of those: an interleaved document), so both embedders
read the same inputs the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from omniembed.errors import MediaError
from omniembed.media.limits import SAMPLE_RATE
from omniembed.tokenization.document import TextSegment
from omniembed.tokenization.inputs import check_modalities, image_side, to_segments
from omniembed.tokenization.padding import pad_right
from omniembed.tokenization.windows import Encoded, encode_inputs, pooled


class TorchEmbedder:
    """A model and its document tokenizer behind `embed(inputs, dim=)`, `embed_ids(ids)` and `caption(media)`.

    max_tokens: the longest id sequence embedded, the body cut at its end (default: the model's max_len;
    an export verifies itself at its bundle's max_tokens)."""

    def __init__(self, model, document_tokenizer, *, max_tokens: int | None = None, batch_size: int = 32,
                 modalities=("text", "image", "audio", "video"), windowing=None):
        self.model, self.doc, self.batch_size = model, document_tokenizer, batch_size
        self.vocab = document_tokenizer.vocab
        self.max_tokens = model.cfg.max_len if max_tokens is None else min(int(max_tokens), model.cfg.max_len)
        audio = document_tokenizer.audio
        self.sample_rate = int(audio.config.sample_rate) if audio is not None else SAMPLE_RATE
        self.video_fps = document_tokenizer.video_fps
        self.pad = self.vocab.special("<pad>")
        self.eos = self.vocab.special("<eos>")
        self.modalities = tuple(modalities)
        self.image_side = image_side(document_tokenizer.image)
        self.windowing = windowing  # omniembed.tokenization.windows.Windowing, or None: long media not windowed

    @classmethod
    def from_run(cls, run, **kwargs) -> "TorchEmbedder":
        """The model, tokenizers and windows of a training run (omniembed.train.rundir.load_run)."""
        return cls(run.model, run.document_tokenizer(), modalities=run.tokenizers.modalities,
                   windowing=run.windowing(), **kwargs)

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(self.model.cfg.embed_dims)

    def segments(self, x: Any, index: int = 0) -> list:
        segments = to_segments(x, sample_rate=self.sample_rate, video_fps=self.video_fps, index=index,
                               image_side=self.image_side)
        check_modalities(segments, self.modalities, f"input {index}")
        return segments

    def token_ids(self, x: Any, index: int = 0) -> list[int]:
        """The id stream the model embeds: <bos> segments <eos> <embed>, cut to max_tokens (not windowed)."""
        return self.doc.encode_for_embedding(self.segments(x, index), self.max_tokens)

    def encode(self, inputs: Sequence[Any]) -> list[Encoded]:
        """Each input's id sequences, as omniembed.runtime.Embedder.encode gives them."""
        return encode_inputs(list(inputs), self.doc, max_tokens=self.max_tokens, windowing=self.windowing,
                             sample_rate=self.sample_rate, video_fps=self.video_fps, modalities=self.modalities,
                             image_side=self.image_side)

    # ---- the verbs --------------------------------------------------------------------------------------
    def embed(self, inputs: Any | Sequence[Any], dim: int | None = None) -> np.ndarray:
        """(N, dim) float32 L2-normalised vectors; a single input (not a list of inputs) gives (1, dim). Long
        audio and video are embedded window by window and pooled, as the runtime does.

        A list is a list of inputs; wrap an interleaved document in a list inside it: [[text, image]]."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        dim = self._dim(dim)
        encoded = self.encode(items)
        full = self.embed_ids([ids for e in encoded for ids in e.ids])
        pooled_rows = pooled(encoded, full)[:, :dim]
        return pooled_rows / np.maximum(np.linalg.norm(pooled_rows, axis=1, keepdims=True), 1e-12)

    def _dim(self, dim: int | None) -> int:
        full = max(self.dims)
        dim = full if dim is None else int(dim)
        if not 0 < dim <= full:
            raise ValueError(f"dim={dim}: must be in 1..{full} (trained Matryoshka dims {self.dims})")
        return dim

    @torch.no_grad()
    def embed_ids(self, rows: Sequence[Sequence[int]], dim: int | None = None) -> np.ndarray:
        """Vectors for ready-made id sequences, batched by similar length so little padding is computed."""
        dim = self._dim(dim)
        out = np.zeros((len(rows), dim), dtype=np.float32)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths share a batch
        device = next(self.model.parameters()).device
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            ids, mask = (torch.from_numpy(a).to(device) for a in pad_right([rows[i] for i in idx], self.pad))
            raw = self.model.embed_raw(ids, mask).float()[:, :dim]
            out[idx] = F.normalize(raw, dim=-1).cpu().numpy()
        return out

    @torch.no_grad()
    def caption(self, media: Any, max_new_tokens: int = 24) -> str:
        """Greedy text from the next-token head after the media block (output restricted to text ids)."""
        segments = self.segments(media)
        if len(segments) != 1 or isinstance(segments[0], TextSegment):
            raise MediaError("<caption input>", "caption() needs one image, sound or video")
        prompt = self.doc.encode(segments, eos=False)
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
