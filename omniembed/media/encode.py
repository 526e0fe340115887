"""Encode numpy arrays into real media bytes (PNG/JPEG/WebP, WAV/FLAC/MP3/OGG, MP4/WebM).

The synthetic world generator writes its items with these, and tests use them to get genuine encoded bytes
to decode. Bad arguments are programming errors and raise ValueError, not MediaError.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from omniembed.media.limits import SAMPLE_RATE

# fmt -> Pillow format name
_PILLOW_FORMATS = {
    "png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "bmp": "BMP", "tiff": "TIFF", "gif": "GIF",
}

# fmt -> (container, codec, sample format, sample rates the codec accepts or None for any)
_AUDIO_CODECS = {
    "wav": ("wav", "pcm_s16le", "s16", None),
    "flac": ("flac", "flac", "s16", None),
    "mp3": ("mp3", "libmp3lame", "fltp", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)),
    # Opus rather than Vorbis: FFmpeg's native Vorbis encoder is experimental; Opus runs at 8/12/16/24/48 kHz.
    "ogg": ("ogg", "libopus", "flt", (8000, 12000, 16000, 24000, 48000)),
    "m4a": ("mp4", "aac", "fltp", None),  # audio-only MP4
}

# fmt -> (container, video codec, audio codec, audio sample format, audio rates or None, codec options)
_VIDEO_CODECS = {
    # cpu-independent: x264 otherwise picks CPU-specific algorithms, and on some CPUs (AVX-512 Zen 5 measured)
    # two processes encoding the same frames wrote different streams: the synthetic world must not depend on it
    "mp4": ("mp4", "libx264", "aac", "fltp", None, {"crf": "18", "preset": "veryfast", "threads": "2",
                                                    "x264-params": "cpu-independent=1"}),
    "webm": (
        "webm",
        "libvpx-vp9",
        "libopus",
        "flt",
        (8000, 12000, 16000, 24000, 48000),
        {"crf": "24", "b": "0", "deadline": "realtime", "cpu-used": "8", "threads": "2"},
    ),
}


def encode_image(pixels: np.ndarray, fmt: str = "png", *, quality: int = 95) -> bytes:
    """Encode an (H, W, 3) uint8 RGB array. `quality` applies to JPEG and WebP (WebP at 100 is lossless)."""
    key = fmt.lower()
    if key not in _PILLOW_FORMATS:
        raise ValueError(f"encode_image: unsupported format {fmt!r}; expected one of {sorted(_PILLOW_FORMATS)}")
    pixels = _check_rgb(pixels, "encode_image")
    image = Image.fromarray(pixels, mode="RGB")
    options: dict = {}
    if key in ("jpeg", "jpg"):
        options = {"quality": quality}
    elif key == "webp":
        options = {"lossless": True} if quality >= 100 else {"quality": quality}
    buf = io.BytesIO()
    image.save(buf, format=_PILLOW_FORMATS[key], **options)
    return buf.getvalue()


def encode_audio(wave: np.ndarray, sample_rate: int, fmt: str = "wav") -> bytes:
    """Encode float32 samples in [-1, 1], shape (n,) or (n, channels) with 1 or 2 channels, as wav, flac,
    mp3, ogg (Opus) or m4a (AAC in MP4).

    Rates a codec cannot carry (Opus at 44.1 kHz, say) are resampled to the nearest rate it can.
    """
    key = fmt.lower()
    if key not in _AUDIO_CODECS:
        raise ValueError(f"encode_audio: unsupported format {fmt!r}; expected one of {sorted(_AUDIO_CODECS)}")
    container_fmt, codec, sample_fmt, rates = _AUDIO_CODECS[key]
    planar = _check_wave(wave, sample_rate, "encode_audio")  # (channels, n)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_fmt) as out:
        stream = _add_audio_stream(out, codec, sample_fmt, _pick_rate(sample_rate, rates), planar.shape[0])
        _mux_audio(out, stream, planar, sample_rate)
    return buf.getvalue()


def encode_video(
    frames: np.ndarray,
    fps: float,
    fmt: str = "mp4",
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> bytes:
    """Encode (T, H, W, 3) uint8 RGB frames at `fps`, with an optional audio track ((n,) or (n, channels)).

    H.264 and VP9 in 4:2:0 need even sizes: an odd height or width is padded by repeating the last row or
    column, so the decoded frames are one pixel larger there.
    """
    key = fmt.lower()
    if key not in _VIDEO_CODECS:
        raise ValueError(f"encode_video: unsupported format {fmt!r}; expected one of {sorted(_VIDEO_CODECS)}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise ValueError(
            f"encode_video: frames must be (T, H, W, 3) uint8 with T >= 1, got {frames.shape} {frames.dtype}"
        )
    if not fps > 0:
        raise ValueError(f"encode_video: fps must be positive, got {fps}")
    container_fmt, vcodec, acodec, sample_fmt, rates, options = _VIDEO_CODECS[key]
    frames = _pad_even(frames)  # (T, H', W', 3)
    rate = Fraction(fps).limit_denominator(1001)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_fmt) as out:
        vstream = out.add_stream(vcodec, rate=rate, options=options)
        vstream.width, vstream.height = frames.shape[2], frames.shape[1]
        vstream.pix_fmt = "yuv420p"
        vstream.codec_context.time_base = 1 / rate
        astream = planar = None
        if audio is not None:
            planar = _check_wave(audio, sample_rate, "encode_video")  # (channels, n)
            astream = _add_audio_stream(out, acodec, sample_fmt, _pick_rate(sample_rate, rates), planar.shape[0])
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            out.mux(vstream.encode(frame))
        out.mux(vstream.encode(None))
        if astream is not None:
            _mux_audio(out, astream, planar, sample_rate)
    return buf.getvalue()


def _check_rgb(pixels: np.ndarray, who: str) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[-1] != 3 or pixels.dtype != np.uint8 or 0 in pixels.shape:
        raise ValueError(
            f"{who}: pixels must be a non-empty (H, W, 3) uint8 array, got {pixels.shape} {pixels.dtype}"
        )
    return np.ascontiguousarray(pixels)


def _check_wave(wave: np.ndarray, sample_rate: int, who: str) -> np.ndarray:
    """Validate samples and return them planar, (channels, n) float32."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 1:
        wave = wave[:, None]  # (n, 1)
    if wave.ndim != 2 or wave.shape[1] not in (1, 2) or wave.shape[0] == 0:
        raise ValueError(f"{who}: wave must be (n,) or (n, 1|2) with n >= 1, got {wave.shape}")
    if not np.all(np.isfinite(wave)):
        raise ValueError(f"{who}: wave holds NaN or infinite samples")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"{who}: sample_rate must be a positive integer, got {sample_rate}")
    return np.ascontiguousarray(np.clip(wave, -1.0, 1.0).T)  # (channels, n)


