"""The engine's one audio rate and the size limits every decoder applies by default."""

SAMPLE_RATE = 16000  # every waveform in the engine is mono at this rate

MAX_MEDIA_BYTES = 256 * 1024 * 1024  # refuse larger inputs before reading or parsing them
MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # width * height; decompression-bomb guard, checked before decoding
MAX_AUDIO_SECONDS = 600.0  # decoding stops with an error once this much audio has come out
MAX_VIDEO_SECONDS = 300.0  # likewise for video presentation time
MAX_DECODED_BYTES = 2 * 1024**3  # sampled video frames, (T, H, W, 3) uint8, may not outgrow this
