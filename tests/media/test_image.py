"""decode_image on real encoded bytes: round trips per format and the conversions to (H, W, 3) RGB."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from omniembed.media import decode_image, encode_image

# Mean absolute error per channel value allowed after a round trip; 0 means bit-exact.
ROUND_TRIP_TOLERANCE = {"png": 0, "bmp": 0, "tiff": 0, "jpeg": 2.0, "webp": 3.0, "gif": 3.0}


def _pillow_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", sorted(ROUND_TRIP_TOLERANCE))
def test_image_round_trip_keeps_pixels_within_codec_tolerance(image_bytes, make, fmt):
    original = make.smooth_image()
    decoded = decode_image(image_bytes[fmt])
    assert decoded.shape == original.shape and decoded.dtype == np.uint8
    error = np.abs(decoded.astype(np.int16) - original).mean()
    if ROUND_TRIP_TOLERANCE[fmt] == 0:
        np.testing.assert_array_equal(decoded, original)
    else:
        assert error <= ROUND_TRIP_TOLERANCE[fmt], f"{fmt}: mean abs error {error:.2f}"


def test_lossless_webp_round_trips_exactly(make):
    original = make.smooth_image()
    np.testing.assert_array_equal(decode_image(encode_image(original, "webp", quality=100)), original)


def test_image_decodes_from_str_and_pathlike_paths(tmp_path, image_bytes, make):
    path = tmp_path / "picture.png"
    path.write_bytes(image_bytes["png"])
    np.testing.assert_array_equal(decode_image(path), decode_image(str(path)))
    np.testing.assert_array_equal(decode_image(path), make.smooth_image())


def test_alpha_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200  # red, at varying opacity
    rgba[0, :, 3] = 0  # fully transparent row -> white
    rgba[1, :, 3] = 255  # opaque row -> the colour itself
    rgba[2, :, 3] = 128  # half -> halfway to white
    decoded = decode_image(_pillow_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert decoded.shape == (4, 4, 3)
    np.testing.assert_array_equal(decoded[0], np.full((4, 3), 255))
    np.testing.assert_array_equal(decoded[1], np.tile([200, 0, 0], (4, 1)))
    np.testing.assert_allclose(decoded[2, 0], [228, 127, 127], atol=2)


def test_palette_image_with_transparent_index_becomes_white_there():
    palette_image = Image.new("P", (3, 2), 1)
    palette_image.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    palette_image.putpixel((0, 0), 0)
    decoded = decode_image(_pillow_bytes(palette_image, "PNG", transparency=0))
    np.testing.assert_array_equal(decoded[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(decoded[1, 2], [10, 200, 30])


def test_greyscale_becomes_three_equal_channels():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    decoded = decode_image(_pillow_bytes(Image.fromarray(grey, "L"), "PNG"))
    assert decoded.shape == (3, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], grey)


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    grey16 = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(grey16)  # mode I;16
    decoded = decode_image(_pillow_bytes(image, "PNG"))
    np.testing.assert_array_equal(decoded[0, :, 0], [0, 128, 255])


def test_cmyk_jpeg_is_converted_to_rgb():
    cyan = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    decoded = decode_image(_pillow_bytes(cyan, "JPEG", quality=95))
    np.testing.assert_allclose(decoded[4, 4], [0, 255, 255], atol=8)


def test_exif_orientation_is_applied():
    # Orientation 6 means "rotate 90 degrees clockwise to display": a 20-wide, 10-tall picture shows
    # 10 wide and 20 tall, and its top-left corner lands top-right.
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:3, :3] = (255, 0, 0)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    decoded = decode_image(_pillow_bytes(image, "JPEG", quality=95, exif=exif.tobytes()))
    assert decoded.shape == (20, 10, 3)
    assert decoded[1, -2, 0] > 200 and decoded[1, 1, 0] < 60


def test_animated_gif_gives_its_first_frame():
    first = Image.new("RGB", (6, 6), (255, 0, 0))
    second = Image.new("RGB", (6, 6), (0, 0, 255))
    data = _pillow_bytes(first, "GIF", save_all=True, append_images=[second], duration=100)
    decoded = decode_image(data)
    np.testing.assert_array_equal(decoded[3, 3], [255, 0, 0])
