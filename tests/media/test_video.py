"""decode_video on real MP4/WebM bytes: frame sampling by presentation time, order, audio track."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from omniembed.media import SAMPLE_RATE, Video, decode_video, encode_video
from omniembed.media.video import FrameSampler

VARIANTS = ["mp4", "mp4+audio", "webm", "webm+audio"]


def _frame_index(frames: np.ndarray) -> np.ndarray:
    """Read back the index coloured_frames painted into each frame (red = 8 * index)."""
    red = frames[:, 8:-8, 8:-8, 0].astype(np.float64).mean(axis=(1, 2))  # (T,)
    return np.round(red / 8).astype(int)


@pytest.mark.parametrize("variant", VARIANTS)
def test_frames_sampled_at_2fps_from_10fps_video_are_every_fifth_in_order(video_bytes, variant):
    video = decode_video(video_bytes[variant], fps=2.0)  # 30 frames at 10 fps
    assert isinstance(video, Video)
    assert video.frames.shape == (6, 32, 48, 3) and video.frames.dtype == np.uint8
    np.testing.assert_allclose(video.times, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5], atol=1e-3)
    np.testing.assert_array_equal(_frame_index(video.frames), [0, 5, 10, 15, 20, 25])
    assert abs(video.duration - 3.0) < 0.05


@pytest.mark.parametrize("variant", VARIANTS)
def test_sampling_at_3fps_takes_the_first_frame_at_or_after_each_instant(video_bytes, variant):
    video = decode_video(video_bytes[variant], fps=3.0)
    # Instants 0, 1/3, 2/3, 1, ... fall between 10 fps frames; the next frame is taken.
    np.testing.assert_array_equal(_frame_index(video.frames), [0, 4, 7, 10, 14, 17, 20, 24, 27])
    np.testing.assert_allclose(video.times, np.array([0, 4, 7, 10, 14, 17, 20, 24, 27]) / 10, atol=1e-3)


@pytest.mark.parametrize("variant", ["mp4", "webm"])
def test_sampling_faster_than_the_source_returns_each_frame_once(video_bytes, variant):
    video = decode_video(video_bytes[variant], fps=25.0)
    np.testing.assert_array_equal(_frame_index(video.frames), np.arange(30))


@pytest.mark.parametrize("variant", ["mp4+audio", "webm+audio"])
def test_max_frames_stops_the_frames_but_keeps_the_whole_audio_track(video_bytes, variant):
    video = decode_video(video_bytes[variant], fps=10.0, max_frames=4)
    np.testing.assert_array_equal(_frame_index(video.frames), [0, 1, 2, 3])
    assert abs(len(video.audio) / SAMPLE_RATE - 3.0) < 0.05


@pytest.mark.parametrize("variant", ["mp4+audio", "webm+audio"])
def test_audio_track_comes_back_mono_at_the_requested_rate(video_bytes, variant):
    video = decode_video(video_bytes[variant], sample_rate=8000)
    assert video.sample_rate == 8000 and video.audio.dtype == np.float32 and video.audio.ndim == 1
    assert abs(len(video.audio) / 8000 - 3.0) < 0.05
    spectrum = np.abs(np.fft.rfft(video.audio))
    assert abs(np.argmax(spectrum) * 8000 / len(video.audio) - 300.0) <= 1.0


@pytest.mark.parametrize("variant", ["mp4", "webm"])
def test_video_without_an_audio_track_has_audio_none(video_bytes, variant):
    assert decode_video(video_bytes[variant]).audio is None


def test_with_audio_false_skips_the_audio_track(video_bytes):
    assert decode_video(video_bytes["mp4+audio"], with_audio=False).audio is None


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_odd_frame_sizes_are_padded_to_even_by_repeating_the_edge(make, fmt):
    frames = make.coloured_frames(4, height=31, width=45)
    video = decode_video(encode_video(frames, 4.0, fmt), fps=4.0)
    assert video.frames.shape == (4, 32, 46, 3)
    np.testing.assert_array_equal(_frame_index(video.frames), [0, 1, 2, 3])


def test_fractional_frame_rate_keeps_true_presentation_times(make):
    # 29.97 fps (30000/1001): frame k sits at k * 1001/30000 s.
    video = decode_video(encode_video(make.coloured_frames(12), 30000 / 1001, "mp4"), fps=10.0)
    np.testing.assert_allclose(video.times, np.array([0, 3, 6, 9]) * 1001 / 30000, atol=1e-3)
    np.testing.assert_array_equal(_frame_index(video.frames), [0, 3, 6, 9])


def test_video_decodes_from_a_path(tmp_path, video_bytes):
    path = tmp_path / "clip.webm"
    path.write_bytes(video_bytes["webm"])
    np.testing.assert_array_equal(decode_video(path).frames, decode_video(video_bytes["webm"]).frames)


def test_frame_sampler_keeps_first_frame_at_or_after_each_instant():
    sampler = FrameSampler(fps=2.0)
    times = [0.0, 0.3, 0.499_9995, 0.7, 0.9, 1.2, 1.6]  # 0.4999995 is 0.5 up to float rounding
    assert [sampler.offer(t) for t in times] == [True, False, True, False, False, True, True]


def test_frame_sampler_never_keeps_frames_before_zero_and_honours_max_frames():
    sampler = FrameSampler(fps=1.0, max_frames=2)
    assert [sampler.offer(t) for t in [-0.5, 0.0, 1.0, 2.0]] == [False, True, True, False]
    assert sampler.full


@pytest.mark.parametrize("fps", [0.0, -1.0, float("nan"), float("inf")])
def test_frame_sampler_rejects_a_nonpositive_or_nonfinite_rate(fps):
    with pytest.raises(ValueError, match="fps"):
        FrameSampler(fps=fps)


# angle: FFmpeg's convention, degrees counterclockwise; -90 is the usual portrait phone clip.
@pytest.mark.parametrize(
    "angle, shape, corner",
    [(0, (16, 32), (0, 0)), (-90, (32, 16), (0, -1)), (90, (32, 16), (-1, 0)), (180, (16, 32), (-1, -1))],
)
def test_display_matrix_rotation_is_applied_like_a_player(angle, shape, corner):
    frames = np.zeros((3, 16, 32, 3), np.uint8)
    frames[:, :4, :4] = (255, 0, 0)  # mark the top-left corner
    data = bytearray(encode_video(frames, 10.0, "mp4"))
    # Write the rotation into the track header's matrix, as phone cameras do (16.16 fixed point).
    cos, sin = round(np.cos(np.radians(angle))), round(np.sin(np.radians(angle)))
    matrix_at = data.index(b"tkhd") + 4 + 4 + 20 + 8 + 8  # after version/flags, times, id, duration, layer...
    # Matrix entries a, b, u, c, d: a rotation by `angle` with no skew.
    data[matrix_at:matrix_at + 20] = struct.pack(">5i", cos << 16, -sin << 16, 0, sin << 16, cos << 16)
    video = decode_video(bytes(data), fps=10.0)
    assert video.frames.shape[1:3] == shape
    row, col = corner
    marked = video.frames[0, 1 if row == 0 else -2, 1 if col == 0 else -2]
    assert marked[0] > 200 and marked[1] < 60, f"angle {angle}: corner {corner} is {marked}"
