"""omniembed.runtime.Embedder's contract: shapes, Matryoshka prefixes, batching, order, limits and errors."""

import shutil

import numpy as np
import pytest

from omniembed.errors import ConfigError, ManifestError, MediaError
from omniembed.runtime import Embedder, prefix
from omniembed.runtime.bundle import read_manifest, write_manifest
from omniembed.tokenization.document import DocumentError


@pytest.fixture(scope="module")
def emb(tiny_bundle):
    return Embedder.load(tiny_bundle, threads=1)


@pytest.fixture(scope="module")
def texts(synth_world):
    return [t for it in synth_world.items for t in it.texts][:20]


def test_vectors_are_unit_rows_and_each_dim_is_the_renormalised_prefix_of_the_full_vector(emb, texts):
    full = emb.embed(texts)
    assert full.shape == (len(texts), emb.dim) and full.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-5)
    for dim in (*emb.dims, 5):
        part = emb.embed(texts, dim=dim)
        np.testing.assert_allclose(part, prefix(full, dim), atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(part, axis=1), 1.0, atol=1e-5)


def test_batch_size_and_neighbours_do_not_change_a_vector(emb, texts):
    one_by_one = np.concatenate([emb.embed([t]) for t in texts[:6]])
    batched = emb.embed(texts[:6], batch_size=4)
    np.testing.assert_allclose(batched, one_by_one, atol=2e-5)


def test_rows_come_back_in_input_order_although_batches_are_sorted_by_length(emb, texts):
    long, short = " ".join(texts[:6]), "red"
    both = emb.embed([long, short, long])
    np.testing.assert_allclose(both[0], emb.embed([long])[0], atol=2e-5)
    np.testing.assert_allclose(both[1], emb.embed([short])[0], atol=2e-5)
    np.testing.assert_allclose(both[2], both[0], atol=1e-6)


def test_a_single_input_that_is_not_a_list_gives_one_row(emb):
    assert emb.embed("a blue square").shape == (1, emb.dim)


def test_overlong_input_is_cut_to_max_tokens_keeping_eos_and_embed(emb, texts):
    ids = emb.tokenize([" ".join(texts * 5)])[0]
    eos, embed = emb.vocab.special("<eos>"), emb.vocab.special("<embed>")
    assert len(ids) == emb.max_tokens and ids[-2:] == [eos, embed] and ids[0] == emb.vocab.special("<bos>")
    assert emb.embed([" ".join(texts * 5)]).shape == (1, emb.dim)


@pytest.mark.parametrize("dim", [0, -1, 10_000, 2.5, True])
def test_a_dim_outside_1_to_full_is_refused_naming_the_range(emb, dim):
    with pytest.raises(ConfigError, match=r"1\.\."):
        emb.embed(["x"], dim=dim)


def test_corrupt_media_fails_with_a_media_error_naming_the_input(emb):
    with pytest.raises(MediaError, match="input 1"):
        emb.embed(["fine", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])


def test_an_unsupported_input_type_fails_naming_the_input_and_what_is_accepted(emb):
    with pytest.raises(DocumentError, match="input 2.*float"):
        emb.embed(["a", "b", 1.5])
    with pytest.raises(DocumentError, match="empty list"):
        emb.embed([[]])


def test_unknown_provider_is_refused_with_the_list_of_available_ones(tiny_bundle):
    with pytest.raises(ConfigError, match="CPUExecutionProvider"):
        Embedder.load(tiny_bundle, providers=["NoSuchExecutionProvider"])


def test_thread_settings_reach_the_onnx_runtime_sessions(tiny_bundle, texts):
    emb = Embedder.load(tiny_bundle, threads=1, inter_threads=2, spin=False)
    opts = emb.trunk.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 2
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert emb.trunk.get_providers() == ["CPUExecutionProvider"]
    np.testing.assert_allclose(emb.embed(texts[:3]), Embedder.load(tiny_bundle, threads=2).embed(texts[:3]), atol=1e-5)


def test_int8_and_fp16_variants_stay_close_to_fp32(tiny_bundle, texts):
    ref = Embedder.load(tiny_bundle, threads=1).embed(texts)
    for variant, floor in (("int8", 0.98), ("fp16", 0.995)):
        emb = Embedder.load(tiny_bundle, threads=1, variant=variant)
        assert emb.variant == variant
        assert np.sum(ref * emb.embed(texts), axis=1).min() >= floor


def test_asking_for_a_variant_the_bundle_lacks_names_the_export_flag(tiny_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.path, copy)
    manifest = read_manifest(copy)
    (copy / "trunk.int8.onnx").unlink()
    del manifest["graphs"]["trunk"]["int8"]
    write_manifest(copy, {k: v for k, v in manifest.items() if k not in ("format", "format_version", "files")})
    with pytest.raises(ManifestError, match="--int8"):
        Embedder.load(copy, variant="int8")
    with pytest.raises(ConfigError, match="variant"):
        Embedder.load(copy, variant="int4")


def test_a_huge_text_is_cut_by_characters_first_with_the_ids_of_tokenizing_it_whole(emb, texts):
    from omniembed.tokenization.document import TextSegment, cut_for_embedding

    huge = " ".join(texts) * 400  # far past the window: megabyte-scale texts are cut before BPE
    limit = emb.document.text.chars_for(emb.max_tokens)
    assert len(huge) > 10 * limit
    whole = cut_for_embedding(emb.document.encode([TextSegment(huge)], bos=True, eos=True, embed=True), emb.max_tokens)
    (encoded,) = emb.encode([huge])
    assert encoded.ids == [whole] and encoded.cut > 0


def test_only_the_prefix_that_can_fit_is_tokenized(emb, texts, monkeypatch):
    seen = []
    real = emb.document.text.encode
    monkeypatch.setattr(emb.document.text, "encode", lambda text: seen.append(len(text)) or real(text))
    emb.encode([" ".join(texts) * 400])
    assert seen and max(seen) <= emb.document.text.chars_for(emb.max_tokens)
