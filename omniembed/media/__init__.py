"""Media decoding: bytes or paths of images, audio and video in, numpy arrays out (Pillow, PyAV)."""
