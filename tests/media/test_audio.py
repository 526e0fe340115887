"""decode_audio on real encoded bytes: formats, resampling, mixdown, timing, and video audio tracks."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from omniembed.media import SAMPLE_RATE, decode_audio, encode_audio, encode_video

# Worst interior sample error against the ideal 16 kHz sine: resampling alone for lossless, plus codec noise.
MAX_SAMPLE_ERROR = {"wav": 1e-3, "flac": 1e-3, "mp3": 0.05, "ogg": 0.03}


def _peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * rate / len(wave))


@pytest.mark.parametrize("fmt", sorted(MAX_SAMPLE_ERROR))
def test_stereo_44k_sine_decodes_to_16k_mono_with_its_frequency(audio_bytes, make, fmt):
    wave = decode_audio(audio_bytes[fmt])  # made from 1 s of 440 Hz stereo at 44.1 kHz
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == SAMPLE_RATE  # these codecs state their exact length; the decoder honours it
    assert abs(_peak_hz(wave, SAMPLE_RATE) - 440.0) <= 1.0
    ideal = make.tone(440.0, 1.0, SAMPLE_RATE)
    interior = slice(800, -800)  # the resampler's filter rings at the edges
    error = np.abs(wave[interior] - ideal[interior]).max()
    assert error <= MAX_SAMPLE_ERROR[fmt], f"{fmt}: worst sample error {error:.4f}"


@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_audio_is_resampled_to_the_requested_rate(audio_bytes, rate):
    wave = decode_audio(audio_bytes["flac"], sample_rate=rate)
    assert len(wave) == rate
    assert abs(_peak_hz(wave, rate) - 440.0) <= 1.0


def test_stereo_mixdown_is_the_mean_of_the_channels(make):
    left = make.tone(200.0, 0.5, SAMPLE_RATE, amplitude=0.6)
    right = make.tone(200.0, 0.5, SAMPLE_RATE, amplitude=0.2)
    wave = decode_audio(encode_audio(np.stack([left, right], axis=1), SAMPLE_RATE, "wav"))
    np.testing.assert_allclose(wave, (left + right) / 2, atol=1e-3)


def test_full_scale_in_phase_stereo_does_not_clip(make):
    both = make.tone(200.0, 0.5, SAMPLE_RATE, channels=2, amplitude=0.99)
    wave = decode_audio(encode_audio(both, SAMPLE_RATE, "wav"))
    assert 0.97 < np.abs(wave).max() <= 1.0
    np.testing.assert_allclose(wave, both[:, 0], atol=1e-3)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg", "mp4", "webm"])
def test_an_impulse_keeps_its_time_through_encode_and_decode(fmt):
    click = np.zeros(SAMPLE_RATE, np.float32)  # (n,)
    click[4000] = 0.9  # 0.25 s in
    if fmt in ("mp4", "webm"):
        data = encode_video(np.zeros((10, 16, 16, 3), np.uint8), 10.0, fmt, audio=click)
    else:
        data = encode_audio(click, SAMPLE_RATE, fmt)
    wave = decode_audio(data)
    assert abs(int(np.argmax(np.abs(wave))) - 4000) <= 8  # half a millisecond


@pytest.mark.parametrize("fmt", ["mp4+audio", "webm+audio"])
def test_audio_track_of_a_video_container_decodes(video_bytes, fmt):
    wave = decode_audio(video_bytes[fmt])  # 3 s of a 300 Hz tone beside 30 frames
    assert abs(len(wave) / SAMPLE_RATE - 3.0) < 0.05
    assert abs(_peak_hz(wave, SAMPLE_RATE) - 300.0) <= 1.0


def test_audio_decodes_from_a_path(tmp_path, audio_bytes):
    path = tmp_path / "sound.flac"
    path.write_bytes(audio_bytes["flac"])
    np.testing.assert_array_equal(decode_audio(path), decode_audio(audio_bytes["flac"]))


def test_streamed_wav_with_unknown_data_size_still_decodes(make):
    # Live recorders write 0xFFFFFFFF as the data size; that is not truncation.
    data = bytearray(encode_audio(make.tone(440.0, 0.5, SAMPLE_RATE), SAMPLE_RATE, "wav"))
    at = data.index(b"data") + 4
    data[at:at + 4] = b"\xff\xff\xff\xff"
    assert len(decode_audio(bytes(data))) == SAMPLE_RATE // 2


def test_mp3_without_a_length_tag_is_not_mistaken_for_truncated(audio_bytes):
    # Without a Xing/Info tag FFmpeg estimates the length from the bitrate; that estimate is not trusted.
    data = bytearray(audio_bytes["mp3"])
    at = data.index(b"Info")
    data[at:at + 4] = b"\x00\x00\x00\x00"  # the tag frame now reads as one more frame of silence
    wave = decode_audio(bytes(data))
    assert abs(len(wave) - SAMPLE_RATE) <= 1152  # at most that one extra MP3 frame


def _vorbis_ogg(wave: np.ndarray, rate: int) -> bytes:
    """Ogg Vorbis via FFmpeg's (experimental) native encoder; encode_audio's ogg is Opus."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("vorbis", rate=rate, options={"strict": "experimental"})
        stream.codec_context.layout, stream.codec_context.format = "stereo", "fltp"
        frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")  # (2, n)
        frame.sample_rate, frame.pts = rate, 0
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate, frame_size=1024)
        for chunk in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return buf.getvalue()


def test_ogg_vorbis_decodes_as_well_as_ogg_opus(make):
    wave = decode_audio(_vorbis_ogg(make.tone(440.0, 1.0, 22050), 22050))
    assert abs(len(wave) - SAMPLE_RATE) <= 0.01 * SAMPLE_RATE
    assert abs(_peak_hz(wave, SAMPLE_RATE) - 440.0) <= 1.0
