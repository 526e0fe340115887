"""omniembed.media.windows: long audio and video as a stream of windows, short clips exactly as the decoders
decode them, the duration limit a setting, bad input a MediaError."""

import numpy as np
import pytest

from omniembed.errors import MediaError
from omniembed.media import SAMPLE_RATE, decode_audio, decode_video, encode_audio, encode_video
from omniembed.media.windows import media_windows


def tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_a_short_clip_is_one_window_decoded_as_decode_audio_decodes_it(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(encode_audio(tone(2.5), SAMPLE_RATE))
    for src in (path, path.read_bytes()):
        (w,) = list(media_windows(src, "audio", window=2.0, stride=1.0))
        assert w.whole and w.start == 0.0 and w.end == pytest.approx(2.5)
        np.testing.assert_array_equal(w.wave, decode_audio(path))


def test_a_long_clip_is_cut_into_overlapping_windows_with_a_last_one_at_its_end(tmp_path):
    wave = np.concatenate([tone(1.0, 200 + 50 * k) for k in range(7)])  # 7 s
    path = tmp_path / "long.wav"
    path.write_bytes(encode_audio(wave, SAMPLE_RATE))
    windows = list(media_windows(path, "audio", window=2.0, stride=1.5))
    assert [(w.start, w.end) for w in windows] == [(0.0, 2.0), (1.5, 3.5), (3.0, 5.0), (4.5, 6.5), (5.0, 7.0)]
    full = decode_audio(path)
    for w in windows:  # each window's samples are the decoded clip's, exactly
        np.testing.assert_array_equal(w.wave, full[int(w.start * SAMPLE_RATE):int(w.end * SAMPLE_RATE)])
        assert not w.whole


def test_a_long_video_gives_each_window_its_frames_and_its_sound(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (48, 32, 32, 3), dtype=np.uint8)  # 6 s at 8 fps
    data = encode_video(frames, 8.0, "mp4", audio=tone(6.0), sample_rate=SAMPLE_RATE)
    windows = list(media_windows(data, "video", window=2.0, stride=2.0, fps=2.0))
    assert [(w.start, w.end) for w in windows] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    whole = decode_video(data, fps=2.0)
    for w in windows:
        assert len(w.frames) == 4 and np.all((w.times >= w.start) & (w.times < w.end))
        assert len(w.wave) == pytest.approx(2.0 * SAMPLE_RATE, abs=SAMPLE_RATE * 0.05)
    np.testing.assert_array_equal(np.concatenate([w.frames for w in windows]), whole.frames)
    (short,) = list(media_windows(data, "video", window=5.0, stride=2.5, fps=2.0))
    assert short.whole
    np.testing.assert_array_equal(short.frames, whole.frames)
    np.testing.assert_array_equal(short.times, whole.times)
    np.testing.assert_array_equal(short.wave, whole.audio)


def test_the_duration_limit_is_a_setting_and_bad_input_is_a_media_error(tmp_path):
    path = tmp_path / "long.wav"
    path.write_bytes(encode_audio(tone(5.0), SAMPLE_RATE))
    with pytest.raises(MediaError, match="longer than the limit of 4 s"):
        list(media_windows(path, "audio", window=1.0, stride=1.0, max_seconds=4.0))
    assert len(list(media_windows(path, "audio", window=1.0, stride=1.0, max_seconds=6.0))) == 5
    with pytest.raises(MediaError, match="expected audio"):
        list(media_windows(b"not media at all", "audio", window=1.0, stride=1.0))
    cut = path.read_bytes()[: len(path.read_bytes()) // 2]
    with pytest.raises(MediaError, match="truncated"):
        list(media_windows(cut, "audio", window=1.0, stride=1.0))
    (tmp_path / "cut.wav").write_bytes(cut)
    with pytest.raises(MediaError, match="truncated"):  # from disk too
        list(media_windows(tmp_path / "cut.wav", "audio", window=1.0, stride=1.0))
    with pytest.raises(MediaError, match="no such file"):
        list(media_windows(tmp_path / "absent.wav", "audio", window=1.0, stride=1.0))
