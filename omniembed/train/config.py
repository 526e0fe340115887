"""The training config of `python -m omniembed.train`: one YAML file of sections, `key=value` overrides.

    seed: 0
    tokenizers: null          # a trained tokenizer directory to reuse; null trains them into RUN_DIR/tokenizers
    data:      {manifest, heldout, synth_*, ...}   (DataConfig)
    tokenizer: {image_size, image_grid, ...}       (TokenizerConfig: the tokenizers stage 1 trains)
    model:     {kind, d_model, n_layers, ...}      (ModelConfig keys, and kind: early | late)
    train:     {...TrainConfig keys}               (optimizer, schedule, loss weights, precision)
    loop:      {steps, pair_batch, ...}            (LoopConfig: batches, mixing, eval and checkpoint cadence)
    eval:      {hit, label}                        (EvalConfig: what counts as a hit, omniembed.eval.hits)

Each setting has one home: a key left out of a section takes its dataclass default, and nothing else in
the file or the package sets it. The configs shipped in omniembed/configs/ are loaded by name (`small`).
Overrides use dotted keys and YAML values: `loop.steps=200 train.lr=1e-3 data.manifest=DIR/manifest.jsonl`.
Every unknown key is a ConfigError naming it and the keys that exist.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from omniembed.errors import ConfigError
from omniembed.model.config import BUILD_KEYS, DERIVED_KEYS, VOCABULARY_KEYS, ModelConfig
from omniembed.model.factory import MODEL_KINDS
from omniembed.tokenization.config import TokenizerConfig
from omniembed.train.trainer import TrainConfig

SECTIONS = ("data", "tokenizer", "model", "train", "loop", "eval")
TOP_LEVEL = ("seed", "tokenizers", *SECTIONS)
MODALITIES = ("text", "image", "audio", "video", "interleaved")


@dataclass
class DataConfig:
    manifest: str | None = None  # manifest.jsonl; None: generate a synthetic world into RUN_DIR/world
    heldout: str | None = None  # held-out manifest; None: heldout.jsonl beside the manifest, if present
    corpus_cache: str | None = None  # where the tokenized corpus is cached; None: RUN_DIR (keyed by content)
    synth_n: int = 48  # synthetic world size when no manifest is given
    synth_seed: int = 0
    synth_video: str = "mp4"  # mp4 | webm | none
    max_view_tokens: int = 256  # a view longer than this is cut (its <embed> kept)
    lm_max_len: int = 256  # LM sequences are cropped to this many tokens
    caption_sequences: bool = True  # add "<image> codes </image> caption" LM sequences (and audio, video)
    caption_loss: str = "text"  # on caption sequences the next-token loss counts: "text" (the caption) | "all"
    workers: int | None = None  # processes that decode and tokenize media for the corpus; None: the CPUs, up to 8
    # audio and video longer than 1.5 windows are embedded window by window and pooled (training draws a window
    # per step); None: the median training clip length, capped to fit max_view_tokens (tokenization.windows)
    window_seconds: float | None = None
    window_stride: float | None = None  # None: half the window
    # streamed training (omniembed.train.streaming): shards (a file, brace pattern, folder, list, pipe:CMD), or
    # stream: true to stream data.manifest instead of tokenizing it into memory first
    shards: str | list[str] | None = None
    stream: bool = False
    # DataLoader processes per rank that read, decode and tokenize the stream; None: the CPUs a rank can spare
    # (CPUs / ranks on this node - loop.threads, at least 1, at most 8)
    loader_workers: int | None = None
    shuffle_buffer: int = 1000  # raw records per worker held for shuffling (memory: this many records' bytes)
    record_ids: bool = False  # write the ids each streamed step trained on to RUN_DIR/stream-ids-rank<r>.jsonl
    # records the tokenizers learn from: a seeded sample of whole read units (0: all). The demo's worlds fit whole
    tokenizer_sample: int = 20000


@dataclass
class LoopConfig:
    steps: int = 20
    pair_batch: int = 16  # items per contrastive batch (two views each)
    lm_batch: int = 8  # sequences per next-token batch
    lm_every: int = 1  # an LM batch every k steps (0: never)
    # relative frequency of each modality pair in the contrastive batches ("a-b", unordered)
    pair_weights: dict[str, float] = field(default_factory=lambda: {
        "text-image": 1.0, "text-audio": 1.0, "text-video": 1.0, "image-audio": 1.0,
        "image-video": 0.5, "audio-video": 0.5, "interleaved-text": 0.5})
    # share of each contrastive batch filled with "near misses": items whose attributes differ from an
    # item already in the batch in exactly one value (hard negatives). 0: plain random batches. Items
    # without attributes (a manifest that gives none) always come from the plain random order.
    hard_negatives: float = 0.0
    # share of steps whose contrastive batch holds every view in multiview_views of each item (one pass per
    # view, the loss over every pair among them weighted by pair_weights) instead of one pair of views
    multiview: float = 0.0
    multiview_views: list[str] = field(default_factory=lambda: ["text", "image", "audio", "video"])
    eval_every: int = 0  # 0: evaluate at the end only
    eval_captions: int = 32  # held-out images to caption at each evaluation (0: none)
    caption_tokens: int = 24
    ckpt_every: int = 0  # 0: checkpoint at the end only
    log_every: int = 10
    threads: int = 2  # torch threads (per process, with processes > 1)
    # CPU data parallelism: above 1, `python -m omniembed.train` prepares the data, then runs itself as this
    # many DDP ranks under torchrun (the same global batches, split; GPUs: run torchrun yourself)
    processes: int = 1


@dataclass
class EvalConfig:
    # what counts as a hit in held-out recall (omniembed.eval.hits): auto | attributes | label | instance
    hit: str = "auto"
    label: str | None = None  # with hit label (or auto): the attribute whose value must match, e.g. digit

    def training_label(self) -> str | None:
        """The label training groups items by (items of one label are not negatives), when the rule uses it."""
        from omniembed.eval.hits import resolve_rule

        return self.label if resolve_rule(self.hit, self.label, ()) == "label" else None


@dataclass
class RunConfig:
    seed: int = 0
    tokenizers: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: dict[str, Any] = field(default_factory=dict)  # kind + ModelConfig keys; the rest from the vocabulary
    train: TrainConfig = field(default_factory=TrainConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["train"].pop("total_steps")  # loop.steps is the one setting of it
        out["train"]["matryoshka_dims"] = (None if self.train.matryoshka_dims is None
                                           else list(self.train.matryoshka_dims))
        return out


def _numbers(cls, data: dict, name: str) -> dict:
    """YAML 1.1 reads `1e-3` (no dot) as a string: turn such strings into the field's number type."""
    out = dict(data)
    for f in fields(cls):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        value = out.get(f.name)
        if kind in ("float", "int") and isinstance(value, str):
            try:
                out[f.name] = float(value) if kind == "float" else int(value)
            except ValueError:
                raise ConfigError(f"{name}.{f.name}={value!r}: not a number") from None
    return out