def _pick_rate(rate: int, allowed: tuple[int, ...] | None) -> int:
    if allowed is None or rate in allowed:
        return int(rate)
    higher = [r for r in allowed if r >= rate]
    return min(higher) if higher else max(allowed)


def _add_audio_stream(out, codec: str, sample_fmt: str, rate: int, channels: int):
    stream = out.add_stream(codec, rate=rate)
    stream.codec_context.format = sample_fmt
    stream.codec_context.layout = "mono" if channels == 1 else "stereo"
    stream.codec_context.time_base = Fraction(1, rate)
    return stream


def _mux_audio(out, stream, planar: np.ndarray, sample_rate: int) -> None:
    """Feed (channels, n) float32 samples through a resampler that cuts the codec's frame size."""
    ctx = stream.codec_context
    layout = "mono" if planar.shape[0] == 1 else "stereo"
    frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
    frame.sample_rate = int(sample_rate)
    frame.pts = 0
    frame.time_base = Fraction(1, int(sample_rate))
    # Fixed-size codecs (AAC 1024, MP3 1152, Opus 960) reject frames of any other length but the last.
    resampler = av.AudioResampler(
        format=ctx.format.name, layout=layout, rate=ctx.sample_rate, frame_size=ctx.frame_size or None
    )
    for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
        out.mux(stream.encode(chunk))
    out.mux(stream.encode(None))


def _pad_even(frames: np.ndarray) -> np.ndarray:
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frames)
