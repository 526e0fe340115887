"""Interleaved documents <-> one id stream in the unified vocabulary.

Stream grammar (what `encode` writes and `decode` accepts):

    stream := [<bos>] item* [<eos>] [<embed>] <pad>*
    item   := text_id+
            | <image> image_code{tokens_per_image} </image>
            | <audio> audio_code* </audio>
            | <video> (<frame> <t_k> image_code{tokens_per_image})* [<audio> audio_code* </audio>] </video>

Adjacent text segments are joined before BPE, so decode yields one text segment for them and re-encoding
the decoded segments reproduces the ids exactly.

torch is imported only when a tokenizer needs tensors, so a torch-free runtime with tokenizers of the same
interface (numpy in and out) can use this module too: omniembed.runtime builds its ids here, with ONNX tokenizers.
What a caller passes in (text, media bytes, paths, manifest records) becomes segments in
omniembed.tokenization.inputs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import numpy as np

from omniembed.errors import ConfigError, OmniEmbedError
from omniembed.tokenization.text import TextTokenizer
from omniembed.tokenization.vocab import KIND_AUDIO, KIND_IMAGE, KIND_TEXT, Vocabulary


class DocumentError(OmniEmbedError, ValueError):
    """A segment is malformed, or an id stream breaks the document grammar; the message says where and how."""


class InputTypeError(DocumentError, TypeError):
    """An input of a type no embedder reads (the message names the type and what is accepted)."""


# ---- segments: what goes in --------------------------------------------------------------------------
@dataclass(frozen=True)
class TextSegment:
    text: str
    kind: ClassVar[str] = "text"

    def __post_init__(self):
        if not isinstance(self.text, str):
            raise DocumentError(f"TextSegment.text must be str, got {type(self.text).__name__}")


@dataclass(frozen=True, eq=False)
class ImageSegment:
    pixels: np.ndarray  # (H, W, 3) uint8
    kind: ClassVar[str] = "image"

    def __post_init__(self):
        _check_rgb(self.pixels, "ImageSegment.pixels", ndim=3)


@dataclass(frozen=True, eq=False)
class AudioSegment:
    wave: np.ndarray  # (n,) float32, mono
    sample_rate: int
    kind: ClassVar[str] = "audio"

    def __post_init__(self):
        object.__setattr__(self, "wave", _check_wave(self.wave, "AudioSegment.wave"))
        _check_rate(self.sample_rate, "AudioSegment.sample_rate")


@dataclass(frozen=True, eq=False)
class VideoSegment:
    frames: np.ndarray  # (T, H, W, 3) uint8
    times: np.ndarray  # (T,) seconds, non-decreasing
    audio: np.ndarray | None = None  # (n,) float32 mono track, or None when the video is silent
    sample_rate: int | None = None
    kind: ClassVar[str] = "video"

    def __post_init__(self):
        _check_rgb(self.frames, "VideoSegment.frames", ndim=4)
        times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        if len(times) != len(self.frames):
            raise DocumentError(f"VideoSegment has {len(self.frames)} frames but {len(times)} times")
        if len(times) and (not np.all(np.isfinite(times)) or times.min() < 0 or np.any(np.diff(times) < 0)):
            raise DocumentError("VideoSegment.times must be finite, >= 0 and non-decreasing")
        object.__setattr__(self, "times", times)
        if self.audio is not None:
            object.__setattr__(self, "audio", _check_wave(self.audio, "VideoSegment.audio"))
            _check_rate(self.sample_rate, "VideoSegment.sample_rate")

    @classmethod
    def from_video(cls, video: Any) -> "VideoSegment":
        """From `omniembed.media.decode_video`'s Video (same field names), or anything shaped like it."""
        return cls(frames=video.frames, times=video.times, audio=getattr(video, "audio", None),
                   sample_rate=getattr(video, "sample_rate", None))


Segment = Union[TextSegment, ImageSegment, AudioSegment, VideoSegment]


# ---- decoded segments: what comes out (codes, plus reconstructions when a tokenizer can decode) ----------
@dataclass(frozen=True, eq=False)
class ImageCodes:
    codes: np.ndarray  # (N,) int64 local image codes
    pixels: np.ndarray | None = None  # (S, S, 3) uint8 reconstruction
    kind: ClassVar[str] = "image"


