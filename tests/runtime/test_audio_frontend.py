"""The runtime's audio front-end: the power spectrum on the host (an FFT) and the bundle's power-input graph
give the wave-input graph's and torch's codes; bundles written before that graph still embed audio."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from omniembed.media import decode_audio, encode_audio
from omniembed.runtime import Embedder
from omniembed.runtime.bundle import write_manifest
from omniembed.runtime.spectrum import HostPowerSpectrum
from omniembed.tokenization.config import TokenizerConfig
from omniembed.tokenization.audio import AudioTokenizer

LENGTHS = (150, 201, 640, 12345, 32000, 96001)  # shorter than n_fft / 2, partial patches, a long clip


def test_host_power_spectrum_gives_the_tokenizers_log_mel():
    cfg = TokenizerConfig()
    tok = AudioTokenizer(cfg).eval()
    host = HostPowerSpectrum(n_fft=cfg.n_fft, hop=cfg.hop, patch=cfg.mel_patch_frames, threads=2)
    fb = tok.logmel.mel_fb.numpy()
    rng = np.random.default_rng(0)
    for n in LENGTHS:
        wave = (0.3 * rng.standard_normal((3, n))).astype(np.float32)
        power = host(wave)
        mel = 10.0 * np.log10(np.maximum(np.einsum("bfk,mk->bmf", power, fb), 1e-10))
        with torch.no_grad():
            ref = tok.mel(torch.from_numpy(wave)).numpy()
        assert mel.shape == ref.shape, n
        assert np.abs(mel - ref).max() < 1e-3, n  # dB; fp32 rounding of a different summation order
        again = host(wave[:1])  # the reused buffers carry nothing over from the call before
        assert np.array_equal(again, host(wave[:1]).copy()) and np.allclose(again[0], power[0])


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(1)
    out = []
    for n in LENGTHS[1:]:  # the runtime refuses audio under n_fft / 2 + 1 samples
        t = np.arange(n) / 16000
        wave = 0.4 * np.sin(2 * np.pi * (200 + 300 * rng.random()) * t) + 0.05 * rng.standard_normal(n)
        out.append(decode_audio(encode_audio(wave.astype(np.float32), 16000, "wav")))
    return out


def test_power_graph_gives_the_wave_graphs_and_torchs_codes(tiny_bundle, clips):
    emb = Embedder.load(tiny_bundle, threads=1)
    assert emb.audio.power_session is not None  # a bundle of this export runs the host FFT path
    torch_tok = tiny_bundle.tokenizers.audio.float().eval()
    agree = total = 0
    for wave in clips:
        fast = emb.audio.encode_batch(wave[None])
        slow = emb.audio.session.run(None, {"wave": wave[None]})[0]
        with torch.no_grad():
            ref = torch_tok.encode(torch.from_numpy(wave)[None]).numpy()
        assert fast.shape == slow.shape == ref.shape
        agree += int((fast == slow).sum()) + int((fast == ref).sum())
        total += 2 * fast.size
    assert agree / total >= 0.99  # a code may flip only on a near tie of two codebook distances


def test_a_bundle_without_the_power_graph_still_embeds_audio_through_the_wave_graph(tiny_bundle, clips, tmp_path):
    old = shutil.copytree(tiny_bundle.path, tmp_path / "old")
    (old / "audio_power_encoder.onnx").unlink()
    manifest = json.loads((old / "manifest.json").read_text())
    for key in ("format", "format_version", "files"):
        manifest.pop(key)
    del manifest["graphs"]["audio_power_encoder"]
    write_manifest(old, manifest)
    before, now = Embedder.load(old, threads=1), Embedder.load(tiny_bundle, threads=1)
    assert before.audio.power_session is None
    vectors = before.embed([{"audio": encode_audio(w, 16000, "wav")} for w in clips[2:5]])
    again = now.embed([{"audio": encode_audio(w, 16000, "wav")} for w in clips[2:5]])
    assert vectors.shape == again.shape and np.min(np.sum(vectors * again, axis=1)) > 0.99
