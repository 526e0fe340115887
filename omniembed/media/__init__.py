"""Media decoding: bytes or paths of images, audio and video in, numpy arrays out (Pillow, PyAV).

- decode_image -> (H, W, 3) uint8 RGB: PNG, JPEG, WebP (also GIF, BMP, TIFF).
- decode_audio -> (n,) float32 mono in [-1, 1] at SAMPLE_RATE: WAV, FLAC, MP3, Ogg (Opus/Vorbis), and the
  audio track of MP4/M4A and WebM/Matroska.
- decode_video -> Video(frames, times, audio, sample_rate, duration): MP4, WebM/Matroska, frames sampled
  at `fps` by presentation time.
- detect_modality -> "image" | "audio" | "video", from the bytes alone.

The format is recognised from magic numbers, never from a file name. Every decoder raises
omniembed.errors.MediaError(source, reason) for anything it cannot decode: empty, not media or the wrong
modality, truncated, detectably corrupt, over a limit (MAX_MEDIA_BYTES, MAX_IMAGE_PIXELS, MAX_AUDIO_SECONDS,
MAX_VIDEO_SECONDS, MAX_DECODED_BYTES; each decoder takes a keyword to change its limit), or a missing
path. `source` is the path, or "<N bytes>" for in-memory data. Damage inside payloads that carry no
checksum (PCM, BMP, MP3 frames, JPEG/WebP/H.264/VP9 picture data) cannot be told from content and decodes
as damaged content. The encoders turn arrays into real encoded bytes, for the synthetic world and tests.
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
