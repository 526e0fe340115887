"""ImageTokenizer shapes, resize policies and input checks (untrained weights: these are about the contract)."""

import numpy as np
import pytest
import torch

from omniembed.errors import MediaError
from omniembed.tokenization.config import TokenizerConfig
from omniembed.tokenization.image import ImageTokenizer

torch.set_num_threads(1)


def _tok(**overrides) -> ImageTokenizer:
    cfg = TokenizerConfig(image_size=32, image_grid=4, image_widths=[8, 8, 8], image_codebook=32, image_code_dim=8,
                          **overrides)
    return ImageTokenizer(cfg).eval()


def test_encode_gives_grid_squared_codes_and_decode_gives_pixels_in_unit_range():
    tok = _tok()
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (40, 24, 3), dtype=np.uint8), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)]
    x = tok.preprocess(pixels)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    codes = tok.encode(x)
    assert codes.shape == (2, tok.tokens_per_image) == (2, 16) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < tok.codebook_size
    with torch.no_grad():
        out = tok.decode(codes)
    assert out.shape == (2, 3, 32, 32) and float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("policy", ["pad", "crop", "stretch"])
def test_resize_policies_make_a_square_of_image_size(policy):
    tok = _tok(image_resize=policy)
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, 20:40] = 255  # a white centre third on black
    x = tok.preprocess(wide)[0]  # (3, 32, 32)
    assert x.shape == (3, 32, 32)
    centre_row = x[0, 16]
    if policy == "crop":  # the centre square is all white
        assert float(x.min()) > 0.9
    elif policy == "pad":  # letterboxed: black bars above and below
        assert float(x[:, 0].max()) == 0 and float(x[:, -1].max()) == 0 and float(centre_row[16]) > 0.9
    else:  # stretched: white only in the middle third, full height
        assert float(x[0, 0, 16]) > 0.9 and float(x[0, 0, 2]) < 0.1


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                 np.zeros((8, 8, 3), np.float32), np.zeros((0, 8, 3), np.uint8)])
def test_preprocess_rejects_arrays_that_are_not_hw3_uint8_images(bad):
    with pytest.raises(MediaError, match=r"pixels\[0\].*\(H, W, 3\) uint8"):
        _tok().preprocess(bad)


def test_preprocess_rejects_an_empty_batch():
    with pytest.raises(MediaError, match="empty"):
        _tok().preprocess([])


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 3, 16, 16), (2, 1, 32, 32), (0, 3, 32, 32)])
def test_encode_rejects_tensors_of_the_wrong_shape_with_the_expected_one(shape):
    with pytest.raises(ValueError, match=r"expected a \(B >= 1, 3, 32, 32\)"):
        _tok().encode(torch.rand(shape))


def test_decode_rejects_codes_of_the_wrong_length_or_outside_the_codebook():
    tok = _tok()
    with pytest.raises(ValueError, match=r"expected \(B >= 1, 16\)"):
        tok.decode(torch.zeros(1, 15, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        tok.decode(torch.full((1, 16), 32, dtype=torch.long))


def test_patch_arch_starts_as_the_identity_so_a_code_decodes_to_its_own_patch():
    cfg = TokenizerConfig(image_size=16, image_grid=4, image_arch="patch", image_codebook=8, image_hidden=8,
                          vq_cosine=False)
    tok = ImageTokenizer(cfg).eval()
    assert tok.quantizer.dim == 3 * 4 * 4  # a code is a 4x4 RGB patch
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        latent = tok.encode_latent(x)  # (B, g, g, 48)
        assert torch.allclose(latent[0, 1, 2].reshape(3, 4, 4), x[0, :, 4:8, 8:12])
        codes = torch.arange(16).remainder(8)[None]  # every code somewhere on the grid
        out = tok.decode(codes)[0]
    patch = tok.quantizer.codebook[5].reshape(3, 4, 4).clamp(0, 1)
    assert torch.allclose(out[:, 4:8, 4:8], patch)  # cell 5 = row 1, column 1


def test_unknown_image_arch_is_a_config_error():
    from omniembed.errors import ConfigError

    with pytest.raises(ConfigError, match="image_arch='vit'"):
        TokenizerConfig(image_arch="vit")


def test_patch_image_encoder_exports_to_onnx_and_gives_the_same_codes_for_other_batch_sizes(tmp_path):
    import onnxruntime as ort

    class Encode(torch.nn.Module):
        def __init__(self, tok):
            super().__init__()
            self.tok = tok

        def forward(self, pixels):
            return self.tok.encode(pixels)

    cfg = TokenizerConfig(image_size=16, image_grid=4, image_arch="patch", image_codebook=16, image_hidden=8)
    tok = ImageTokenizer(cfg).eval()
    tok.quantizer.init_kmeans(torch.rand(256, tok.quantizer.dim))
    path = tmp_path / "image_encoder.onnx"
    torch.onnx.export(Encode(tok), (torch.rand(2, 3, 16, 16),), str(path), dynamo=True, input_names=["pixels"],
                      output_names=["codes"], dynamic_shapes=({0: torch.export.Dim("batch")},))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = torch.rand(batch, 3, 16, 16)
        assert np.array_equal(session.run(None, {"pixels": x.numpy()})[0], tok.encode(x).numpy())
