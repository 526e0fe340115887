"""`TokenizerConfig`: every knob of the image, audio and text tokenizers and of their training stage.

One dataclass with defaults that run. Its values come from the `tokenizer` section of a training config
(a packaged name such as `small`, or a YAML path), or from a YAML of these keys alone (a tokenizer
directory's tokenizers.yaml); `key=value` overrides on the command line (values parsed as YAML
scalars/lists, so `image_widths=[16,32,64]` and `autocast_bf16=true` work).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from omniembed.errors import ConfigError

from omniembed.media.limits import SAMPLE_RATE as _SAMPLE_RATE

RESIZE_POLICIES = ("pad", "crop", "stretch")
IMAGE_ARCHS = ("conv", "patch")


@dataclass
class TokenizerConfig:
    # --- image VQ-VAE -------------------------------------------------------------------------------------
    image_size: int = 64  # square side the tokenizer sees
    image_grid: int = 8  # codes per side: image_grid**2 tokens per image
    image_resize: str = "pad"  # how a non-square image becomes square: pad | crop | stretch
    image_codebook: int = 512
    # "conv": strided conv encoder/decoder (image_widths, image_code_dim). "patch": codes are pixel patches
    # of (image_size / image_grid)^2 x 3 values refined by residual conv blocks (image_hidden, image_blocks)
    # that start as the identity, so training starts from k-means over patches (see image.py).
    image_arch: str = "conv"
    image_code_dim: int = 64  # conv only; a patch code has 3 * (image_size / image_grid)^2 values
    image_widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # conv only: one per stride-2 stage
    image_hidden: int = 128  # patch only: width of the residual blocks at grid resolution
    image_blocks: int = 2  # patch only: residual blocks in the encoder and in the decoder
    # --- audio: log-mel front-end --------------------------------------------------------------------------
    sample_rate: int = _SAMPLE_RATE
    n_fft: int = 400
    hop: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    # --- audio VQ over mel patches ----------------------------------------------------------------------
    mel_patch_frames: int = 4  # frames per token: sample_rate / hop / mel_patch_frames tokens per second
    audio_codebook: int = 512
    audio_code_dim: int = 64
    audio_width: int = 128
    # --- text and video ----------------------------------------------------------------------------------
    text_vocab_size: int = 2048
    video_fps: float = 2.0
    # --- vector quantiser ------------------------------------------------------------------------------
    vq_beta: float = 0.25  # commitment weight
    vq_decay: float = 0.99  # EMA decay of the codebook statistics
    vq_dead_after: int = 50  # a code unused for this many training steps is restarted
    vq_cosine: bool = True  # l2-normalised codes and encoder outputs (lookup by angle)
    vq_warmup: float = 0.2  # share of training steps run unquantised, then k-means starts the codebook
    #                         (audio and the conv image arch; the patch image arch needs none)
    # --- training ----------------------------------------------------------------------------------------
    image_steps: int = 2000
    image_batch: int = 32
    image_lr: float = 2e-3
    audio_steps: int = 2000
    audio_batch: int = 32
    audio_lr: float = 2e-3
    audio_clip_seconds: float = 1.0  # training crops of the waveform
    eval_fraction: float = 0.1  # held-out share of the training media for the reported figures
    log_every: int = 100
    autocast_bf16: bool = False  # bf16 autocast on CPU for the training forward passes
    max_images: int = 0  # cap on decoded images + video frames (0: no cap)
    max_clips: int = 0  # cap on decoded sounds + video audio tracks (0: no cap)
    threads: int = 2  # torch intra-op threads during training
    # processes: media decoding is spread over them, and with 2 or more the audio tokenizer trains in a
    # second process beside the image one; None: one per CPU, up to 8. The result does not depend on it.
    workers: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    # derived sizes ------------------------------------------------------------------------------------------
    @property
    def tokens_per_image(self) -> int:
        return self.image_grid * self.image_grid

    @property
    def image_stages(self) -> int:
        return int(round(math.log2(self.image_size / self.image_grid)))

    @property
    def image_patch(self) -> int:
        """Pixels per side covered by one image token."""
        return self.image_size // self.image_grid

    @property
    def image_code_size(self) -> int:
        """Length of an image code vector."""
        return self.image_code_dim if self.image_arch == "conv" else 3 * self.image_patch ** 2

    @property
    def audio_tokens_per_second(self) -> float:
        return self.sample_rate / (self.hop * self.mel_patch_frames)

    def validate(self) -> None:
        if self.image_resize not in RESIZE_POLICIES:
            raise ConfigError(f"image_resize={self.image_resize!r}: must be one of {', '.join(RESIZE_POLICIES)}")
        ratio = self.image_size / self.image_grid if self.image_grid > 0 else 0
        if ratio < 1 or ratio != 2 ** round(math.log2(ratio)):
            raise ConfigError(
                f"image_size={self.image_size}, image_grid={self.image_grid}: image_size / image_grid must be a power of 2"
            )
        if self.image_arch not in IMAGE_ARCHS:
            raise ConfigError(f"image_arch={self.image_arch!r}: must be one of {', '.join(IMAGE_ARCHS)}")
        if self.image_arch == "conv" and len(self.image_widths) != self.image_stages:
            raise ConfigError(
                f"image_widths={self.image_widths}: needs {self.image_stages} entries, one per stride-2 stage "
                f"from {self.image_size} down to {self.image_grid}"
            )
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ConfigError(f"fmin={self.fmin}, fmax={self.fmax}: need 0 <= fmin < fmax <= sample_rate/2")
        if self.n_fft < 2 or self.hop < 1 or self.hop > self.n_fft:
            raise ConfigError(f"n_fft={self.n_fft}, hop={self.hop}: need 1 <= hop <= n_fft")
        for name in ("image_codebook", "audio_codebook", "n_mels", "mel_patch_frames", "text_vocab_size",
                     "image_code_dim", "image_hidden", "audio_code_dim", "audio_width", "vq_dead_after", "image_batch", "audio_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: must be >= 1")
        if not 0 < self.vq_decay < 1:
            raise ConfigError(f"vq_decay={self.vq_decay}: must be in (0, 1)")
        if self.video_fps <= 0 or self.audio_clip_seconds <= 0:
            raise ConfigError("video_fps and audio_clip_seconds must be > 0")
        if self.image_blocks < 0:
            raise ConfigError(f"image_blocks={self.image_blocks}: must be >= 0")
        if not 0 <= self.vq_warmup < 1:
            raise ConfigError(f"vq_warmup={self.vq_warmup}: must be in [0, 1)")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers={self.workers}: must be >= 1 (or null for one per CPU)")
        if not 0 < self.eval_fraction < 1:
            raise ConfigError(f"eval_fraction={self.eval_fraction}: must be in (0, 1)")

    # (de)serialisation ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> "TokenizerConfig":
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown tokenizer config key(s) {unknown}")
        values = {k: _coerce(known[k], v, source) for k, v in data.items()}
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> "TokenizerConfig":
        """From a training config's tokenizer section (a packaged name or a path) or a YAML of these keys."""
        data: dict[str, Any] = {}
        source = "overrides"
        if path is not None:
            from omniembed import configs

            loaded, source = configs.section(path, "tokenizer")
            data.update(loaded)
        for item in overrides or []:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"override {item!r}: expected key=value")
            try:
                data[key.strip()] = yaml.safe_load(raw) if raw.strip() else raw
            except yaml.YAMLError as exc:
                raise ConfigError(f"override {item!r}: value is not a YAML scalar or list ({exc})") from exc
        return cls.from_dict(data, source=source)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _coerce(f: dataclasses.Field, value: Any, source: str) -> Any:
    """Check a value against the field's declared type; ints are accepted for floats."""
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list[int]": isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
    }.get(kind, True)
    if not ok:
        raise ConfigError(f"{source}: {f.name}={value!r} is not a valid {kind}")
    if kind == "float":
        return float(value)
    if kind == "list[int]":
        return list(value)
    return value
