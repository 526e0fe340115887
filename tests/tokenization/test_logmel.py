"""The log-mel front-end against librosa (reference only in tests) and through ONNX Runtime."""

import librosa
import numpy as np
import onnxruntime as ort
import torch

from omniembed.media import SAMPLE_RATE, encode_audio
from omniembed.tokenization.logmel import LogMel, mel_filterbank

torch.set_num_threads(2)

# Same parameters on both sides; slaney mel scale and norm are librosa's defaults (htk=False, norm="slaney").
PARAMS = dict(sample_rate=SAMPLE_RATE, n_fft=400, hop=160, n_mels=64, fmin=30.0, fmax=7600.0)
# Stated tolerance: where the mel power is within 80 dB of the signal's peak, |ours - librosa| <= 0.05 dB.
# (fp32 STFT here vs fp64/fp32 FFT there; below -80 dB relative, rounding noise dominates the log.)
TOL_DB = 0.05


def _decoded_chirp_with_noise() -> np.ndarray:
    """A real signal that went through encode -> WAV bytes -> PyAV decode: chirp + harmonics + noise + gap."""
    from omniembed.media import decode_audio

    rng = np.random.default_rng(7)
    t = np.arange(int(1.3 * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * (200 * t + 1500 * t**2)
    wave = 0.4 * np.sin(phase) + 0.15 * np.sin(3 * phase) + 0.02 * rng.standard_normal(t.size)
    wave[int(0.6 * SAMPLE_RATE):int(0.7 * SAMPLE_RATE)] *= 0.01  # a quiet gap: the log range matters
    data = encode_audio(wave.astype(np.float32), SAMPLE_RATE, "wav")
    return decode_audio(data)


def _librosa_db(wave: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=wave, sr=PARAMS["sample_rate"], n_fft=PARAMS["n_fft"], hop_length=PARAMS["hop"], win_length=PARAMS["n_fft"],
        window="hann", center=True, pad_mode="reflect", power=2.0, n_mels=PARAMS["n_mels"],
        fmin=PARAMS["fmin"], fmax=PARAMS["fmax"], htk=False, norm="slaney")
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)


def test_mel_filterbank_equals_librosa_slaney_filters():
    ours = mel_filterbank(PARAMS["sample_rate"], PARAMS["n_fft"], PARAMS["n_mels"], PARAMS["fmin"], PARAMS["fmax"])
    ref = librosa.filters.mel(sr=PARAMS["sample_rate"], n_fft=PARAMS["n_fft"], n_mels=PARAMS["n_mels"],
                              fmin=PARAMS["fmin"], fmax=PARAMS["fmax"], htk=False, norm="slaney")
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-7)


def test_logmel_matches_librosa_melspectrogram_in_db_on_a_decoded_wav():
    wave = _decoded_chirp_with_noise()
    ours = LogMel(**PARAMS)(torch.from_numpy(wave)[None])[0].numpy()
    ref = _librosa_db(wave)
    assert ours.shape == ref.shape == (PARAMS["n_mels"], 1 + wave.size // PARAMS["hop"])
    significant = ref > ref.max() - 80.0
    assert significant.mean() > 0.9  # the comparison covers nearly the whole spectrogram
    err = np.abs(ours - ref)[significant]
    assert err.max() <= TOL_DB, f"max |dB error| {err.max():.4f} over {significant.sum()} bins"


def test_logmel_of_digital_silence_is_the_minus_100_db_floor():
    out = LogMel(**PARAMS)(torch.zeros(1, 3200))
    assert torch.allclose(out, torch.full_like(out, -100.0))


def test_logmel_exports_to_onnx_and_onnxruntime_matches_torch_on_other_shapes(tmp_path):
    model = LogMel(**PARAMS).eval()
    path = tmp_path / "logmel.onnx"
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=PARAMS["n_fft"])
    torch.onnx.export(model, (torch.randn(2, 8000),), str(path), dynamo=True, input_names=["wave"],
                      output_names=["logmel"], dynamic_shapes=({0: batch, 1: samples},))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for shape in [(1, 16000), (3, 12345)]:  # neither is the export example's shape
        wave = (0.3 * rng.standard_normal(shape)).astype(np.float32)
        got = session.run(None, {"wave": wave})[0]
        want = model(torch.from_numpy(wave)).detach().numpy()
        assert got.shape == want.shape
        # ORT's STFT sums in another order: ~0.003 dB apart at the quietest bins; 0.01 dB is the bound.
        np.testing.assert_allclose(got, want, atol=1e-2, rtol=0)
