"""Pictures decoded for a tokenizer's input size: large JPEGs at a reduced DCT scale, large video frames scaled by
FFmpeg as they are converted. The tokenizer's own square-and-resize of the reduced picture stays within a
small bound of that of the full picture; pictures not much larger than the input decode exactly as before."""

import numpy as np
import pytest
from PIL import Image

from omniembed.errors import MediaError
from omniembed.media import decode_image, decode_video, encode_image, encode_video
from omniembed.media.image import REDUCE_OVER, reduced_size, to_square

SIDE = 32
POLICIES = ("pad", "crop", "stretch")
# Worst case over the policies on these scenes: mean absolute difference in 8-bit levels, and the largest one
MEAN_BOUND, MAX_BOUND = 1.5, 32


def scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Gradients, a few solid discs and sensor-like noise: edges and smooth areas both."""
    y, x = np.mgrid[:height, :width]
    img = np.stack([x / width * 200 + 30, y / height * 180 + 40, (x + y) / (width + height) * 150 + 50], -1)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        cx, cy, r = rng.integers(0, width), rng.integers(0, height), rng.integers(height // 10, height // 4)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r ** 2] = rng.integers(0, 255, 3)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def squared_difference(full: np.ndarray, reduced: np.ndarray, policy: str) -> np.ndarray:
    a = np.asarray(to_square(Image.fromarray(full), SIDE, policy), dtype=np.int32)
    b = np.asarray(to_square(Image.fromarray(reduced), SIDE, policy), dtype=np.int32)
    return np.abs(a - b)


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (300, 400), (301, 401), (2000, 1500)])
def test_a_large_jpeg_decodes_reduced_and_squares_to_nearly_the_same_pixels(size):
    data = encode_image(scene(*size), "jpeg")
    full, reduced = decode_image(data), decode_image(data, side=SIDE)
    assert min(reduced.shape[:2]) >= REDUCE_OVER * SIDE and reduced.size < full.size
    for policy in POLICIES:
        diff = squared_difference(full, reduced, policy)
        assert diff.mean() <= MEAN_BOUND and diff.max() <= MAX_BOUND, (policy, diff.mean(), diff.max())


@pytest.mark.parametrize("size", [(640, 360), (1280, 720)])
def test_large_video_frames_are_scaled_in_ffmpeg_to_nearly_the_same_pixels(size):
    frames = np.stack([np.roll(scene(*size, seed=1), 3 * k, axis=1) for k in range(16)])
    data = encode_video(frames, 8, "mp4")
    full, reduced = decode_video(data, fps=1.0), decode_video(data, fps=1.0, side=SIDE)
    assert reduced.frames.shape[1:3] == reduced_size(size[0], size[1], SIDE)[::-1]
    np.testing.assert_array_equal(reduced.times, full.times)
    np.testing.assert_array_equal(reduced.audio if reduced.audio is not None else [], full.audio if full.audio
                                  is not None else [])
    for policy in POLICIES:
        for a, b in zip(full.frames, reduced.frames):
            diff = squared_difference(a, b, policy)
            assert diff.mean() <= MEAN_BOUND and diff.max() <= MAX_BOUND, (policy, diff.mean(), diff.max())


def test_pictures_not_much_larger_than_the_input_decode_exactly_as_before():
    pic = scene(96, 96)
    for fmt in ("jpeg", "png"):
        data = encode_image(pic, fmt)
        np.testing.assert_array_equal(decode_image(data, side=SIDE), decode_image(data))
    clip = encode_video(np.stack([pic] * 8), 8, "mp4")
    np.testing.assert_array_equal(decode_video(clip, fps=2.0, side=SIDE).frames, decode_video(clip, fps=2.0).frames)


def test_limits_are_checked_on_the_full_picture_whatever_the_side():
    data = encode_image(scene(640, 480), "jpeg")
    with pytest.raises(MediaError, match="640x480 = 307200 pixels, over the limit of 1000"):
        decode_image(data, side=SIDE, max_pixels=1000)


@pytest.mark.parametrize("size,expected", [((64, 64), None), ((320, 240), None), ((256, 256), (128, 128)),
                                           ((640, 480), (320, 240)), ((1920, 1080), (240, 135)),
                                           ((7680, 4320), (480, 270))])
def test_the_reduction_is_a_power_of_two_keeping_four_times_the_side(size, expected):
    assert reduced_size(*size, SIDE) == expected
