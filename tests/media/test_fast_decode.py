"""The fast decoding paths give the samples and frames of the plain way of decoding the same bytes.

The reference is what decoding was before: every audio frame through FFmpeg's resampler (format, rate) and
averaged, every video frame decoded and the first at or after each sampling instant kept.
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile as sf

from omniembed.media import SAMPLE_RATE, decode_audio, decode_video, encode_audio, encode_video
from omniembed.media import audio as audio_module
from omniembed.media.windows import media_windows


def reference_audio(data: bytes, rate: int = SAMPLE_RATE) -> np.ndarray:
    chunks, resampler = [], None
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            if resampler is None:
                resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=rate)
            chunks += [f.to_ndarray().mean(axis=0) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().mean(axis=0) for f in resampler.resample(None)]
    return np.clip(np.concatenate(chunks).astype(np.float32), -1.0, 1.0)


def _tone(rate: int, seconds: float, channels: int) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    waves = [0.8 * np.sin(2 * np.pi * (330 + 110 * c) * t) for c in range(channels)]
    return np.stack(waves, axis=1)  # (n, channels)


def _wav(rate: int, channels: int, subtype: str, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(rate, 1.5, channels), rate, subtype=subtype, format=fmt)
    return buf.getvalue()


SUBTYPES = ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "PCM_U8", "ULAW"]


@pytest.mark.parametrize("subtype", SUBTYPES)
@pytest.mark.parametrize("rate,channels", [(16000, 1), (44100, 2), (48000, 6)])
def test_wav_through_libsndfile_is_sample_identical_to_ffmpeg(subtype, rate, channels):
    data = _wav(rate, channels, subtype)
    np.testing.assert_array_equal(decode_audio(data), reference_audio(data))


@pytest.mark.parametrize("rate", [16000, 44100])
def test_flac_through_libsndfile_is_sample_identical_to_ffmpeg(rate):
    data = _wav(rate, 2, "PCM_16", "FLAC")
    np.testing.assert_array_equal(decode_audio(data), reference_audio(data))


def test_double_wav_resampled_differs_by_float_rounding_only():
    # FFmpeg resamples doubles in double precision; the block path resamples float32 (FFmpeg's float scaling)
    data = _wav(44100, 2, "DOUBLE")
    np.testing.assert_allclose(decode_audio(data), reference_audio(data), atol=1e-6)


@pytest.mark.parametrize("fmt", ["mp3", "ogg", "m4a", "wav"])
def test_ffmpeg_path_without_a_per_frame_resampler_is_sample_identical(fmt, monkeypatch):
    data = encode_audio(_tone(44100, 1.5, 2).astype(np.float32), 44100, fmt)
    monkeypatch.setattr(audio_module, "open_pcm", lambda src: None)  # WAV too through FFmpeg
    np.testing.assert_array_equal(decode_audio(data), reference_audio(data))


def test_ffmpeg_path_at_the_target_rate_is_sample_identical():
    data = encode_audio(_tone(SAMPLE_RATE, 1.5, 1).astype(np.float32), SAMPLE_RATE, "ogg")
    np.testing.assert_array_equal(decode_audio(data), reference_audio(data))


def test_a_wav_read_from_disk_in_windows_matches_the_whole_decode(tmp_path):
    path = tmp_path / "long.wav"
    path.write_bytes(_wav(44100, 2, "PCM_16"))
    full = decode_audio(path)
    windows = list(media_windows(path, "audio", window=0.5, stride=0.25))
    assert len(windows) > 3
    for w in windows:
        a, b = int(round(w.start * SAMPLE_RATE)), int(round(w.end * SAMPLE_RATE))
        np.testing.assert_array_equal(w.wave, full[a:b])


def test_wav_over_the_limit_is_refused_from_its_header():
    with pytest.raises(Exception, match="longer than the limit of 1 s"):
        decode_audio(_wav(44100, 2, "PCM_16"), max_seconds=1.0)


def reference_frames(data: bytes, fps: float) -> tuple[np.ndarray, list[float]]:
    frames, times, next_k = [], [], 0
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        start = float(stream.start_time * stream.time_base)
        for frame in container.decode(stream):
            t = frame.time - start
            if t + 1e-3 >= next_k / fps:
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(t)
                next_k = int(np.floor((t + 1e-3) * fps)) + 1
    return np.stack(frames), times


@pytest.fixture(scope="module")
def moving_clip() -> bytes:
    """3 s at 25 fps of a noisy moving pattern: H.264 with B-frames, so skipping has frames to skip."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, 2 * k, axis=1) for k in range(75)])
    return encode_video(frames, 25, "mp4")


@pytest.mark.parametrize("fps", [0.5, 1.0, 2.0, 7.0, 30.0])
def test_sampled_video_frames_are_those_of_decoding_every_frame(moving_clip, fps):
    want, times = reference_frames(moving_clip, fps)
    got = decode_video(moving_clip, fps=fps)
    np.testing.assert_allclose(got.times, times)
    np.testing.assert_array_equal(got.frames, want)


def test_sparse_sampling_skips_frames_nothing_refers_to(moving_clip):
    with av.open(io.BytesIO(moving_clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        decoded = sum(1 for _ in container.decode(stream))
    assert decoded < 75  # the clip has frames the decoder may skip; the test above proves they are not needed


def test_decoders_on_one_thread_give_the_same_frames_and_samples(moving_clip):
    from omniembed.media import container as container_module

    wave = (0.2 * np.random.default_rng(5).standard_normal(2 * SAMPLE_RATE)).astype(np.float32)
    m4a = encode_audio(wave, SAMPLE_RATE, "m4a")
    want_video, want_audio = decode_video(moving_clip, fps=7.0), decode_audio(m4a)
    container_module.set_codec_threads(1)  # as the decoding workers run
    try:
        with av.open(io.BytesIO(moving_clip)) as c:
            video, _ = container_module.pick_streams(c, "clip")
            assert video.codec_context.thread_count == 1
        got = decode_video(moving_clip, fps=7.0)
        np.testing.assert_array_equal(got.frames, want_video.frames)
        np.testing.assert_array_equal(decode_audio(m4a), want_audio)
    finally:
        container_module.set_codec_threads(None)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_32", "FLOAT"])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_plain_pcm_wav_in_memory_is_read_by_numpy_with_libsndfiles_samples(subtype, channels):
    """The numpy reader (no libsndfile callbacks) gives bit for bit what libsndfile reads; 24-bit and anything
    it does not know stay with libsndfile."""
    from omniembed.media.pcm import ArrayPcm, open_pcm

    rng = np.random.default_rng(channels)
    samples = rng.uniform(-1, 1, (4001, channels)).astype(np.float32)
    for fmt in ("WAV", "WAVEX"):
        buf = io.BytesIO()
        sf.write(buf, samples, 16000, subtype=subtype, format=fmt)
        data = buf.getvalue()
        ref = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0].T
        pcm = open_pcm(data)
        assert isinstance(pcm, ArrayPcm) and (pcm.rate, pcm.channels, pcm.frames) == (16000, channels, 4001)
        assert np.array_equal(pcm.read_all(), ref)
        assert np.array_equal(np.concatenate(list(open_pcm(data).blocks(1000)), axis=1), ref)
    buf = io.BytesIO()
    sf.write(buf, samples, 16000, subtype="PCM_24", format="WAV")
    assert not isinstance(open_pcm(buf.getvalue()), ArrayPcm)
