"""Media decoding: bytes or paths of images, audio and video in, numpy arrays out (Pillow, PyAV).

Every decoder takes bytes or a path and raises omniembed.errors.MediaError(source, reason) for anything it
cannot decode: empty, wrong type, truncated, corrupt, over a size limit, or missing. `source` is the path,
or "<N bytes>" for in-memory data. The encoders turn arrays into real encoded bytes (for the synthetic
world and for tests).
"""

from omniembed.errors import MediaError
from omniembed.media.limits import (
    MAX_AUDIO_SECONDS,
    MAX_DECODED_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_MEDIA_BYTES,
    MAX_VIDEO_SECONDS,
    SAMPLE_RATE,
)
from omniembed.media.encode import encode_audio, encode_image, encode_video
from omniembed.media.image import decode_image
from omniembed.media.audio import decode_audio
from omniembed.media.video import Video, decode_video
from omniembed.media.sniff import detect_modality

__all__ = [
    "MediaError",
    "SAMPLE_RATE",
    "MAX_MEDIA_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_AUDIO_SECONDS",
    "MAX_VIDEO_SECONDS",
    "MAX_DECODED_BYTES",
    "encode_image",
    "encode_audio",
    "encode_video",
    "decode_image",
    "decode_audio",
    "decode_video",
    "Video",
    "detect_modality",
]
