"""Captions of retrieved media from the trained model's own next-token head.

The exported ONNX bundle the service runs holds only the embedding graph (trunk + Matryoshka head), not the
next-token head, so captions come from the torch model of the training run (omniembed.embed.Embedder).
This is the one part of the example that needs torch.
"""

from __future__ import annotations

import re
from pathlib import Path


def tidy(caption: str) -> str:
    """Greedy decoding of a small model loops ("big big big", ",,,,"): keep one of each run of a repeated
    word or punctuation mark, so the prompt carries what the model said once, not 24 times. A caption with
    no letters left is empty."""
    words: list[str] = []
    for w in re.sub(r"([^\w\s])\1+", r"\1", caption).split():
        if not words or w.lower() != words[-1].lower():
            words.append(w)
    text = " ".join(words)
    return text if re.search(r"[^\W\d_]", text) else ""


class Captioner:
    """Greedy captions from RUN_DIR's model, cached by file path (a file retrieved twice is captioned once)."""

    def __init__(self, run_dir: str | Path, max_new_tokens: int = 24, threads: int = 2):
        import torch

        from omniembed.model.embedder import TorchEmbedder
        from omniembed.train.rundir import load_run

        torch.set_num_threads(threads)
        self.run_dir = Path(run_dir)
        self.embedder = TorchEmbedder.from_run(load_run(run_dir))
        self.max_new_tokens = max_new_tokens
        self._cache: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        path = Path(path).resolve()
        if path not in self._cache:
            self._cache[path] = tidy(self.embedder.caption(path, self.max_new_tokens))
        return self._cache[path]
