"""`ModelConfig`: the shape and recipe of the trunk and its heads; one dataclass with defaults that run.

The values of a run come from the `model` section of its training config (omniembed/configs/*.yaml, or a
YAML path); the vocabulary-derived fields (vocab_size, pad_id, image_ids, image_tokens) come from the
tokenizers through `config_for_vocabulary`, never from a file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from omniembed.errors import ConfigError

POOLINGS = ("last", "mean")
CODE_FEATURES = ("none", "add", "replace")
EMBED_ATTENTIONS = ("causal", "bidirectional")
# keys of a config's model section that are not ModelConfig fields: which model to build
BUILD_KEYS = ("kind",)
# fields set from the Vocabulary, not from the config
VOCABULARY_KEYS = ("vocab_size", "pad_id", "image_ids", "image_tokens")
# what a run's train.yaml records of the model as built, beside the configured keys: the vocabulary's fields,
# and for late fusion its id ranges and matched tower shape. A config may hold them (a train.yaml reused as a
# config, or resumed); they are derived again and must agree, so they never set anything themselves.
DERIVED_KEYS = (*VOCABULARY_KEYS, "starts", "towers")


@dataclass
class ModelConfig:
    vocab_size: int = 0  # from Vocabulary.size; 0 means "not set yet" and fails validation
    pad_id: int = 0
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    ffn_mult: float = 8 / 3  # SwiGLU hidden = ffn_mult * d_model, rounded up to a multiple of 16
    max_len: int = 256
    embed_dims: tuple[int, ...] = (16, 32, 64)
    pooling: str = "last"
    embed_attention: str = "bidirectional"
    dropout: float = 0.0
    tie_embeddings: bool = True
    z_loss_weight: float = 1e-4
    init_std: float = 0.02
    rope_theta: float = 10000.0
    init_temperature: float = 0.07
    learn_temperature: bool = True
    # A learned embedding per image grid cell, added to image-code tokens (images and video frames): RoPE
    # gives each token only its offset along the flat sequence, from which a small trunk is slow to learn
    # which row and column a code came from. image_ids is the vocabulary's image-code id range and
    # image_tokens the codes per image; both come from the tokenizers (config_for_vocabulary, train).
    grid_position: bool = False
    image_ids: tuple[int, int] = (0, 0)
    image_tokens: int = 0
    # Media codes can enter the trunk as their tokenizer's codebook vectors through one learned linear map
    # (omniembed.model.code_init.set_code_features) instead of a free embedding row each: codes that look or
    # sound alike get alike inputs for good, where free rows let a small trunk memorise which codes each
    # training item has (bench/results/spoken_digits_sweep.md). The rows stay the tied LM head's outputs.
    # "replace": the codes enter by the table alone; "add": by the table plus their own rows; "none" (or false):
    # by their own rows only. code_feature_dim: the table's width, half for image codes and half for audio.
    code_features: str = "none"
    code_feature_dim: int = 96
    # In training, each image code's input (its row and code features) is zeroed with this chance, its grid
    # cell kept: an image is then known by what its codes share with others of its kind, not by the exact 16
    # codes a training image happens to have (bench/results/image_dropout.md: 0.1 lifts the pairs that start
    # from an image). Audio codes, a few per spoken word, lost recall under the same treatment, so only image
    # codes (images and video frames) are dropped.
    image_dropout: float = 0.0

    def __post_init__(self):
        self.embed_dims = tuple(int(d) for d in self.embed_dims)
        self.image_ids = tuple(int(i) for i in self.image_ids)
        if self.code_features is False:  # `model.code_features=false` on a command line
            self.code_features = "none"
        self.validate()

    def validate(self) -> None:
        def bad(key, why):
            raise ConfigError(f"model config {key}={getattr(self, key)!r}: {why}")

        if self.vocab_size < 0:
            bad("vocab_size", "must be positive (Vocabulary.size)")
        if self.vocab_size and not 0 <= self.pad_id < self.vocab_size:
            bad("pad_id", f"must be an id in [0, {self.vocab_size})")
        if self.d_model <= 0 or self.n_heads <= 0 or self.d_model % self.n_heads:
            bad("d_model", f"must be a positive multiple of n_heads={self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            bad("n_heads", "head size d_model/n_heads must be even for RoPE")
        if self.n_layers <= 0 or self.max_len <= 0:
            bad("n_layers" if self.n_layers <= 0 else "max_len", "must be positive")
        dims = self.embed_dims
        if not dims or any(d <= 0 for d in dims) or list(dims) != sorted(set(dims)):
            bad("embed_dims", "must be a non-empty strictly increasing tuple of positive ints")
        if self.pooling not in POOLINGS:
            bad("pooling", f"must be one of {POOLINGS}")
        if self.embed_attention not in EMBED_ATTENTIONS:
            bad("embed_attention", f"must be one of {EMBED_ATTENTIONS}")
        number = isinstance(self.dropout, (int, float)) and not isinstance(self.dropout, bool)
        if not number or not 0.0 <= self.dropout < 1.0:
            bad("dropout", f"must be a number in [0, 1) or \"auto\" (got {self.dropout!r})")
        if not 0.0 <= self.image_dropout < 1.0:
            bad("image_dropout", "must be in [0, 1)")
        if self.code_features not in CODE_FEATURES:
            bad("code_features", f"must be one of {CODE_FEATURES}")
        if self.code_feature_dim < 2 or self.code_feature_dim % 2:
            bad("code_feature_dim", "must be an even number >= 2 (half of it per media modality)")
        if self.init_temperature <= 0:
            bad("init_temperature", "must be positive")
        if self.grid_position and (self.image_tokens <= 0 or len(self.image_ids) != 2
                                   or not 0 <= self.image_ids[0] < self.image_ids[1]):
            bad("grid_position", f"needs image_tokens > 0 (got {self.image_tokens}) and an image id range "
                                 f"(got {self.image_ids}): build the config with config_for_vocabulary")

    def require_vocab(self) -> None:
        if self.vocab_size <= 0:
            raise ConfigError("model config vocab_size is not set: pass Vocabulary.size (e.g. vocab_size=...)")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def ffn_hidden(self) -> int:
        return 16 * math.ceil(self.ffn_mult * self.d_model / 16)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["embed_dims"] = list(self.embed_dims)
        out["image_ids"] = list(self.image_ids)
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str = "model config") -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown keys {unknown}; known keys are {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as exc:  # e.g. a list where a number belongs
            raise ConfigError(f"{source}: {exc}") from exc


def model_section(model: str | Path | dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(ModelConfig keys, a name for errors) of a training config's model section: a packaged config name, a
    YAML path, or the section itself as a dict. The build keys (kind) and the late-fusion records (starts,
    towers) are left out."""
    if isinstance(model, dict):
        data, source = dict(model), "model config"
    else:
        from omniembed import configs

        data, source = configs.section(model, "model")
    for key in (*BUILD_KEYS, "starts", "towers"):
        data.pop(key, None)
    return data, source


