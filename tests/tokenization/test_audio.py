"""AudioTokenizer shapes, tail policy and input checks (untrained weights: these are about the contract)."""

import pytest
import torch

from omniembed.tokenization.audio import SILENCE_DB, AudioTokenizer
from omniembed.tokenization.config import TokenizerConfig

torch.set_num_threads(1)


def _tok() -> AudioTokenizer:
    cfg = TokenizerConfig(n_mels=16, audio_codebook=32, audio_code_dim=8, audio_width=16, mel_patch_frames=4)
    return AudioTokenizer(cfg).eval()


def test_one_second_gives_tokens_per_second_codes_and_decodes_to_a_mel_of_whole_patches():
    tok = _tok()
    assert tok.tokens_per_second == 25.0  # 16000 / (160 * 4)
    codes = tok.encode(0.1 * torch.randn(2, 16000))
    assert codes.shape == (2, 25) and codes.dtype == torch.int64
    with torch.no_grad():
        mel = tok.decode(codes)
    assert mel.shape == (2, 16, 100)


@pytest.mark.parametrize("n, tokens", [(1, 1), (640, 1), (641, 2), (16000, 25), (16001, 26), (33000, 52)])
def test_a_partial_tail_patch_still_gets_its_own_token(n, tokens):
    tok = _tok()
    assert tok.num_tokens(n) == tokens
    assert tok.encode_one(0.1 * torch.randn(n)).shape == (tokens,)
    assert tok.mel(torch.zeros(1, n)).shape == (1, 16, tokens * 4)


def test_tail_padding_is_digital_silence():
    tok = _tok()
    mel = tok.mel(0.5 * torch.randn(1, 700))  # 1 + 700 // 160 = 5 STFT frames, padded to 8
    assert torch.all(mel[:, :, 5:] == SILENCE_DB)
    assert torch.all(mel[:, :, :5] > SILENCE_DB)


@pytest.mark.parametrize("shape", [(16000,), (1, 0), (0, 100), (1, 2, 100)])
def test_encode_rejects_waves_that_are_not_a_nonempty_batch(shape):
    with pytest.raises(ValueError, match=r"expected \(B >= 1, n >= 1\)"):
        _tok().encode(torch.zeros(shape))


def test_encode_one_rejects_a_batch():
    with pytest.raises(ValueError, match=r"expected one \(n,\) wave"):
        _tok().encode_one(torch.zeros(2, 100))


def test_encode_mel_rejects_a_mel_with_the_wrong_bins_or_a_partial_patch():
    tok = _tok()
    with pytest.raises(ValueError, match="16, a multiple of 4"):
        tok.encode_mel(torch.zeros(1, 15, 8))
    with pytest.raises(ValueError, match="16, a multiple of 4"):
        tok.encode_mel(torch.zeros(1, 16, 6))


def test_decode_rejects_empty_codes_and_codes_outside_the_codebook():
    tok = _tok()
    with pytest.raises(ValueError, match=r"expected \(B >= 1, M >= 1\)"):
        tok.decode(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        tok.decode(torch.tensor([[0, -1]]))


def test_audio_encoder_exports_to_onnx_and_gives_the_same_codes_at_other_lengths(tmp_path):
    import numpy as np
    import onnxruntime as ort

    class Encode(torch.nn.Module):
        def __init__(self, tok):
            super().__init__()
            self.tok = tok

        def forward(self, wave):
            return self.tok.encode(wave)

    tok = _tok()
    path = tmp_path / "audio_encoder.onnx"
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("samples", min=tok.config.n_fft)}
    torch.onnx.export(Encode(tok), (torch.randn(2, 16000),), str(path), dynamo=True, input_names=["wave"],
                      output_names=["codes"], dynamic_shapes=(dims,))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for n in (12345, 640, 33001):  # partial tail patches, and exactly one patch
        wave = (0.3 * rng.standard_normal((3, n))).astype(np.float32)
        got = session.run(None, {"wave": wave})[0]
        assert np.array_equal(got, tok.encode(torch.from_numpy(wave)).numpy()), n
