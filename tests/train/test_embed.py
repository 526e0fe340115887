"""The TorchEmbedder over a trained run: any input to unit vectors at any Matryoshka dim, and captions."""

import numpy as np
import pytest

from omniembed.model.embedder import TorchEmbedder
from omniembed.errors import ConfigError, MediaError
from omniembed.train.rundir import load_run


@pytest.fixture(scope="module")
def embedder(tiny_run):
    return TorchEmbedder.from_run(load_run(tiny_run), batch_size=3)


@pytest.fixture(scope="module")
def item(synth_world):
    return next(r for r in synth_world.train if r.kind == "item")


def test_load_run_gives_an_eval_mode_fp32_model_with_its_vocabulary(tiny_run):
    run = load_run(tiny_run)
    assert not run.model.training
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in run.model.parameters())
    assert run.model.cfg.vocab_size == run.vocab.size
    assert run.step == run.config["loop"]["steps"]


def test_load_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="train.yaml"):
        load_run(tmp_path)


def test_every_modality_and_an_interleaved_input_embed_to_unit_vectors(embedder, item):
    image, audio, video = (item.media[m].source for m in ("image", "audio", "video"))
    from pathlib import Path

    inputs = [item.texts[0], Path(image), Path(audio).read_bytes(), Path(video), ["a picture:", Path(image)]]
    vecs = embedder.embed(inputs)
    assert vecs.shape == (5, max(embedder.dims)) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in vecs}) == 5  # five different inputs, five different vectors


def test_a_matryoshka_prefix_is_the_renormalised_start_of_the_full_vector(embedder, item):
    full = embedder.embed([item.texts[0], item.texts[1]])
    for d in embedder.dims:
        short = embedder.embed([item.texts[0], item.texts[1]], dim=d)
        assert short.shape == (2, d)
        expect = full[:, :d] / np.linalg.norm(full[:, :d], axis=1, keepdims=True)
        np.testing.assert_allclose(short, expect, atol=1e-5)
    with pytest.raises(ValueError, match="dim"):
        embedder.embed("x", dim=max(embedder.dims) + 1)


def test_batching_does_not_change_the_vectors(embedder, item):
    texts = list(item.texts) + ["a", "a much longer caption about a small red circle moving up on the left"]
    together = embedder.embed(texts)
    one_by_one = np.concatenate([embedder.embed(t) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_caption_returns_text_for_an_image(embedder, item):
    from pathlib import Path

    text = embedder.caption(Path(item.media["image"].source), max_new_tokens=6)
    assert isinstance(text, str)
    with pytest.raises(MediaError):
        embedder.caption(b"not a media file at all")


def test_unsupported_input_types_are_refused_by_name(embedder):
    with pytest.raises(TypeError, match="int"):
        embedder.embed([3])
