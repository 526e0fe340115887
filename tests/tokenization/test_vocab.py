"""Unified vocabulary: disjoint ranges covering `size`, exact inverses at every boundary, save/load."""

import numpy as np
import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.tokenization.vocab import (
    BASE_SPECIALS,
    KIND_AUDIO,
    KIND_IMAGE,
    KIND_SPECIAL,
    KIND_TEXT,
    KINDS,
    Vocabulary,
    VocabularyError,
)

torch.set_num_threads(1)


@pytest.fixture
def vocab():
    return Vocabulary(text_size=300, image_codebook=64, audio_codebook=32, time_buckets=8, time_step=0.5)


def test_ranges_are_disjoint_ordered_and_cover_exactly_size(vocab):
    ranges = [vocab.special_range, vocab.text_range, vocab.image_range, vocab.audio_range]
    assert [len(r) for r in ranges] == [vocab.num_special, 300, 64, 32]
    assert ranges[0].start == 0 and ranges[-1].stop == vocab.size
    for a, b in zip(ranges, ranges[1:]):
        assert a.stop == b.start
    covered = [i for r in ranges for i in r]
    assert covered == list(range(vocab.size))


def test_pad_is_zero_and_every_named_special_has_a_distinct_id(vocab):
    assert vocab.special("<pad>") == 0
    ids = [vocab.special(n) for n in vocab.special_tokens]
    assert ids == list(vocab.special_range)
    assert vocab.special("image") == vocab.special("<image>")
    for name in ("<bos>", "<eos>", "<embed>", "<image>", "</image>", "<audio>", "</audio>", "<video>", "</video>",
                 "<frame>"):
        assert vocab.kind_of(vocab.special(name)) == "special"


def test_unknown_special_name_is_an_error_naming_it(vocab):
    with pytest.raises(VocabularyError, match="<sep>"):
        vocab.special("<sep>")


@pytest.mark.parametrize("kind", KINDS)
def test_kind_of_and_local_invert_the_maps_on_every_boundary(vocab, kind):
    r = vocab.range_of(kind)
    to_global = {"text": vocab.text_id, "image": vocab.image_id, "audio": vocab.audio_id}.get(kind)
    for local in (0, 1, len(r) - 2, len(r) - 1):
        gid = r.start + local
        assert vocab.kind_of(gid) == kind
        assert vocab.local(gid) == local
        if to_global is not None:
            assert to_global(local) == gid


@pytest.mark.parametrize("bad", [-1, 10_000])
def test_ids_outside_the_vocabulary_raise(vocab, bad):
    with pytest.raises(VocabularyError, match=str(bad)):
        vocab.kind_of(bad)
    with pytest.raises(VocabularyError):
        vocab.local(bad)


def test_local_ids_past_their_range_raise_instead_of_spilling_into_the_next_modality(vocab):
    with pytest.raises(VocabularyError, match="text id 300"):
        vocab.text_id(300)
    with pytest.raises(VocabularyError, match="image id 64"):
        vocab.image_id(64)
    with pytest.raises(VocabularyError, match="audio id -1"):
        vocab.audio_id(-1)


def test_time_tokens_bucket_seconds_clamp_past_the_end_and_invert(vocab):
    assert vocab.time_token(0.0) == vocab.special("<t0>")
    assert vocab.time_token(0.49) == vocab.special("<t0>")
    assert vocab.time_token(0.5) == vocab.special("<t1>")
    assert vocab.time_token(3.6) == vocab.special("<t7>")
    assert vocab.time_token(1000.0) == vocab.special("<t7>")  # clamped to the last bucket
    for k in range(8):
        tid = vocab.special(f"<t{k}>")
        assert vocab.is_time(tid)
        assert vocab.time_token(vocab.time_of(tid)) == tid
    assert not vocab.is_time(vocab.special("<frame>"))
    with pytest.raises(VocabularyError, match="-1.0"):
        vocab.time_token(-1.0)


def test_time_buckets_with_an_inexact_step_map_k_times_step_back_to_k():
    v = Vocabulary(300, 8, 8, time_buckets=100, time_step=0.1)
    for k in range(100):
        assert v.time_token(k * 0.1) - v.time_range.start == k


