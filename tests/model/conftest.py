"""Fixtures for the trunk tests: a tiny model and small token corpora with structure a model can learn.

Token layout of the test vocabulary (64 ids): 0 <pad>, 1 <embed>, 2 <eos>, 3 spare, 4.. content.
"""

import pytest
import torch

from omniembed.model import OmniModel, load_model_config

VOCAB, PAD, EMBED, EOS = 64, 0, 1, 2


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    # 2 cores shared with other test runs: one thread avoids OpenMP spin contention; restore afterwards
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_model():
    def make(**overrides):
        cfg = load_model_config("tiny", vocab_size=VOCAB, pad_id=PAD, **overrides)
        return OmniModel(cfg)
    return make


def progression_corpus(n: int, length: int = 24, seed: int = 0) -> torch.Tensor:
    """Arithmetic progressions mod 24 in ids 4..27: after two tokens the rest is determined. (n, length)."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, 24, (n, 1), generator=g)
    step = torch.randint(1, 4, (n, 1), generator=g)
    return 4 + (start + step * torch.arange(length)) % 24


def paired_views(n: int, seed: int = 0):
    """Items with two attributes (6 x 6); view a spells them as 'text' ids 4..15 with filler, view b as
    'image' ids 30..63 in another order and length. Both end with <embed>. Returns a, b, labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 36, (n,), generator=g)
    colour, shape = labels // 6, labels % 6
    filler = torch.randint(16, 28, (n, 2), generator=g)
    embed = torch.full_like(labels, EMBED)
    a = torch.stack([filler[:, 0], 4 + colour, filler[:, 1], 10 + shape, embed], dim=1)
    noise = torch.randint(56, 64, (n, 2), generator=g)
    b = torch.stack([30 + shape, noise[:, 0], 40 + colour, 46 + shape, noise[:, 1], embed], dim=1)
    return a, b, labels


@pytest.fixture
def corpus():
    return progression_corpus


@pytest.fixture
def pairs():
    return paired_views