def _section(cls, data: Any, name: str):
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"config section {name!r}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"config section {name!r}: unknown keys {unknown}; known keys are {sorted(known)}")
    try:
        return cls(**_numbers(cls, data, name))
    except TypeError as exc:
        raise ConfigError(f"config section {name!r}: {exc}") from exc


def from_dict(data: dict, source: str = "train config") -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(f"{source}: unknown keys {unknown}; known keys are {sorted(TOP_LEVEL)}")
    train = data.get("train") or {}
    if not isinstance(train, dict):
        raise ConfigError(f"{source}: section 'train' must be a mapping")
    if "total_steps" in train:
        raise ConfigError(f"{source}: train.total_steps is loop.steps (the schedule runs over the loop's steps): "
                          "set loop.steps")
    tokenizer = data.get("tokenizer") or {}
    if not isinstance(tokenizer, dict):
        raise ConfigError(f"{source}: section 'tokenizer' must be a mapping of TokenizerConfig keys")
    cfg = RunConfig(
        seed=int(data.get("seed", 0)),
        tokenizers=data.get("tokenizers"),
        data=_section(DataConfig, data.get("data"), "data"),
        tokenizer=TokenizerConfig.from_dict(_numbers(TokenizerConfig, tokenizer, "tokenizer"),
                                            source=f"{source}: section 'tokenizer'"),
        model=_model_section(data.get("model"), source),
        train=TrainConfig.from_dict(_numbers(TrainConfig, train, "train")),
        loop=_section(LoopConfig, data.get("loop"), "loop"),
        eval=_section(EvalConfig, data.get("eval"), "eval"),
    )
    validate(cfg)
    return cfg


