"""The unified vocabulary: one global id space `[special | text BPE | image codes | audio codes]`.

Each modality tokenizer produces LOCAL ids (BPE ids, VQ code indices); this class is the only place that
knows the offsets. Special tokens (markers, time buckets, <embed>) sit first so <pad> is id 0 and the
layout of the special block does not move when a tokenizer is retrained with another size.

torch-free: the vectorised methods take numpy arrays or torch tensors (anything with numpy-style
arithmetic and comparisons) and return the same kind, without importing torch here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omniembed.errors import ConfigError, OmniEmbedError

KINDS = ("special", "text", "image", "audio")
# integer kind codes returned by `Vocabulary.kinds(ids)`; index into KINDS
KIND_SPECIAL, KIND_TEXT, KIND_IMAGE, KIND_AUDIO = range(4)

# Order is the id order inside the special block; never reorder (saved vocabularies record it anyway).
BASE_SPECIALS = (
    "<pad>",  # 0, so zero-filled id tensors are padding
    "<bos>",
    "<eos>",
    "<unk>",  # byte-level BPE never needs it; kept for generated/foreign streams
    "<embed>",  # the position whose hidden state the embedding head may pool
    "<image>",
    "</image>",
    "<audio>",
    "</audio>",
    "<video>",
    "</video>",
    "<frame>",  # followed by a time token <t_k>, then that frame's image codes
)


class VocabularyError(OmniEmbedError, ValueError):
    """An id, code or token name does not fit this vocabulary; the message names the value and the range."""


@dataclass(frozen=True)
class Vocabulary:
    """Global id layout for a text BPE of `text_size` ids, an image codebook and an audio codebook.

    Time tokens `<t0>..<t{time_buckets-1}>` mark frame/segment times in buckets of `time_step` seconds;
    times past the last bucket clamp to it.
    """

    text_size: int
    image_codebook: int
    audio_codebook: int
    time_buckets: int = 64
    time_step: float = 0.5
    extra_specials: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("text_size", "image_codebook", "audio_codebook", "time_buckets"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"Vocabulary {name}={value!r} must be a positive int")
        if not (isinstance(self.time_step, (int, float)) and math.isfinite(self.time_step) and self.time_step > 0):
            raise ConfigError(f"Vocabulary time_step={self.time_step!r} must be a positive number of seconds")
        object.__setattr__(self, "extra_specials", tuple(self.extra_specials))
        bad = [n for n in self.extra_specials if not (isinstance(n, str) and n.startswith("<") and n.endswith(">"))]
        if bad:
            raise ConfigError(f"Vocabulary extra_specials {bad!r} must be strings of the form '<name>'")
        names = self.special_tokens
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"Vocabulary extra_specials repeat existing tokens: {dupes}")
        object.__setattr__(self, "_special_ids", {n: i for i, n in enumerate(names)})

    # ---- layout -------------------------------------------------------------------------------------
    @property
    def special_tokens(self) -> tuple[str, ...]:
        """Every special token string, in id order (id == position)."""
        times = tuple(f"<t{k}>" for k in range(self.time_buckets))
        return BASE_SPECIALS + times + tuple(self.extra_specials)

    @property
    def num_special(self) -> int:
        return len(BASE_SPECIALS) + self.time_buckets + len(self.extra_specials)

    @property
    def special_range(self) -> range:
        return range(0, self.num_special)

    @property
    def text_range(self) -> range:
        start = self.num_special
        return range(start, start + self.text_size)

    @property
    def image_range(self) -> range:
        start = self.text_range.stop
        return range(start, start + self.image_codebook)

    @property
    def audio_range(self) -> range:
        start = self.image_range.stop
        return range(start, start + self.audio_codebook)

    @property
    def time_range(self) -> range:
        start = len(BASE_SPECIALS)
        return range(start, start + self.time_buckets)

    @property
    def size(self) -> int:
        """Total number of ids: the embedding table / output head needs exactly this many rows."""
        return self.audio_range.stop

    def range_of(self, kind: str) -> range:
        if kind not in KINDS:
            raise VocabularyError(f"unknown kind {kind!r}; expected one of {KINDS}")
        return getattr(self, f"{kind}_range")

    # ---- scalar maps --------------------------------------------------------------------------------
    def special(self, name: str) -> int:
        """Id of a special token, by its string ('<image>') or bare name ('image')."""
        key = name if name.startswith("<") else f"<{name}>"
        try:
            return self._special_ids[key]  # type: ignore[attr-defined]
        except KeyError:
            raise VocabularyError(f"no special token {name!r}; known: {', '.join(BASE_SPECIALS)}, <t0>.., "
                                  f"{', '.join(self.extra_specials) or '(no extras)'}") from None

    def text_id(self, local: int) -> int:
        return self._to_global(local, self.text_range, "text")

    def image_id(self, code: int) -> int:
        return self._to_global(code, self.image_range, "image")

    def audio_id(self, code: int) -> int:
        return self._to_global(code, self.audio_range, "audio")

    def kind_of(self, id_: int) -> str:
        id_ = self._check_id(id_)
        if id_ < self.text_range.start:
            return "special"
        if id_ < self.image_range.start:
            return "text"
        if id_ < self.audio_range.start:
            return "image"
        return "audio"

    def local(self, id_: int) -> int:
        """The id inside its own range: BPE id, VQ code, or index into `special_tokens`."""
        return self._check_id(id_) - self.range_of(self.kind_of(id_)).start

    def token_str(self, id_: int) -> str:
        """Readable form for logs and error messages: '<image>', 'text:17', 'image:3'."""
        kind = self.kind_of(id_)
        if kind == "special":
            return self.special_tokens[id_]
        return f"{kind}:{self.local(id_)}"

    def time_token(self, seconds: float) -> int:
        """Id of the time bucket holding `seconds`; past the last bucket clamps to it."""
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds < 0:
            raise VocabularyError(f"time {seconds!r} s must be a finite number >= 0")
        # a small epsilon so k * step maps back to bucket k despite float rounding (0.3 / 0.1 = 2.999...)
        bucket = min(int(math.floor(seconds / self.time_step + 1e-6)), self.time_buckets - 1)
        return self.time_range.start + bucket

    def is_time(self, id_: int) -> bool:
        return int(id_) in self.time_range

    def time_of(self, id_: int) -> float:
        """Start time in seconds of a time token's bucket (inverse of `time_token` up to quantisation)."""
        if not self.is_time(id_):
            raise VocabularyError(f"id {id_} is not a time token (time tokens are {self._span(self.time_range)})")
        return (int(id_) - self.time_range.start) * self.time_step

    # ---- vectorised maps (numpy arrays or torch tensors in, same type out) ---------------------------
    def text_ids(self, local):
        return self._to_global_array(local, self.text_range, "text")

    def image_ids(self, codes):
        return self._to_global_array(codes, self.image_range, "image")

    def audio_ids(self, codes):
        return self._to_global_array(codes, self.audio_range, "audio")

    def kinds(self, ids):
        """Kind code per id (KIND_SPECIAL/TEXT/IMAGE/AUDIO, i.e. an index into KINDS), same shape as `ids`."""
        self._check_id_array(ids)
        # sum of three threshold tests: 0 below text, 1 in text, 2 in image, 3 in audio
        return (_as_int(ids >= self.text_range.start) + _as_int(ids >= self.image_range.start)
                + _as_int(ids >= self.audio_range.start))

    def local_ids(self, ids):
        """Local id per global id (offset removed for its kind), same shape as `ids`."""
        kinds = self.kinds(ids)
        starts = [r.start for r in (self.special_range, self.text_range, self.image_range, self.audio_range)]
        offset = kinds * 0
        for k in range(1, 4):
            offset = offset + _as_int(kinds == k) * starts[k]
        return ids - offset

    def mask(self, ids, kind: str):
        """Boolean mask of ids of one kind (e.g. to weight image-code losses)."""
        r = self.range_of(kind)
        return (ids >= r.start) & (ids < r.stop)

    # ---- persistence --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "layout": ["special", "text", "image", "audio"],
            "text_size": self.text_size,
            "image_codebook": self.image_codebook,
            "audio_codebook": self.audio_codebook,
            "time_buckets": self.time_buckets,
            "time_step": self.time_step,
            "extra_specials": list(self.extra_specials),
            # the full list, so a reader can check that its code assigns the same ids as the writer's did
            "special_tokens": list(self.special_tokens),
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Vocabulary":
        try:
            vocab = cls(
                text_size=d["text_size"],
                image_codebook=d["image_codebook"],
                audio_codebook=d["audio_codebook"],
                time_buckets=d.get("time_buckets", 64),
                time_step=d.get("time_step", 0.5),
                extra_specials=tuple(d.get("extra_specials", ())),
            )
        except KeyError as exc:
            raise ConfigError(f"vocabulary dict is missing key {exc.args[0]!r}") from None
        if "special_tokens" in d and list(d["special_tokens"]) != list(vocab.special_tokens):
            raise ConfigError("vocabulary dict's special_tokens differ from this code's layout; "
                              "ids saved with it would be misread")
        if "size" in d and d["size"] != vocab.size:
            raise ConfigError(f"vocabulary dict says size={d['size']} but its fields give {vocab.size}")
        return vocab

    def save(self, path: str | os.PathLike) -> Path:
        """Write `to_dict()` as JSON (vocab.json in a bundle)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read vocabulary JSON ({exc})") from exc
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: vocabulary JSON must be an object, got {type(d).__name__}")
        return cls.from_dict(d)

    # ---- helpers ------------------------------------------------------------------------------------
    def _check_id(self, id_: int) -> int:
        id_ = int(id_)
        if not 0 <= id_ < self.size:
            raise VocabularyError(f"id {id_} is outside the vocabulary [0, {self.size})")
        return id_

    def _to_global(self, local: int, r: range, kind: str) -> int:
        local = int(local)
        if not 0 <= local < len(r):
            raise VocabularyError(f"{kind} id {local} is outside the local {kind} range [0, {len(r)})")
        return r.start + local

    def _to_global_array(self, local, r: range, kind: str):
        lo, hi = _min_max(local)
        if lo is not None and (lo < 0 or hi >= len(r)):
            raise VocabularyError(f"{kind} ids span [{lo}, {hi}], outside the local {kind} range [0, {len(r)})")
        return local + r.start

    def _check_id_array(self, ids) -> None:
        lo, hi = _min_max(ids)
        if lo is not None and (lo < 0 or hi >= self.size):
            raise VocabularyError(f"ids span [{lo}, {hi}], outside the vocabulary [0, {self.size})")

    @staticmethod
    def _span(r: range) -> str:
        return f"[{r.start}, {r.stop})"


def _as_int(mask):
    """bool array/tensor -> int64 of the same library (numpy: astype, torch: long)."""
    return mask.astype("int64") if hasattr(mask, "astype") else mask.long()


def _min_max(x) -> tuple[int | None, int | None]:
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        raise VocabularyError(f"expected a numpy array or torch tensor of ids, got {type(x).__name__}")
    is_int = dtype.kind in "iu" if hasattr(dtype, "kind") else not (dtype.is_floating_point or dtype.is_complex)
    if not is_int or str(dtype).endswith("bool"):
        raise VocabularyError(f"ids must be an integer array, got dtype {dtype}")
    flat = x.reshape(-1)
    if len(flat) == 0:
        return None, None
    return int(flat.min()), int(flat.max())
