"""A batch's media through the ONNX image and audio encoders together: every still image and sampled video
frame in one image-encoder call, and every audio wave (clips and video soundtracks) in one audio-encoder call
per length. One call per item cost more than the encoding itself for short clips (session overhead, small
matrices); the codes are the ones each item gets alone, since rows of a batch do not mix.

Segments are replaced by the codes the DocumentTokenizer would compute for them (ImageCodes, AudioCodes,
VideoCodes), so it then only maps codes to ids. What the DocumentTokenizer refuses (audio at another rate,
clips too short to tokenize) is left as it is, for it to refuse with its own message.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from omniembed.tokenization.document import (
    AudioCodes,
    AudioSegment,
    ImageCodes,
    ImageSegment,
    VideoCodes,
    VideoSegment,
    sample_frame_indices,
)

AUDIO_BATCH = 32  # waves per audio-encoder call
_BESIDE: ThreadPoolExecutor | None = None
_BESIDE_LOCK = threading.Lock()


def _beside() -> ThreadPoolExecutor:
    """One thread that runs the image encoder beside the audio encoder (both sessions release the GIL)."""
    global _BESIDE
    with _BESIDE_LOCK:
        if _BESIDE is None:
            _BESIDE = ThreadPoolExecutor(1, thread_name_prefix="omniembed-image-encoder")
        return _BESIDE


def encode_media_together(docs: list[list], image, audio, video_fps: float | None) -> list[list]:
    """`docs` (segment lists) with their images, frames and waves replaced by codes; see the module docstring.
    `image` / `audio`: OnnxImageTokenizer / OnnxAudioTokenizer."""
    pictures: list[np.ndarray] = []  # every picture to encode, in order
    waves: list[np.ndarray] = []
    plan = []  # (doc, seg, kind, picture slice, wave index or None, kept frame indices)
    for d, segs in enumerate(docs):
        for s, seg in enumerate(segs):
            if isinstance(seg, ImageSegment):
                plan.append((d, s, "image", _take(pictures, [seg.pixels]), None, None))
            elif isinstance(seg, AudioSegment):
                if _encodable(seg.wave, seg.sample_rate, audio):
                    plan.append((d, s, "audio", None, _put(waves, seg.wave), None))
            elif isinstance(seg, VideoSegment):
                track = seg.audio is None or _encodable(seg.audio, seg.sample_rate, audio)
                if not track:
                    continue
                keep = sample_frame_indices(seg.times, video_fps)
                frames = _take(pictures, list(seg.frames[keep]))
                plan.append((d, s, "video", frames, None if seg.audio is None else _put(waves, seg.audio), keep))
    if not plan:
        return docs
    if pictures and waves:  # videos with sound: the image encoder runs while the audio front-end computes
        pending = _beside().submit(lambda: image.encode(image.preprocess(pictures)))
        audio_codes = _encode_waves(waves, audio)
        image_codes = pending.result()
    else:
        image_codes = image.encode(image.preprocess(pictures)) if pictures else None  # (K, N)
        audio_codes = _encode_waves(waves, audio)
    out = [list(segs) for segs in docs]
    for d, s, kind, frames, wave, keep in plan:
        seg = docs[d][s]
        if kind == "image":
            out[d][s] = ImageCodes(image_codes[frames][0])
        elif kind == "audio":
            out[d][s] = AudioCodes(audio_codes[wave])
        else:
            codes = image_codes[frames] if frames.stop > frames.start else np.zeros((0, image.tokens_per_image), np.int64)
            out[d][s] = VideoCodes(codes, seg.times[keep], None if wave is None else audio_codes[wave])
    return out


def _take(pictures: list, new: list) -> slice:
    start = len(pictures)
    pictures.extend(new)
    return slice(start, len(pictures))


def _put(waves: list, wave: np.ndarray) -> int:
    waves.append(wave)
    return len(waves) - 1


def _encodable(wave: np.ndarray, rate: int | None, audio) -> bool:
    """Whether the audio encoder takes this wave as it is (else the DocumentTokenizer says why not, or maps an
    empty track to an empty block)."""
    return rate == audio.sample_rate and len(wave) > audio.n_fft // 2


def _encode_waves(waves: list[np.ndarray], audio) -> list[np.ndarray]:
    """Each wave's codes, waves of one length encoded as one batch."""
    out: list[np.ndarray | None] = [None] * len(waves)
    by_length = defaultdict(list)
    for i, w in enumerate(waves):
        by_length[len(w)].append(i)
    for idx in by_length.values():
        for start in range(0, len(idx), AUDIO_BATCH):
            part = idx[start:start + AUDIO_BATCH]
            batch = np.stack([np.asarray(waves[i], dtype=np.float32) for i in part])  # (B, n)
            for i, codes in zip(part, audio.encode_batch(batch)):
                out[i] = codes
    return out