def _model_section(data: Any, source: str) -> dict[str, Any]:
    """The model section checked up front (keys, kind, values), so a typo fails before any data stage runs."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: section 'model' must be a mapping of ModelConfig keys")
    known = {f.name for f in fields(ModelConfig)} - set(VOCABULARY_KEYS)
    unknown = sorted(set(data) - known - set(BUILD_KEYS) - set(DERIVED_KEYS))
    if unknown:
        raise ConfigError(f"config section 'model': unknown keys {unknown}; known keys are "
                          f"{sorted(known | set(BUILD_KEYS))} (and, as a run records them, {list(DERIVED_KEYS)})")
    if data.get("kind", "early") not in MODEL_KINDS:
        raise ConfigError(f"model.kind={data['kind']!r}: must be one of {MODEL_KINDS}")
    auto = data.get("dropout") == "auto"  # resolved by the training data (omniembed.train.loop.with_auto_dropout)
    model = _numbers(ModelConfig, {k: v for k, v in data.items() if k in known and not (auto and k == "dropout")},
                     "model")
    # the values' own checks, on a stand-in vocabulary (the real one exists only after stage 1)
    ModelConfig.from_dict({**model, "image_tokens": 1, "image_ids": (0, 1)}, source=f"{source}: section 'model'")
    if auto:
        model["dropout"] = "auto"
    return {**model, **{k: data[k] for k in (*BUILD_KEYS, *DERIVED_KEYS) if k in data}}


def validate(cfg: RunConfig) -> None:
    loop = cfg.loop
    for key in ("steps", "pair_batch", "lm_batch", "threads", "processes"):
        if getattr(loop, key) < 1:
            raise ConfigError(f"loop.{key}={getattr(loop, key)}: must be >= 1")
    for key in ("lm_every", "eval_every", "ckpt_every", "eval_captions", "caption_tokens"):
        if getattr(loop, key) < 0:
            raise ConfigError(f"loop.{key}={getattr(loop, key)}: must be >= 0")
    if not 0.0 <= loop.hard_negatives < 1.0:
        raise ConfigError(f"loop.hard_negatives={loop.hard_negatives}: must be in [0, 1) (a share of each batch)")
    if not 0.0 <= loop.multiview <= 1.0:
        raise ConfigError(f"loop.multiview={loop.multiview}: must be in [0, 1] (a share of the steps)")
    if len(set(loop.multiview_views)) < 2 or not set(loop.multiview_views) <= set(MODALITIES):
        raise ConfigError(f"loop.multiview_views={loop.multiview_views}: needs two or more of {MODALITIES}")
    if not loop.pair_weights or any(w < 0 for w in loop.pair_weights.values()) \
            or sum(loop.pair_weights.values()) <= 0:
        raise ConfigError(f"loop.pair_weights={loop.pair_weights}: needs non-negative weights, not all zero")
    for pair in loop.pair_weights:
        parts = pair.split("-")
        if len(parts) != 2 or parts[0] == parts[1] or not set(parts) <= set(MODALITIES):
            raise ConfigError(f"loop.pair_weights key {pair!r}: must be 'a-b' with two different modalities "
                              f"of {MODALITIES}")
    from omniembed.eval.hits import HIT_RULES

    if cfg.eval.hit not in HIT_RULES:
        raise ConfigError(f"eval.hit={cfg.eval.hit!r}: must be one of {HIT_RULES}")
    if cfg.eval.hit == "label" and not cfg.eval.label:
        raise ConfigError("eval.hit=label needs eval.label, the attribute whose value must match (e.g. digit)")
    if cfg.data.synth_video not in ("mp4", "webm", "none"):
        raise ConfigError(f"data.synth_video={cfg.data.synth_video!r}: must be mp4, webm or none")
    if cfg.data.caption_loss not in ("text", "all"):
        raise ConfigError(f"data.caption_loss={cfg.data.caption_loss!r}: must be 'text' or 'all'")
    if cfg.data.workers is not None and cfg.data.workers < 1:
        raise ConfigError(f"data.workers={cfg.data.workers}: must be >= 1 (or null: one per CPU, up to 8)")
    w, st = cfg.data.window_seconds, cfg.data.window_stride
    if (w is not None and w <= 0) or (st is not None and (st <= 0 or (w is not None and st > w))):
        raise ConfigError(f"data.window_seconds={w}, data.window_stride={st}: need 0 < stride <= window")
    if (cfg.data.loader_workers or 0) < 0 or cfg.data.shuffle_buffer < 1 or cfg.data.tokenizer_sample < 0:
        raise ConfigError(f"data.loader_workers={cfg.data.loader_workers} must be >= 0, data.shuffle_buffer="
                          f"{cfg.data.shuffle_buffer} >= 1 and data.tokenizer_sample={cfg.data.tokenizer_sample} >= 0")
    if cfg.data.shards is not None and cfg.data.stream:
        raise ConfigError("data.shards streams the shards; data.stream=true streams data.manifest: set one")
    if cfg.data.max_view_tokens < 4 or cfg.data.lm_max_len < 4:
        raise ConfigError("data.max_view_tokens and data.lm_max_len must be >= 4")


def apply_override(data: dict, item: str) -> None:
    """`a.b=value` into nested dicts; the value is parsed as YAML (numbers, lists, null...)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value (e.g. loop.steps=100)")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {item!r}: empty key part")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
    node = data
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {item!r}: {p!r} is not a section")
        node = nxt
    node[parts[-1]] = value


def load_dict(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """The config's mapping (a packaged name such as `small`, or a YAML path) with the overrides applied."""
    from omniembed import configs

    data = copy.deepcopy(configs.load(path)) if path is not None else {}
    for item in overrides:
        apply_override(data, item)
    return data


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    source = "train config"
    if path is not None:
        from omniembed import configs

        source = str(configs.resolve(path))
    return from_dict(load_dict(path, overrides), source=source)
