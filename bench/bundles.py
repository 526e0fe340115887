"""Bundles for tests and benchmarks: an exported run with its torch objects beside it (exported_run), or a
freshly initialised model with quickly trained tokenizers (fresh_components) when no trained run exists.

Parity between ONNX Runtime and torch needs the same weights on both sides, not trained ones; the
tokenizers are trained (quickly, with the tiny config's tokenizer section) so their codes are spread over
the codebooks as in real use rather than piled on a few codes of a random codebook.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

@dataclass
class Components:
    model: Any  # OmniModel, eval, fp32
    tokenizers: Any  # omniembed.tokenization.store.Tokenizers
    vocab: Any  # Vocabulary

    def document_tokenizer(self):
        from omniembed.tokenization.document import DocumentTokenizer

        t = self.tokenizers
        return DocumentTokenizer(self.vocab, t.text, t.image, t.audio, video_fps=t.config.video_fps)


def fresh_components(manifest: str | os.PathLike, tokenizer_dir: str | os.PathLike, *, model: str = "tiny",
                     tokenizer_config: str | os.PathLike = "tiny",
                     tokenizer_overrides: list[str] | None = None, seed: int = 0, **model_overrides) -> Components:
    """Train tokenizers on `manifest` into `tokenizer_dir` (reused when already there; `tokenizer_overrides`
    are key=value strings such as "image_steps=20"), then a fresh OmniModel of the named config's model section
    sized to their vocabulary (`model_overrides` go to its config)."""
    from omniembed.model import OmniModel, config_for_vocabulary
    from omniembed.tokenization.config import TokenizerConfig
    from omniembed.tokenization.store import load_tokenizers
    from omniembed.tokenization.train import train_tokenizers
    from omniembed.tokenization.vocab import Vocabulary

    tokenizer_dir = Path(tokenizer_dir)
    if not (tokenizer_dir / "tokenizers.yaml").is_file():
        train_tokenizers(manifest, tokenizer_dir, TokenizerConfig.from_yaml(tokenizer_config, tokenizer_overrides))
    toks = load_tokenizers(tokenizer_dir)
    vocab = Vocabulary(toks.text.vocab_size, int(toks.image.codebook_size), int(toks.audio.codebook_size))
    torch.manual_seed(seed)
    net = OmniModel(config_for_vocabulary(model, vocab, image_tokens=int(toks.image.tokens_per_image),
                                          **model_overrides)).eval()
    return Components(net, toks, vocab)


@dataclass
class FreshBundle:
    """An exported bundle with the torch objects it came from; usable wherever a bundle path is (os.PathLike)."""

    path: Path
    components: Components
    max_tokens: int
    run_dir: Path | None = None

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @property
    def model(self):
        return self.components.model

    @property
    def tokenizers(self):
        return self.components.tokenizers

    @property
    def vocab(self):
        return self.components.vocab

    def document_tokenizer(self):
        return self.components.document_tokenizer()


def exported_run(bundle_dir: str | os.PathLike, run_dir: str | os.PathLike) -> FreshBundle:
    """A bundle exported from RUN_DIR, with the run's torch objects (omniembed.train.rundir.load_run) beside it."""
    from omniembed.train.rundir import load_run
    from omniembed.runtime.bundle import read_manifest

    run = load_run(run_dir)
    max_tokens = int(read_manifest(bundle_dir, verify=False)["document"]["max_tokens"])
    return FreshBundle(Path(bundle_dir), Components(run.model, run.tokenizers, run.vocab), max_tokens, Path(run_dir))
