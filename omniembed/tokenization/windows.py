"""Media of any length: an audio clip or a video longer than one window is embedded window by window, and its
vector pooled from the windows' vectors. One rule for training's corpus, both embedders and the server.

    windowing = Windowing.from_dict(bundle_manifest["windows"])
    docs, spans = input_documents(x, windowing, sample_rate=16000, video_fps=1.0)   # documents, window by window
    vector = pool(window_vectors)                                                   # the item's vector

Which clips: see omniembed.media.windows (longer than WINDOWED_OVER windows). The pooled vector is the mean of
the windows' unit vectors, re-normalised, at the full dim; a Matryoshka prefix is taken from it as from any
vector. Window times in a video's <frame> tokens count from the window's start: a window reads like a clip.

Defaults (resolve_windowing): the window is the median length of the training clips of that modality (the
length the trunk learned from), at most what fits the trunk's view length with room to spare; the stride is
half the window.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass
from collections.abc import Iterator
from typing import Any

import numpy as np

from omniembed.errors import ConfigError, MediaError
from omniembed.media.windows import WINDOWED_OVER, check_window, media_windows

WINDOWED = ("audio", "video")


@dataclass(frozen=True)
class WindowSpec:
    seconds: float
    stride: float

    def __post_init__(self):
        try:
            check_window(self.seconds, self.stride)
        except ValueError as exc:
            raise ConfigError(f"windows: {exc}") from None


@dataclass(frozen=True)
class Windowing:
    """Per modality, its window and stride; None: that modality is not cut (embedded whole, tokens cut)."""

    audio: WindowSpec | None = None
    video: WindowSpec | None = None
    max_audio_seconds: float | None = None  # duration limits of windowed decoding (None: the decoders')
    max_video_seconds: float | None = None

    def spec(self, modality: str) -> WindowSpec | None:
        return getattr(self, modality, None) if modality in WINDOWED else None

    def to_dict(self) -> dict:
        return {m: None if self.spec(m) is None else asdict(self.spec(m)) for m in WINDOWED}

    @classmethod
    def from_dict(cls, data: dict | None, **limits) -> "Windowing":
        data = data or {}
        return cls(**{m: WindowSpec(**data[m]) if data.get(m) else None for m in WINDOWED}, **limits)


def media_modality(x: Any) -> tuple[str, Any] | None:
    """(modality, source) when an input is one audio or video file (bytes, a path, or {"audio": src}), else None."""
    from omniembed.media import detect_modality

    if isinstance(x, dict) and len(x) == 1 and next(iter(x)) in WINDOWED:
        return next(iter(x.items()))
    if isinstance(x, (bytes, bytearray, memoryview, os.PathLike)):
        try:
            kind = detect_modality(x)
        except MediaError:
            return None  # not media: the plain path reports it
        return (kind, x) if kind in WINDOWED else None
    return None


def input_documents(x: Any, windowing: Windowing | None, *, sample_rate: int, video_fps: float,
                    index: int = 0, image_side: int | None = None,
                    ) -> tuple[Iterator[list], list[tuple[float, float]] | None]:
    """The documents (segment lists) an input is embedded as, and the windows' time spans (None when it is not
    cut into windows). Windows are decoded as the iterator is read: keep each one only as long as needed.
    image_side: the image tokenizer's input size (inputs.decode_segment)."""
    from omniembed.tokenization.inputs import to_segments

    media = media_modality(x) if windowing is not None else None
    spec = windowing.spec(media[0]) if media else None
    if spec is None:
        return iter([to_segments(x, sample_rate=sample_rate, video_fps=video_fps, index=index,
                                 image_side=image_side)]), None
    spans: list[tuple[float, float]] = []
    return _window_documents(media, spec, windowing, sample_rate, video_fps, index, spans, image_side), spans


def _window_documents(media, spec: WindowSpec, windowing: Windowing, sample_rate: int, video_fps: float,
                      index: int, spans: list, image_side: int | None = None) -> Iterator[list]:
    from omniembed.tokenization.document import AudioSegment, VideoSegment

    modality, src = media
    limit = windowing.max_audio_seconds if modality == "audio" else windowing.max_video_seconds
    try:
        for w in media_windows(src, modality, window=spec.seconds, stride=spec.stride, sample_rate=sample_rate,
                               fps=video_fps, max_seconds=limit, side=image_side):
            if not w.whole:
                spans.append((round(w.start, 3), round(w.end, 3)))
            if modality == "audio":
                yield [AudioSegment(w.wave, sample_rate)]
            else:
                yield [VideoSegment(w.frames if w.frames is not None else _no_frames(),
                                    (w.times if w.times is not None else np.zeros(0)) - w.start,
                                    w.wave, sample_rate if w.wave is not None else None)]
    except MediaError as exc:
        raise MediaError(f"input {index} ({exc.source})", exc.reason) from exc


