"""Text tokenizer: byte-level BPE trained from scratch on the corpus with the `tokenizers` library.

Ids here are LOCAL (0..vocab_size-1). `omniembed.tokenization.vocab.Vocabulary` maps them into the one
global id space. The engine's special tokens (<bos>, <image>, <frame>, ...) are deliberately NOT added to
the BPE: one place (the Vocabulary) owns every special id, so a marker can never be produced by BPE merges
of user text, and the text range stays pure text that any modality layout can be stacked around.

torch-free: the runtime embedder loads this from a bundle's tokenizer.json.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from omniembed.errors import ConfigError

# Every byte value is in the initial alphabet, so no input can ever be out of vocabulary.
BYTE_ALPHABET_SIZE = 256
TOKENIZER_FILENAME = "tokenizer.json"


class TextTokenizer:
    """Byte-level BPE: any Unicode string encodes to local ids and decodes back to the same string."""

    def __init__(self, tokenizer: Tokenizer):
        _check_byte_level_bpe(tokenizer, source="TextTokenizer(tokenizer)")
        self._tok = tokenizer

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2) -> "TextTokenizer":
        """Learn merges from `texts` up to `vocab_size` tokens (256 byte tokens + merges).

        The result may be smaller than `vocab_size` when the corpus has fewer mergeable pairs; read
        `.vocab_size` for the real size.
        """
        if vocab_size < BYTE_ALPHABET_SIZE:
            raise ConfigError(
                f"text vocab_size={vocab_size} is below {BYTE_ALPHABET_SIZE}: a byte-level BPE needs one token per byte"
            )
        if min_frequency < 1:
            raise ConfigError(f"min_frequency={min_frequency} must be >= 1")
        tok = _empty_byte_level_bpe()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            show_progress=False,
            special_tokens=[],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.train_from_iterator(_strings(texts), trainer=trainer)
        return cls(tok)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TextTokenizer":
        """Load a tokenizer.json written by `save` (or a folder holding one)."""
        path = _resolve(Path(path))
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no text tokenizer file")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises a bare Exception with its parse message
            raise ConfigError(f"{path}: not a readable tokenizer.json ({exc})") from exc
        _check_byte_level_bpe(tok, source=str(path))
        return cls(tok)

    def save(self, path: str | os.PathLike) -> Path:
        """Write tokenizer.json to `path` (a file path, or an existing folder); returns the file written."""
        path = _resolve(Path(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        self._tok.save(str(tmp))
        os.replace(tmp, path)  # a reader never sees a half-written tokenizer
        return path

    # ---- use ----------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    @property
    def longest_token_chars(self) -> int:
        """The most characters one token can cover (its byte-level string: a character is at least a byte)."""
        if not hasattr(self, "_longest"):
            self._longest = max((len(t) for t in self._tok.get_vocab()), default=1)
        return self._longest

    def chars_for(self, n_ids: int) -> int:
        """A prefix length in characters past which no text's first `n_ids` ids can reach: cutting a text there
        leaves those ids as they were (the token across the cut starts after them)."""
        return (n_ids + 2) * self.longest_token_chars

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"TextTokenizer.encode expects str, got {type(text).__name__}")
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"TextTokenizer.encode_batch: item {i} is {type(t).__name__}, expected str")
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            # the Rust decoder silently drops unknown ids; a silent gap in decoded text hides bugs upstream
            raise ValueError(f"text ids {bad[:5]} are outside the local text range [0, {self.vocab_size})")
        return self._tok.decode(ids, skip_special_tokens=False)

    def to_str(self) -> str:
        """The tokenizer.json content, for bundles that embed it rather than ship the file."""
        return self._tok.to_str()

    @classmethod
    def from_str(cls, content: str) -> "TextTokenizer":
        try:
            tok = Tokenizer.from_str(content)
        except Exception as exc:
            raise ConfigError(f"text tokenizer JSON could not be parsed ({exc})") from exc
        _check_byte_level_bpe(tok, source="TextTokenizer.from_str")
        return cls(tok)


def _empty_byte_level_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    # no normalizer: NFC/NFKC would change the user's bytes and break exact round trips
    # add_prefix_space=False: a leading space would be invented on encode and survive decode
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def _check_byte_level_bpe(tok: Tokenizer, source: str) -> None:
    """Refuse tokenizers whose ids would not round-trip bytes exactly (wrong model, normalizer, added tokens)."""
    if not isinstance(tok.model, models.BPE):
        raise ConfigError(f"{source}: expected a BPE model, got {type(tok.model).__name__}")
    if not isinstance(tok.pre_tokenizer, pre_tokenizers.ByteLevel) or not isinstance(tok.decoder, decoders.ByteLevel):
        raise ConfigError(f"{source}: expected ByteLevel pre-tokenizer and decoder (byte-level BPE)")
    if tok.normalizer is not None:
        raise ConfigError(f"{source}: a normalizer would change input text; byte-level BPE must have none")
    if tok.get_vocab_size(with_added_tokens=True) != tok.get_vocab_size(with_added_tokens=False):
        raise ConfigError(f"{source}: has added/special tokens; special ids belong to the unified Vocabulary")


def _resolve(path: Path) -> Path:
    return path / TOKENIZER_FILENAME if path.is_dir() else path


def _strings(texts: Iterable[str]) -> Iterable[str]:
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"TextTokenizer.train: corpus item {i} is {type(t).__name__}, expected str")
        yield t
