"""Fixtures for the media tests: real encoded bytes made from known arrays, no mocks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from omniembed.media import encode_audio, encode_image, encode_video

IMAGE_FORMATS = ["png", "jpeg", "webp", "gif", "bmp", "tiff"]
AUDIO_FORMATS = ["wav", "flac", "mp3", "ogg"]
VIDEO_FORMATS = ["mp4", "webm"]


def smooth_image(height: int = 48, width: int = 64) -> np.ndarray:
    """A gradient with a block: smooth enough that lossy codecs keep it close."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 96)], axis=-1)
    img[height // 4: height // 2, width // 4: width // 2] = (200, 30, 60)
    return img.astype(np.uint8)  # (H, W, 3)


def tone(freq: float, seconds: float, rate: int, channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels == 1 else np.repeat(wave[:, None], channels, axis=1)  # (n,) or (n, C)


def coloured_frames(count: int, height: int = 32, width: int = 48) -> np.ndarray:
    """Frame i is a flat colour read back as an index: red steps by 8 per frame, green counts down."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[..., 0] = (np.arange(count) * 8 % 256)[:, None, None]
    frames[..., 1] = (255 - np.arange(count) * 8 % 256)[:, None, None]
    frames[..., 2] = 40
    return frames  # (T, H, W, 3)


@pytest.fixture(scope="session")
def image_bytes() -> dict[str, bytes]:
    img = smooth_image()
    return {fmt: encode_image(img, fmt) for fmt in IMAGE_FORMATS}


@pytest.fixture(scope="session")
def audio_bytes() -> dict[str, bytes]:
    wave = tone(440.0, 1.0, 44100, channels=2)
    return {fmt: encode_audio(wave, 44100, fmt) for fmt in AUDIO_FORMATS}


@pytest.fixture(scope="session")
def video_bytes() -> dict[str, bytes]:
    """Three seconds at 10 fps; "<fmt>+audio" variants carry a 300 Hz tone."""
    frames = coloured_frames(30)
    audio = tone(300.0, 3.0, 16000)
    out = {}
    for fmt in VIDEO_FORMATS:
        out[fmt] = encode_video(frames, 10.0, fmt)
        out[f"{fmt}+audio"] = encode_video(frames, 10.0, fmt, audio=audio, sample_rate=16000)
    return out


@pytest.fixture(scope="session")
def all_media(image_bytes, audio_bytes, video_bytes) -> dict[str, bytes]:
    return {**image_bytes, **audio_bytes, **video_bytes}


@pytest.fixture(scope="session")
def make():
    """The array makers above, for tests (pytest's importlib mode keeps conftest out of `import`)."""
    return SimpleNamespace(smooth_image=smooth_image, tone=tone, coloured_frames=coloured_frames)