@dataclass(frozen=True, eq=False)
class AudioCodes:
    codes: np.ndarray  # (M,) int64 local audio codes
    mel: np.ndarray | None = None  # reconstructed log-mel, the audio tokenizer's layout
    kind: ClassVar[str] = "audio"


@dataclass(frozen=True, eq=False)
class VideoCodes:
    frame_codes: np.ndarray  # (T, N) int64 local image codes per frame
    times: np.ndarray  # (T,) seconds: the start of each frame's time bucket
    audio_codes: np.ndarray | None = None  # (M,) int64, None when the stream had no audio block
    frames: np.ndarray | None = None  # (T, S, S, 3) uint8 reconstructions
    audio_mel: np.ndarray | None = None
    kind: ClassVar[str] = "video"


DecodedSegment = Union[TextSegment, ImageCodes, AudioCodes, VideoCodes]


# ---- the tokenizer ---------------------------------------------------------------------------------------
class DocumentTokenizer:
    """Turns a list of segments into one id stream of `vocab`, and an id stream back into segments.

    `image_tokenizer` / `audio_tokenizer` may be None for text-only use; a segment that needs one then raises.
    `video_fps` caps how many frames per second of a VideoSegment are tokenized (None keeps every frame).
    """

    def __init__(self, vocab: Vocabulary, text_tokenizer: TextTokenizer, image_tokenizer: Any = None,
                 audio_tokenizer: Any = None, *, video_fps: float | None = 2.0, add_bos: bool = True,
                 add_eos: bool = True):
        if text_tokenizer.vocab_size != vocab.text_size:
            raise ConfigError(f"text tokenizer has {text_tokenizer.vocab_size} ids but the vocabulary's text range "
                              f"has {vocab.text_size}; build the Vocabulary from text_tokenizer.vocab_size")
        for name, tok, size in (("image", image_tokenizer, vocab.image_codebook),
                                ("audio", audio_tokenizer, vocab.audio_codebook)):
            if tok is not None and tok.codebook_size != size:
                raise ConfigError(f"{name} tokenizer has {tok.codebook_size} codes but the vocabulary's {name} "
                                  f"range has {size}")
        if video_fps is not None and not video_fps > 0:
            raise ConfigError(f"video_fps={video_fps!r} must be > 0 (or None to keep every frame)")
        self.vocab, self.text = vocab, text_tokenizer
        self.image, self.audio = image_tokenizer, audio_tokenizer
        self.video_fps, self.add_bos, self.add_eos = video_fps, add_bos, add_eos
        sp = vocab.special
        self._bos, self._eos, self._pad, self._embed = sp("<bos>"), sp("<eos>"), sp("<pad>"), sp("<embed>")
        self._img, self._img_end, self._aud, self._aud_end = sp("<image>"), sp("</image>"), sp("<audio>"), sp("</audio>")
        self._vid, self._vid_end, self._frame = sp("<video>"), sp("</video>"), sp("<frame>")

    @classmethod
    def from_tokenizers(cls, text_tokenizer: TextTokenizer, image_tokenizer: Any, audio_tokenizer: Any, *,
                        time_buckets: int = 64, time_step: float = 0.5, **kwargs) -> "DocumentTokenizer":
        """Build the Vocabulary from the tokenizers' real sizes (never from config, which may differ from what
        BPE training produced), then the document tokenizer; `kwargs` go to __init__."""
        vocab = Vocabulary(text_tokenizer.vocab_size, int(image_tokenizer.codebook_size),
                           int(audio_tokenizer.codebook_size), time_buckets=time_buckets, time_step=time_step)
        return cls(vocab, text_tokenizer, image_tokenizer, audio_tokenizer, **kwargs)

    @property
    def tokens_per_image(self) -> int | None:
        return None if self.image is None else int(self.image.tokens_per_image)

    # ---- encode ---------------------------------------------------------------------------------------
    def encode(self, segments: Iterable[Segment | DecodedSegment], *, bos: bool | None = None,
               eos: bool | None = None, embed: bool = False) -> list[int]:
        """One id stream for the segments, in order. `embed=True` appends <embed> (after <eos>)."""
        out: list[int] = [self._bos] if (self.add_bos if bos is None else bos) else []
        pending_text: list[str] = []
        for i, seg in enumerate(segments):
            if isinstance(seg, TextSegment):
                pending_text.append(seg.text)
                continue
            if pending_text:
                out += self._text_ids("".join(pending_text))
                pending_text = []
            out += self._encode_media(seg, i)
        if pending_text:
            out += self._text_ids("".join(pending_text))
        if self.add_eos if eos is None else eos:
            out.append(self._eos)
        if embed:
            out.append(self._embed)
        return out

    def encode_for_embedding(self, segments: Iterable[Segment | DecodedSegment],
                             max_tokens: int | None = None) -> list[int]:
        """The id sequence the embedding head reads: `<bos> body <eos> <embed>`, the body cut at its end so the
        whole fits `max_tokens` (training's view sequences, omniembed.train.corpus.Corpus.view_ids, cut the same way).
        The torch path and the ONNX runtime both build embedding inputs here, so their ids cannot drift apart."""
        return cut_for_embedding(self.encode(segments, bos=True, eos=True, embed=True), max_tokens)

    def encode_batch(self, documents: Sequence[Iterable[Segment | DecodedSegment]], **kwargs) -> list[list[int]]:
        return [self.encode(doc, **kwargs) for doc in documents]

    def _encode_media(self, seg: Any, index: int) -> list[int]:
        v = self.vocab
        if isinstance(seg, ImageSegment):
            return [self._img, *self._image_block(self._image_codes([seg.pixels], index), index)[0], self._img_end]
        if isinstance(seg, ImageCodes):
            return [self._img, *self._image_block(_codes_2d(seg.codes, f"segment {index} ImageCodes"), index)[0],
                    self._img_end]
        if isinstance(seg, AudioSegment):
            codes = self._audio_codes(seg.wave, seg.sample_rate, index)
            return [self._aud, *v.audio_ids(codes).tolist(), self._aud_end]
        if isinstance(seg, AudioCodes):
            return [self._aud, *v.audio_ids(_codes_1d(seg.codes, f"segment {index} AudioCodes")).tolist(), self._aud_end]
        if isinstance(seg, VideoSegment):
            keep = sample_frame_indices(seg.times, self.video_fps)
            frame_codes = self._image_codes(list(seg.frames[keep]), index) if len(keep) else None
            audio = None if seg.audio is None else self._audio_codes(seg.audio, seg.sample_rate, index)
            return self._video_block(frame_codes, seg.times[keep], audio, index)
        if isinstance(seg, VideoCodes):
            frame_codes = np.asarray(seg.frame_codes, dtype=np.int64)
            if frame_codes.ndim != 2 or len(frame_codes) != len(seg.times):
                raise DocumentError(f"segment {index} VideoCodes: frame_codes {frame_codes.shape} must be (T, N) "
                                    f"with T = len(times) = {len(seg.times)}")
            audio = None if seg.audio_codes is None else _codes_1d(seg.audio_codes, f"segment {index} audio_codes")
            return self._video_block(frame_codes if len(frame_codes) else None, np.asarray(seg.times), audio, index)
        raise DocumentError(f"segment {index}: unsupported segment type {type(seg).__name__}")

    def _video_block(self, frame_codes, times, audio_codes, index: int) -> list[int]:
        out = [self._vid]
        if frame_codes is not None:
            for codes, t in zip(self._image_block(frame_codes, index), times):
                out += [self._frame, self.vocab.time_token(float(t)), *codes]
        if audio_codes is not None:
            out += [self._aud, *self.vocab.audio_ids(audio_codes).tolist(), self._aud_end]
        out.append(self._vid_end)
        return out

    def _text_ids(self, text: str) -> list[int]:
        # BPE ids lie in [0, text_size) (checked against the vocabulary in __init__): shifted here without the
        # array round trip and range check of Vocabulary.text_ids, which cost more than BPE on a short caption
        start = self.vocab.text_range.start
        return [i + start for i in self.text.encode(text)]

    def _image_block(self, codes: np.ndarray, index: int) -> list[list[int]]:
        """(B, N) local codes -> B lists of global ids, checking N against the image tokenizer."""
        n = self.tokens_per_image
        if n is not None and codes.shape[1] != n:
            raise DocumentError(f"segment {index}: {codes.shape[1]} image codes per image, the image tokenizer "
                                f"uses {n}")
        return self.vocab.image_ids(codes).tolist()

    def _image_codes(self, pixels: list[np.ndarray], index: int) -> np.ndarray:
        if self.image is None:
            raise DocumentError(f"segment {index} needs an image tokenizer, and this DocumentTokenizer has none")
        with _no_grad():
            codes = self.image.encode(self.image.preprocess(pixels))  # (B, N)
        return _codes_2d(codes, f"segment {index} image tokenizer output")

    def _audio_codes(self, wave: np.ndarray, sample_rate: int | None, index: int) -> np.ndarray:
        if self.audio is None:
            raise DocumentError(f"segment {index} needs an audio tokenizer, and this DocumentTokenizer has none")
        expected = _tokenizer_rate(self.audio)
        if expected is not None and sample_rate is not None and int(sample_rate) != expected:
            raise DocumentError(f"segment {index}: audio at {sample_rate} Hz, the audio tokenizer expects "
                                f"{expected} Hz (decode media with omniembed.media to resample)")
        if len(wave) == 0:  # an empty track is an empty <audio></audio> block, which decodes back to itself
            return np.zeros(0, dtype=np.int64)
        with _no_grad():
            codes = self.audio.encode_one(_as_input(wave, self.audio))  # (M,)
        return _codes_1d(codes, f"segment {index} audio tokenizer output")

    # ---- decode ---------------------------------------------------------------------------------------
    def decode(self, ids: Sequence[int], *, reconstruct: bool = True) -> list[DecodedSegment]:
        """Segments of an id stream. With `reconstruct`, images/frames/audio are decoded back to pixels/mel
        where the tokenizer can decode."""
        ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        for pos, i in enumerate(ids):
            if not 0 <= i < self.vocab.size:
                raise DocumentError(f"id {i} at position {pos} is outside the vocabulary [0, {self.vocab.size})")
        start, stop = self._body_bounds(ids)
        segments = _Parser(self, ids, stop).parse(start)
        return [self._reconstruct(s) for s in segments] if reconstruct else segments

    def _body_bounds(self, ids: list[int]) -> tuple[int, int]:
        start = 1 if ids and ids[0] == self._bos else 0
        stop = len(ids)
        while stop > start and ids[stop - 1] == self._pad:
            stop -= 1
        for closing in (self._embed, self._eos):  # the reverse of encode's order: ... <eos> <embed>
            if stop > start and ids[stop - 1] == closing:
                stop -= 1
        return start, stop

    def _reconstruct(self, seg: DecodedSegment) -> DecodedSegment:
        if isinstance(seg, ImageCodes) and _can_decode(self.image):
            return ImageCodes(seg.codes, pixels=self._pixels(seg.codes[None])[0])
        if isinstance(seg, AudioCodes) and _can_decode(self.audio) and len(seg.codes):
            return AudioCodes(seg.codes, mel=self._mel(seg.codes))
        if isinstance(seg, VideoCodes):
            frames = self._pixels(seg.frame_codes) if _can_decode(self.image) and len(seg.frame_codes) else None
            mel = (self._mel(seg.audio_codes) if seg.audio_codes is not None and len(seg.audio_codes)
                   and _can_decode(self.audio) else None)
            return VideoCodes(seg.frame_codes, seg.times, seg.audio_codes, frames=frames, audio_mel=mel)
        return seg

    def _pixels(self, codes: np.ndarray) -> np.ndarray:
        """(B, N) codes -> (B, S, S, 3) uint8 through the image tokenizer's decoder."""
        with _no_grad():
            x = _numpy(self.image.decode(_as_input(codes, self.image)))  # (B, 3, S, S)
        return to_uint8_hwc(x)

    def _mel(self, codes: np.ndarray) -> np.ndarray:
        with _no_grad():
            mel = _numpy(self.audio.decode(_as_input(codes[None], self.audio)))  # (1, ...) batch of one
        return mel[0]