@pytest.mark.parametrize("array", [np.asarray, torch.as_tensor])
def test_vectorised_maps_agree_with_scalar_maps_on_numpy_and_torch(vocab, array):
    ids = array(np.arange(vocab.size).reshape(4, -1))  # (4, size/4): shapes are kept, not flattened
    kinds = vocab.kinds(ids)
    locals_ = vocab.local_ids(ids)
    assert type(kinds) is type(ids) and tuple(kinds.shape) == tuple(ids.shape)
    flat_ids = [int(i) for i in ids.reshape(-1)]
    assert [KINDS[int(k)] for k in kinds.reshape(-1)] == [vocab.kind_of(i) for i in flat_ids]
    assert [int(x) for x in locals_.reshape(-1)] == [vocab.local(i) for i in flat_ids]
    codes = array(np.array([0, 5, 63]))
    assert [int(x) for x in vocab.image_ids(codes)] == [vocab.image_id(c) for c in (0, 5, 63)]
    assert [int(x) for x in vocab.audio_ids(codes[:2])] == [vocab.audio_id(c) for c in (0, 5)]
    assert [int(x) for x in vocab.text_ids(codes)] == [vocab.text_id(c) for c in (0, 5, 63)]
    assert int(vocab.mask(ids, "image").sum()) == 64
    assert (KIND_SPECIAL, KIND_TEXT, KIND_IMAGE, KIND_AUDIO) == (0, 1, 2, 3)


@pytest.mark.parametrize("array", [np.asarray, torch.as_tensor])
def test_vectorised_maps_reject_out_of_range_and_float_input(vocab, array):
    with pytest.raises(VocabularyError, match=r"\[0, 64\]"):
        vocab.image_ids(array(np.array([0, 64])))
    with pytest.raises(VocabularyError, match="outside the vocabulary"):
        vocab.kinds(array(np.array([vocab.size])))
    with pytest.raises(VocabularyError, match="integer"):
        vocab.kinds(array(np.array([1.0, 2.0])))
    empty = array(np.zeros((0,), dtype=np.int64))
    assert len(vocab.kinds(empty)) == 0


def test_save_and_load_give_an_identical_vocabulary(vocab, tmp_path):
    path = vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(path)
    assert loaded == vocab
    assert loaded.to_dict() == vocab.to_dict()
    assert Vocabulary.from_dict(vocab.to_dict()).special_tokens == vocab.special_tokens
    with_extra = Vocabulary(10, 2, 3, extra_specials=("<sep>",))
    assert Vocabulary.from_dict(with_extra.to_dict()).special("<sep>") == with_extra.special("<sep>")


def test_a_saved_layout_this_code_would_misread_is_refused(vocab):
    d = vocab.to_dict()
    d["special_tokens"] = list(reversed(d["special_tokens"]))
    with pytest.raises(ConfigError, match="special_tokens differ"):
        Vocabulary.from_dict(d)
    d = vocab.to_dict()
    del d["image_codebook"]
    with pytest.raises(ConfigError, match="image_codebook"):
        Vocabulary.from_dict(d)


@pytest.mark.parametrize("kwargs", [
    dict(text_size=0, image_codebook=8, audio_codebook=8),
    dict(text_size=10, image_codebook=8, audio_codebook=8, time_step=0.0),
    dict(text_size=10, image_codebook=8, audio_codebook=8, extra_specials=("<bos>",)),
    dict(text_size=10, image_codebook=8, audio_codebook=8, extra_specials=("sep",)),
])
def test_invalid_sizes_and_duplicate_specials_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        Vocabulary(**kwargs)


def test_token_str_reads_back_markers_and_modality_codes(vocab):
    assert vocab.token_str(vocab.special("<image>")) == "<image>"
    assert vocab.token_str(vocab.image_id(7)) == "image:7"
    assert vocab.token_str(vocab.text_id(0)) == "text:0"
    assert BASE_SPECIALS[0] == "<pad>"


def test_vocabulary_text_and_document_modules_import_without_torch():
    # the serving path (omniembed.runtime) maps ids without a training framework in the image
    import subprocess
    import sys

    code = ("import sys; import omniembed.tokenization.vocab, omniembed.tokenization.text, "
            "omniembed.tokenization.document; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
