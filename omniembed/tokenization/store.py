"""A trained tokenizer directory: save and load the text BPE, image VQ-VAE and audio VQ together.

Layout of TOKDIR:
    tokenizer.json   text byte-level BPE (omniembed.tokenization.text.TextTokenizer)
    image_vq.pt      {"format", "kind": "image", "config", "state_dict"} of the ImageTokenizer
    audio_vq.pt      same for the AudioTokenizer (its state includes the learned mel mean/std)
    tokenizers.yaml  the TokenizerConfig used
    report.json      what training measured (reconstruction, baselines, codebook usage, timings)
Every file is written to a temporary name and renamed, so a reader never sees a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from omniembed.errors import ConfigError
from omniembed.tokenization.audio import AudioTokenizer
from omniembed.tokenization.config import TokenizerConfig
from omniembed.tokenization.image import ImageTokenizer
from omniembed.tokenization.text import TextTokenizer

TEXT_FILE = "tokenizer.json"
IMAGE_FILE = "image_vq.pt"
AUDIO_FILE = "audio_vq.pt"
CONFIG_FILE = "tokenizers.yaml"
REPORT_FILE = "report.json"
FORMAT_VERSION = 1
ALL_MODALITIES = ("text", "image", "audio", "video")


@dataclass
class Tokenizers:
    text: TextTokenizer
    image: ImageTokenizer
    audio: AudioTokenizer
    config: TokenizerConfig
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        """The input modalities these tokenizers learned to encode (all four where the report predates the field)."""
        return list(self.report.get("modalities", ALL_MODALITIES))


def _replace_into(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _save_model(path: Path, kind: str, model: torch.nn.Module, config: TokenizerConfig) -> None:
    payload = {"format": FORMAT_VERSION, "kind": kind, "config": config.to_dict(), "state_dict": model.state_dict()}
    _replace_into(path, lambda tmp: torch.save(payload, tmp))


def save_tokenizers(directory: str | os.PathLike, text_tokenizer_path: str | os.PathLike | TextTokenizer,
                    image_tok: ImageTokenizer, audio_tok: AudioTokenizer, config: TokenizerConfig,
                    report: dict[str, Any] | None = None) -> Path:
    """Write the five files of a tokenizer directory; returns the directory."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(text_tokenizer_path, TextTokenizer):
        text_tokenizer_path.save(out / TEXT_FILE)
    else:
        src = Path(text_tokenizer_path)
        if not src.is_file():
            raise FileNotFoundError(f"{src}: text tokenizer file to save does not exist")
        if src.resolve() != (out / TEXT_FILE).resolve():
            _replace_into(out / TEXT_FILE, lambda tmp: shutil.copyfile(src, tmp))
    _save_model(out / IMAGE_FILE, "image", image_tok, config)
    _save_model(out / AUDIO_FILE, "audio", audio_tok, config)
    _replace_into(out / CONFIG_FILE, config.to_yaml)
    _replace_into(out / REPORT_FILE, lambda tmp: tmp.write_text(json.dumps(report or {}, indent=2) + "\n"))
    return out


def _load_model(path: Path, kind: str, cls):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a tokenizer directory holds {TEXT_FILE}, {IMAGE_FILE}, "
                                f"{AUDIO_FILE}, {CONFIG_FILE}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("kind") != kind or payload.get("format") != FORMAT_VERSION:
        raise ConfigError(f"{path}: not an omniembed {kind} tokenizer checkpoint (format {FORMAT_VERSION})")
    model = cls(TokenizerConfig.from_dict(payload["config"], source=str(path)))
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def load_tokenizers(directory: str | os.PathLike) -> Tokenizers:
    """Load a directory written by save_tokenizers; the models come back in eval mode on CPU."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such tokenizer directory")
    config = TokenizerConfig.from_yaml(root / CONFIG_FILE)
    report_path = root / REPORT_FILE
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return Tokenizers(
        text=TextTokenizer.load(root / TEXT_FILE),
        image=_load_model(root / IMAGE_FILE, "image", ImageTokenizer),
        audio=_load_model(root / AUDIO_FILE, "audio", AudioTokenizer),
        config=config,
        report=report,
    )