class _Parser:
    """Recursive-descent reader of the stream grammar; every error names the position and the token."""

    def __init__(self, doc: DocumentTokenizer, ids: list[int], stop: int):
        self.doc, self.v, self.ids, self.stop = doc, doc.vocab, ids, stop
        self.kinds = doc.vocab.kinds(np.asarray(ids, dtype=np.int64)).tolist() if ids else []

    def parse(self, pos: int) -> list[DecodedSegment]:
        d, out = self.doc, []
        while pos < self.stop:
            tok, kind = self.ids[pos], self.kinds[pos]
            if kind == KIND_TEXT:  # a run of text ids is one text segment
                end = pos
                while end < self.stop and self.kinds[end] == KIND_TEXT:
                    end += 1
                local = (np.asarray(self.ids[pos:end]) - self.v.text_range.start).tolist()
                out.append(TextSegment(d.text.decode(local)))
                pos = end
            elif tok == d._img:
                codes, pos = self._image_codes(pos + 1, "<image>", pos)
                pos = self._expect(pos, d._img_end, "</image>", "<image>", pos - len(codes) - 1)
                out.append(ImageCodes(codes))
            elif tok == d._aud:
                codes, pos = self._audio_block(pos)
                out.append(AudioCodes(codes))
            elif tok == d._vid:
                seg, pos = self._video(pos)
                out.append(seg)
            else:
                raise DocumentError(f"unexpected {self._describe(pos)} outside any block")
        return out

    def _video(self, open_pos: int) -> tuple[VideoCodes, int]:
        d, pos = self.doc, open_pos + 1
        frame_codes, times, audio = [], [], None
        while pos < self.stop and self.ids[pos] == d._frame:
            if pos + 1 >= self.stop or not self.v.is_time(self.ids[pos + 1]):
                raise DocumentError(f"<frame> at position {pos} must be followed by a time token <t_k>, got "
                                    f"{self._describe(pos + 1)}")
            times.append(self.v.time_of(self.ids[pos + 1]))
            codes, pos = self._image_codes(pos + 2, "<frame>", pos)
            frame_codes.append(codes)
        if pos < self.stop and self.ids[pos] == d._aud:
            audio, pos = self._audio_block(pos)
        pos = self._expect(pos, d._vid_end, "</video>", "<video>", open_pos)
        n = self.doc.tokens_per_image or (len(frame_codes[0]) if frame_codes else 0)
        codes = np.stack(frame_codes) if frame_codes else np.zeros((0, n), dtype=np.int64)  # (T, N)
        return VideoCodes(codes, np.asarray(times, dtype=np.float64), audio), pos

    def _image_codes(self, pos: int, opener: str, open_pos: int) -> tuple[np.ndarray, int]:
        end = self._run(pos, KIND_IMAGE)
        n, got = self.doc.tokens_per_image, end - pos
        if n is not None and got != n:
            raise DocumentError(f"{opener} at position {open_pos} holds {got} image codes, expected {n} "
                                f"(then {self._describe(end)})")
        if got == 0:
            raise DocumentError(f"{opener} at position {open_pos} holds no image codes (got {self._describe(end)})")
        return np.asarray(self.ids[pos:end], dtype=np.int64) - self.v.image_range.start, end

    def _audio_block(self, open_pos: int) -> tuple[np.ndarray, int]:
        end = self._run(open_pos + 1, KIND_AUDIO)
        codes = np.asarray(self.ids[open_pos + 1:end], dtype=np.int64) - self.v.audio_range.start
        return codes, self._expect(end, self.doc._aud_end, "</audio>", "<audio>", open_pos)

    def _run(self, pos: int, kind: int) -> int:
        while pos < self.stop and self.kinds[pos] == kind:
            pos += 1
        return pos

    def _expect(self, pos: int, tok: int, name: str, opener: str, open_pos: int) -> int:
        if pos >= self.stop:
            raise DocumentError(f"unclosed {opener} at position {open_pos}: the stream ends before {name}")
        if self.ids[pos] != tok:
            raise DocumentError(f"{opener} at position {open_pos}: expected {name} at position {pos}, got "
                                f"{self._describe(pos)}")
        return pos + 1

    def _describe(self, pos: int) -> str:
        if pos >= self.stop:
            return "the end of the stream"
        return f"{self.v.token_str(self.ids[pos])} at position {pos}"