def auto_dropout(captioned: bool) -> float:
    """What `model.dropout: auto` becomes: 0.05 where some training items have a text view, 0.1 where none
    does. Without captions nothing names the attributes both views share, and a pair such as image+audio
    memorises its training combinations: on the synthetic world's image+audio views held-out image->audio R@1
    0.894 at 0.05 and 0.912 at 0.1, where text+image drops to 0.875 at 0.1 (bench/results/own_data.md)."""
    return AUTO_DROPOUT[bool(captioned)]


AUTO_DROPOUT = {True: 0.05, False: 0.1}


def load_model_config(model: str | Path | dict[str, Any], **overrides) -> ModelConfig:
    """The ModelConfig of a config's model section (see model_section), with keyword overrides.
    `dropout: auto` is resolved by the training data in train (auto_dropout); without it, here, as for
    captioned data."""
    data, source = model_section(model)
    data.update(overrides)
    if data.get("dropout") == "auto":
        data["dropout"] = auto_dropout(True)
    return ModelConfig.from_dict(data, source=source)


def config_for_vocabulary(model: str | Path | dict[str, Any], vocab, image_tokens: int = 0,
                          **overrides) -> ModelConfig:
    """A model section sized to a `omniembed.tokenization.vocab.Vocabulary` (its `.size`, `<pad>` id and image
    code range); image_tokens is the image tokenizer's codes per image (needed by grid_position). Vocabulary
    fields the section already holds (a run's train.yaml) must be the ones the vocabulary gives."""
    data, source = model_section(model)
    r = vocab.image_range
    derived = {"vocab_size": vocab.size, "pad_id": vocab.special("<pad>"), "image_ids": (r.start, r.stop),
               "image_tokens": image_tokens}
    for key in VOCABULARY_KEYS:
        if key in data:
            given = data.pop(key)
            if not _same(given, derived[key]):
                raise ConfigError(f"{source}: model.{key}={given!r} but the tokenizers' vocabulary gives "
                                  f"{derived[key]!r}: it comes from the tokenizers; remove it from the config")
    return load_model_config(data, **derived, **overrides)


def _same(given: Any, derived: Any) -> bool:
    return list(given) == list(derived) if isinstance(derived, tuple) else given == derived
