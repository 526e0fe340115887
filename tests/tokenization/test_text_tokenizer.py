"""Byte-level BPE text tokenizer: trained from scratch, exact Unicode round trips, save/load, clear errors."""

import json

import pytest

from omniembed.errors import ConfigError
from omniembed.tokenization.text import TextTokenizer

CORPUS = [
    "a small red circle moves left across the frame",
    "a large blue square stays still in the centre",
    "the green triangle bounces up and down quickly",
    "a tiny yellow star drifts slowly to the right",
    "two red circles and one blue square",
] * 20

TRICKY = [
    "plain ascii",
    "café naïve résumé — déjà vu",
    "数据 多模态 嵌入 检索",
    "emoji 🙂🚀 family 👨‍👩‍👧 flag 🇫🇷",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp",
    "",
    "\u0000 control \u007f bytes",
    "combining e\u0301 vs precomposed é",  # must not be normalised into one form
]


@pytest.fixture(scope="module")
def text_tok():
    return TextTokenizer.train(CORPUS, vocab_size=400, min_frequency=2)


def test_training_learns_merges_so_frequent_words_take_fewer_tokens_than_bytes(text_tok):
    assert 256 < text_tok.vocab_size <= 400
    ids = text_tok.encode("a small red circle")
    assert len(ids) < len("a small red circle".encode())


@pytest.mark.parametrize("text", TRICKY)
def test_any_unicode_text_round_trips_exactly(text_tok, text):
    ids = text_tok.encode(text)
    assert all(0 <= i < text_tok.vocab_size for i in ids)
    assert text_tok.decode(ids) == text


def test_encode_batch_matches_encode_one_by_one(text_tok):
    assert text_tok.encode_batch(TRICKY) == [text_tok.encode(t) for t in TRICKY]


def test_no_special_tokens_live_inside_the_bpe(text_tok, tmp_path):
    path = text_tok.save(tmp_path / "tokenizer.json")
    spec = json.loads(path.read_text())
    assert spec["added_tokens"] == []
    # marker strings are ordinary text to the BPE: several byte-level tokens, not one special id
    assert len(text_tok.encode("<image>")) > 1


def test_save_and_load_give_identical_ids(text_tok, tmp_path):
    path = text_tok.save(tmp_path / "tok" / "tokenizer.json")
    loaded = TextTokenizer.load(path)
    assert loaded.vocab_size == text_tok.vocab_size
    assert loaded.encode_batch(TRICKY) == text_tok.encode_batch(TRICKY)
    # a folder holding tokenizer.json loads too, and the string form round-trips
    assert TextTokenizer.load(path.parent).encode("red star") == text_tok.encode("red star")
    assert TextTokenizer.from_str(text_tok.to_str()).encode("red star") == text_tok.encode("red star")


def test_decode_rejects_ids_outside_the_local_range(text_tok):
    with pytest.raises(ValueError, match=r"outside the local text range"):
        text_tok.decode([0, text_tok.vocab_size])
    with pytest.raises(ValueError, match=r"outside the local text range"):
        text_tok.decode([-1])


def test_vocab_size_below_the_byte_alphabet_is_a_config_error():
    with pytest.raises(ConfigError, match="vocab_size=100"):
        TextTokenizer.train(CORPUS, vocab_size=100)


def test_loading_a_corrupt_tokenizer_file_names_the_file(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": ')
    with pytest.raises(ConfigError, match="tokenizer.json"):
        TextTokenizer.load(bad)


def test_loading_a_non_byte_level_tokenizer_is_refused(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ConfigError, match="expected a BPE model"):
        TextTokenizer.load(tmp_path / "tokenizer.json")


def test_encode_rejects_non_string_input(text_tok):
    with pytest.raises(TypeError, match="expects str"):
        text_tok.encode(b"bytes")