# ---- pure helpers ---------------------------------------------------------------------------------------
def cut_for_embedding(ids: list[int], max_tokens: int | None) -> list[int]:
    """`<bos> body <eos> <embed>` with the body cut at its end so the whole fits max_tokens."""
    if max_tokens is None or len(ids) <= max_tokens:
        return ids
    if max_tokens < 4:
        raise DocumentError(f"max_tokens={max_tokens} leaves no room for a body between <bos> and <eos> <embed>")
    return ids[:max_tokens - 2] + ids[-2:]


def sample_frame_indices(times: np.ndarray, fps: float | None, tol: float = 1e-3) -> np.ndarray:
    """Indices of the first frame at or after each tick of a 1/fps grid (like ffmpeg's fps filter, dropping only).

    A grid rather than "1/fps after the last kept frame" so irregular timestamps do not drift the sampling;
    `tol` seconds absorbs container timestamp rounding (a frame reported at 0.4999 s counts for the 0.5 s tick).
    """
    times = np.asarray(times, dtype=np.float64)
    if fps is None or len(times) == 0:
        return np.arange(len(times))
    keep, next_tick = [], -np.inf
    for i, t in enumerate(times):
        if t >= next_tick - tol:
            keep.append(i)
            next_tick = (np.floor((t + tol) * fps) + 1) / fps
    return np.asarray(keep, dtype=np.int64)


