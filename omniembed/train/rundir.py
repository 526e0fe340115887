"""A training run directory: its layout, and reading it back as the trained model with the tokenizers and
vocabulary it was trained with.

    run = load_run("runs/small")
    run.model        # OmniModel, eval mode, fp32, on CPU
    run.tokenizers   # omniembed.tokenization.store.Tokenizers (text, image, audio, config)
    run.vocab        # omniembed.tokenization.vocab.Vocabulary
    run.config       # RUN_DIR/train.yaml as a dict (run.config["model"] is the full ModelConfig)
    run.document_tokenizer()  # a DocumentTokenizer over the three, at the tokenizers' video_fps

Written by `python -m omniembed.train`: train.yaml (the resolved config), tokenizers/, vocab.json,
checkpoint.pt, steps.jsonl, eval.jsonl, train.log, tb/, and the tokenized corpus (corpus.npz, corpus.json).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from omniembed.errors import ConfigError

CONFIG_FILE, CHECKPOINT_FILE, TOKENIZER_DIR, VOCAB_FILE = "train.yaml", "checkpoint.pt", "tokenizers", "vocab.json"
EVAL_FILE, LOG_FILE, WINDOWS_FILE = "eval.jsonl", "train.log", "windows.json"
THROUGHPUT_FILE = "throughput.json"  # tokens/s and MFU of the whole loop (omniembed.train.throughput)
STEPS_FILE = "steps.jsonl"  # one line per applied step: step, loss, the loss terms, lr, pair, seconds into the loop


@dataclass
class Run:
    model: Any  # omniembed.model.OmniModel (or the late-fusion baseline)
    tokenizers: Any  # omniembed.tokenization.store.Tokenizers
    vocab: Any  # omniembed.tokenization.vocab.Vocabulary
    config: dict
    root: Path
    step: int = 0
    windows: dict | None = None  # RUN_DIR/windows.json: the embedding windows of long media

    def windowing(self):
        from omniembed.tokenization.windows import Windowing

        return Windowing.from_dict(self.windows) if self.windows else None

    def document_tokenizer(self):
        from omniembed.tokenization.document import DocumentTokenizer

        t = self.tokenizers
        return DocumentTokenizer(self.vocab, t.text, t.image, t.audio, video_fps=t.config.video_fps)


def load_run(run_dir: str | Path, device: str = "cpu") -> Run:
    """The model of RUN_DIR/checkpoint.pt in eval mode (fp32), with its tokenizers and vocabulary."""
    import torch

    from omniembed.model import model_from_dict
    from omniembed.tokenization.store import load_tokenizers
    from omniembed.tokenization.vocab import Vocabulary
    from omniembed.train.checkpoint import load_model_state

    root = Path(run_dir)
    for name in (CONFIG_FILE, CHECKPOINT_FILE, TOKENIZER_DIR):
        if not (root / name).exists():
            raise ConfigError(f"{root}: not a training run directory (missing {name}; "
                              "write one with omniembed train)")
    config = yaml.safe_load((root / CONFIG_FILE).read_text()) or {}
    # kind early (OmniModel) or late (LateFusionModel), from train.yaml's model section
    model = model_from_dict(config.get("model") or {}, source=str(root / CONFIG_FILE))
    model_cfg = model.cfg
    tokenizers = load_tokenizers(root / TOKENIZER_DIR)
    vocab = Vocabulary(tokenizers.text.vocab_size, int(tokenizers.image.codebook_size),
                       int(tokenizers.audio.codebook_size))
    if (root / VOCAB_FILE).is_file():
        vocab = Vocabulary.load(root / VOCAB_FILE)
    if vocab.size != model_cfg.vocab_size:
        raise ConfigError(f"{root}: the tokenizers give a vocabulary of {vocab.size} ids but the model was "
                          f"trained with vocab_size={model_cfg.vocab_size}")
    payload = load_model_state(root / CHECKPOINT_FILE, model)  # plain, or FSDP's sharded folder
    model = model.float().to(torch.device(device)).eval()
    windows = json.loads((root / WINDOWS_FILE).read_text()) if (root / WINDOWS_FILE).is_file() else None
    return Run(model=model, tokenizers=tokenizers, vocab=vocab, config=config, root=root, step=payload["step"],
               windows=windows)


def heldout_records(config: dict, run_dir: str | Path) -> tuple[list, str]:
    """(the held-out records of a run, where they came from): its held-out manifest (data.heldout, else
    heldout.jsonl beside the training manifest) plus the training manifest's records marked split=heldout."""
    from omniembed.data.manifest import load_manifest

    run_dir = Path(run_dir)
    data = config.get("data") or {}
    manifest = Path(data["manifest"]) if data.get("manifest") else run_dir / "world" / "manifest.jsonl"
    heldout = Path(data["heldout"]) if data.get("heldout") else manifest.with_name("heldout.jsonl")
    records = load_manifest(heldout) if heldout.is_file() else []
    if manifest.is_file():
        records += [r for r in load_manifest(manifest) if r.split == "heldout"]
    if not records:
        raise ConfigError(f"{run_dir}: no held-out records (looked in {heldout} and {manifest}); pass --manifest")
    return records, str(heldout if heldout.is_file() else manifest)