def _no_frames() -> np.ndarray:
    return np.zeros((0, 1, 1, 3), np.uint8)


def pool(vectors: np.ndarray) -> np.ndarray:
    """The item vector of its windows' vectors (W, D): the mean of the unit rows, re-normalised."""
    v = np.asarray(vectors, dtype=np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    mean = v.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


# ---- defaults ---------------------------------------------------------------------------------------------
def fits(modality: str, max_tokens: int, tokenizer_config) -> float:
    """Seconds of `modality` whose view (<bos> block <eos> <embed>) fits max_tokens ids."""
    c = tokenizer_config
    audio_tps = c.sample_rate / (c.hop * c.mel_patch_frames)
    if modality == "audio":
        return max(0.0, (max_tokens - 5) / audio_tps)  # bos, <audio>, </audio>, eos, embed
    per_second = c.video_fps * (2 + c.image_grid ** 2) + audio_tps  # <frame> <t_k> codes per frame, + the track
    return max(0.0, (max_tokens - 7) / per_second)


def resolve_windowing(seconds: float | None, stride: float | None, max_tokens: int, tokenizer_config,
                      clip_seconds: dict[str, float] | None = None) -> Windowing:
    """The windows of a run: `seconds`/`stride` as configured (None: the defaults of the module docstring),
    capped so an uncut clip fits max_tokens."""
    specs = {}
    for m in WINDOWED:
        cap = fits(m, max_tokens, tokenizer_config) / WINDOWED_OVER
        if cap <= 0:
            raise ConfigError(f"data.max_view_tokens={max_tokens} leaves no room for {m}")
        median = (clip_seconds or {}).get(m)
        window = seconds if seconds is not None else (min(median, cap) if median else cap)
        window = round(min(window, cap), 3)
        specs[m] = WindowSpec(window, round(min(stride if stride is not None else window / 2, window), 3))
    return Windowing(**specs)


# ---- inputs -> id sequences, for both embedders ------------------------------------------------------------
@dataclass
class Encoded:
    """One input's id sequences: one per window of long media, else one."""

    ids: list[list[int]]
    spans: list[tuple[float, float]] | None  # the windows' times; None: not cut into windows
    cut: int = 0  # ids dropped from the end of the longest sequence to fit max_tokens (0: nothing was cut)


@dataclass
class Decoded:
    """One input decoded: its documents, or for long media its windows already tokenized (a window's samples
    and frames are dropped once its ids are made), and the windows' times."""

    docs: list[list]
    spans: list[tuple[float, float]] | None = None
    ids: list[list[int]] | None = None  # long media: each window's ids
    cut: int = 0  # ids dropped to fit max_tokens


def decode_inputs(inputs: list, windowing: Windowing | None, document_tokenizer, *, max_tokens: int,
                  sample_rate: int, video_fps: float, modalities, first_index: int = 0,
                  image_side: int | None = None) -> list[Decoded]:
    """Every input's documents, media decoded (long audio and video window by window, each window tokenized
    as soon as it is decoded, so memory holds one window of samples whatever the clip's length; a clip that
    fits one window is left decoded, for the batch's encoders); a modality the model never learned is refused
    by name. Errors name inputs from `first_index` on."""
    out = []
    for i, x in enumerate(inputs, start=first_index):
        raw, spans = input_documents(x, windowing, sample_rate=sample_rate, video_fps=video_fps, index=i,
                                     image_side=image_side)
        docs = _checked(raw, modalities, f"input {i}")
        if spans is None:
            out.append(Decoded(list(docs)))
            continue
        first = list(itertools.islice(docs, 1))
        if not spans:  # one window, the whole clip: left for encode_decoded to encode with the batch
            raw.close()
            out.append(Decoded(first))
            continue
        ids, cut = _encode_documents(itertools.chain(first, docs), document_tokenizer, max_tokens)
        out.append(Decoded([], spans, ids, cut))
    return out


def decode_whole(job: tuple[int, Any], *, windowing: Windowing | None, sample_rate: int, video_fps: float,
                 modalities, square: tuple[int, str] | None = None) -> Decoded | None:
    """decode_inputs for one (index, input) in a worker process: its documents, or None when it is long media
    cut into windows (streamed and tokenized window by window where the tokenizers are). `square`: (size,
    policy) of the image tokenizer, applied to images and frames here (inputs.squared)."""
    from omniembed.tokenization.inputs import squared

    index, x = job
    docs, spans = input_documents(x, windowing, sample_rate=sample_rate, video_fps=video_fps, index=index,
                                  image_side=square[0] if square else None)
    try:
        first = list(_checked(itertools.islice(docs, 1), modalities, f"input {index}"))
    finally:
        if hasattr(docs, "close"):
            docs.close()
    if spans:
        return None
    return Decoded([squared(d, *square) if square else d for d in first])


def _checked(docs, modalities, where: str):
    from omniembed.tokenization.inputs import check_modalities

    for d in docs:
        check_modalities(d, modalities, where)
        yield d


def _encode_documents(docs, document_tokenizer, max_tokens: int) -> tuple[list[list[int]], int]:
    """(each document's `<bos> body <eos> <embed>` cut to max_tokens, the most ids any of them lost)."""
    from omniembed.tokenization.document import cut_for_embedding

    ids, cut = [], 0
    for d in docs:
        d = _cut_long_text(d, document_tokenizer, max_tokens)
        full = document_tokenizer.encode(d, bos=True, eos=True, embed=True)
        ids.append(cut_for_embedding(full, max_tokens))
        cut = max(cut, len(full) - len(ids[-1]))
    return ids, cut


def _cut_long_text(doc: list, document_tokenizer, max_tokens: int) -> list:
    """Text far longer than the window cut by characters before BPE, at a point past which no id could still fit:
    the same ids, without tokenizing megabytes that are then thrown away (the GIL held all the while)."""
    from omniembed.tokenization.document import TextSegment

    text = getattr(document_tokenizer, "text", None)
    if text is None or not hasattr(text, "chars_for"):
        return doc
    limit = text.chars_for(max_tokens)
    if not any(isinstance(s, TextSegment) and len(s.text) > limit for s in doc):
        return doc
    return [TextSegment(s.text[:limit]) if isinstance(s, TextSegment) and len(s.text) > limit else s for s in doc]


def encode_decoded(decoded: list[Decoded], document_tokenizer, *, max_tokens: int, prepare=None) -> list[Encoded]:
    """Each decoded input's id sequences (`<bos> body <eos> <embed>`, cut to max_tokens; the cut recorded on
    both the Encoded and the Decoded). `prepare(docs) -> docs` may rewrite the documents first (the runtime
    encodes every image of the batch in one call)."""

    docs = [d for item in decoded for d in item.docs]
    if prepare is not None and docs:
        docs = prepare(docs)
    out, at = [], 0
    for item in decoded:
        if item.ids is not None:
            out.append(Encoded(item.ids, item.spans, item.cut))
            continue
        ids, cut = _encode_documents(docs[at:at + len(item.docs)], document_tokenizer, max_tokens)
        at += len(item.docs)
        item.cut = cut
        out.append(Encoded(ids, item.spans, cut))
    return out


def encode_inputs(inputs: list, document_tokenizer, *, max_tokens: int, windowing: Windowing | None,
                  sample_rate: int, video_fps: float, modalities, prepare=None,
                  image_side: int | None = None) -> list[Encoded]:
    """decode_inputs then encode_decoded."""
    decoded = decode_inputs(inputs, windowing, document_tokenizer, max_tokens=max_tokens, sample_rate=sample_rate,
                            video_fps=video_fps, modalities=modalities, image_side=image_side)
    return encode_decoded(decoded, document_tokenizer, max_tokens=max_tokens, prepare=prepare)


def pooled(encoded: list[Encoded], vectors: np.ndarray) -> np.ndarray:
    """One vector per input from the vectors of every sequence of `encoded`, in order (windows pooled)."""
    if len(vectors) == len(encoded):  # one sequence each: nothing to pool
        return vectors
    out, row = [], 0
    for enc in encoded:
        n = len(enc.ids)
        out.append(vectors[row] if n == 1 else pool(vectors[row:row + n]))
        row += n
    return np.stack(out) if out else np.zeros((0, vectors.shape[1]), np.float32)