def to_uint8_hwc(x: np.ndarray) -> np.ndarray:
    """(B, 3, S, S) float in [0, 1] -> (B, S, S, 3) uint8, clipping decoder overshoot."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.round(x.transpose(0, 2, 3, 1) * 255.0).astype(np.uint8)


def _check_rgb(x: Any, who: str, ndim: int) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != ndim or x.shape[-1] != 3 or x.dtype != np.uint8:
        shape = getattr(x, "shape", None)
        dtype = getattr(x, "dtype", type(x).__name__)
        want = "(H, W, 3)" if ndim == 3 else "(T, H, W, 3)"
        raise DocumentError(f"{who} must be a {want} uint8 array, got shape {shape} dtype {dtype}")
    if x.shape[-3] == 0 or x.shape[-2] == 0:
        raise DocumentError(f"{who} has an empty side: shape {x.shape}")


def _check_wave(x: Any, who: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1 or x.dtype.kind != "f":
        raise DocumentError(f"{who} must be a mono (n,) float array, got shape {x.shape} dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise DocumentError(f"{who} holds NaN or infinite samples")
    return x.astype(np.float32, copy=False)


def _check_rate(rate: Any, who: str) -> None:
    if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool) or rate <= 0:
        raise DocumentError(f"{who} must be a positive int (Hz), got {rate!r}")


def _codes_1d(codes: Any, who: str) -> np.ndarray:
    c = _numpy(codes).astype(np.int64, copy=False)
    if c.ndim != 1:
        raise DocumentError(f"{who}: expected (M,) codes, got shape {c.shape}")
    return c


def _codes_2d(codes: Any, who: str) -> np.ndarray:
    c = _numpy(codes).astype(np.int64, copy=False)
    if c.ndim == 1:
        c = c[None]
    if c.ndim != 2:
        raise DocumentError(f"{who}: expected (B, N) codes, got shape {c.shape}")
    return c


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor; duck-typed so this module never imports torch itself
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_input(x: np.ndarray, tokenizer: Any) -> Any:
    """Hand numpy to numpy tokenizers and tensors to torch modules (anything with .parameters)."""
    if hasattr(tokenizer, "parameters"):
        import torch

        return torch.from_numpy(np.ascontiguousarray(x))
    return x


def _tokenizer_rate(tokenizer: Any) -> int | None:
    for holder in (tokenizer, getattr(tokenizer, "config", None), getattr(tokenizer, "cfg", None)):
        rate = getattr(holder, "sample_rate", None)
        if isinstance(rate, (int, np.integer)) and not isinstance(rate, bool):
            return int(rate)
    return None


def _can_decode(tokenizer: Any) -> bool:
    return tokenizer is not None and callable(getattr(tokenizer, "decode", None))


@contextlib.contextmanager
def _no_grad():
    # Only a torch tokenizer needs inference mode, and one can exist only once torch is imported; importing it
    # here would load torch into the torch-free runtime (omniembed.runtime) just to do nothing.
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    with torch.inference_mode():
        yield
