"""Media decoding: bytes or paths of images, audio and video in, numpy arrays out (Pillow, PyAV)."""

from omniembed.media.limits import (
    MAX_AUDIO_SECONDS,
    MAX_IMAGE_PIXELS,
    MAX_MEDIA_BYTES,
    MAX_VIDEO_SECONDS,
    SAMPLE_RATE,
)
from omniembed.media.encode import encode_audio, encode_image, encode_video

__all__ = [
    "SAMPLE_RATE",
    "MAX_MEDIA_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_AUDIO_SECONDS",
    "MAX_VIDEO_SECONDS",
    "encode_image",
    "encode_audio",
    "encode_video",
]
