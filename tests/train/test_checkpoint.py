"""Checkpoints: atomic writes, clear errors, and exact resume (weights, optimizer, schedule, RNG, data order)."""

import os
import random

import numpy as np
import pytest
import torch

from omniembed.train.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from omniembed.errors import ConfigError
from omniembed.model import OmniModel, load_model_config
from omniembed.train.sampler import ResumableSampler
from omniembed.train.trainer import PairBatch, TokenBatch, TrainConfig, Trainer

PAD, VOCAB = 0, 64
TRAIN = dict(lr=2e-3, warmup_steps=2, total_steps=8)


def build(seed):
    torch.manual_seed(seed)
    # dropout on: the continuation depends on torch's RNG, so resume must restore it
    model = OmniModel(load_model_config("tiny", vocab_size=VOCAB, pad_id=PAD, dropout=0.1, grid_position=False))
    return Trainer(model, TrainConfig(**TRAIN)), ResumableSampler(96, seed=5)


def run(trainer, sampler, steps, lm, a, b, labels):
    for _ in range(steps):
        idx = sampler.take(12)
        trainer.train_step(TokenBatch(lm[idx], lm[idx] != PAD),
                           PairBatch(a[idx], a[idx] != PAD, b[idx], b[idx] != PAD, labels[idx]))


def test_resume_from_half_way_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path, corpus, pairs):
    lm = corpus(96, seed=3)
    a, b, labels = pairs(96, seed=4)
    straight, s_sampler = build(seed=0)
    run(straight, s_sampler, 8, lm, a, b, labels)  # 8 x 12 = one full epoch, so the resume crosses none

    first, f_sampler = build(seed=0)
    run(first, f_sampler, 4, lm, a, b, labels)
    first.save(tmp_path / "ckpt.pt", data_state={"sampler": f_sampler.state_dict()})
    torch.rand(100)  # disturb every RNG the resumed run must not depend on
    random.random()
    np.random.rand()

    resumed, r_sampler = build(seed=123)  # fresh objects, other initial weights
    state = resumed.resume(tmp_path / "ckpt.pt")
    r_sampler.load_state_dict(state["data_state"]["sampler"])
    assert resumed.step == 4 and state["step"] == 4
    run(resumed, r_sampler, 4, lm, a, b, labels)

    assert resumed.step == straight.step == 8
    assert resumed.scheduler.last_epoch == straight.scheduler.last_epoch
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-6), name


def test_resume_without_restoring_rng_diverges_so_the_rng_state_matters(tmp_path, corpus, pairs):
    lm = corpus(96, seed=3)
    a, b, labels = pairs(96, seed=4)
    first, f_sampler = build(seed=0)
    run(first, f_sampler, 2, lm, a, b, labels)
    first.save(tmp_path / "ckpt.pt", data_state={"sampler": f_sampler.state_dict()})
    run(first, f_sampler, 2, lm, a, b, labels)

    other, o_sampler = build(seed=0)
    state = load_checkpoint(tmp_path / "ckpt.pt", other.module, other.optimizer, other.scheduler,
                            restore_rng=False)
    o_sampler.load_state_dict(state["data_state"]["sampler"])
    torch.manual_seed(77)
    run(other, o_sampler, 2, lm, a, b, labels)
    assert not torch.allclose(first.model.tok_emb.weight, other.model.tok_emb.weight, atol=1e-6)


def test_checkpoint_holds_config_rng_data_position_and_extras(tmp_path, make_model):
    model = make_model()
    random.seed(11)
    path = save_checkpoint(tmp_path / "sub" / "c.pt", model=model, step=7, data_state={"epoch": 2, "offset": 5},
                           config={"model": model.cfg.to_dict()}, extra={"tokenizers": "vocab.json"})
    expected_next = random.random()
    payload = read_checkpoint(path)
    assert payload["step"] == 7 and payload["data_state"] == {"epoch": 2, "offset": 5}
    assert payload["config"]["model"]["vocab_size"] == VOCAB
    assert payload["extra"]["tokenizers"] == "vocab.json"
    assert {"python", "numpy", "torch"} <= set(payload["rng"])
    random.seed(0)
    load_checkpoint(path, make_model())
    assert random.random() == expected_next


class FailsToPickle:
    def __reduce__(self):
        raise RuntimeError("write failed half way")


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, make_model):
    model = make_model()
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=model, step=1)
    first_bytes = path.read_bytes()
    with pytest.raises(RuntimeError, match="write failed"):  # fails after the model bytes are written
        save_checkpoint(path, model=model, step=2, extra={"zz": FailsToPickle()})
    assert path.read_bytes() == first_bytes  # the previous checkpoint is intact
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]


def test_missing_corrupt_or_foreign_checkpoints_raise_errors_naming_the_file(tmp_path, make_model):
    model = make_model()
    with pytest.raises(CheckpointError, match="nope.pt: no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt", model)
    save_checkpoint(tmp_path / "c.pt", model=model)
    truncated = tmp_path / "t.pt"
    truncated.write_bytes((tmp_path / "c.pt").read_bytes()[:500])
    with pytest.raises(CheckpointError, match="t.pt: unreadable checkpoint"):
        load_checkpoint(truncated, model)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "f.pt")
    with pytest.raises(CheckpointError, match="f.pt: format None is not"):
        load_checkpoint(tmp_path / "f.pt", model)
    bigger = OmniModel(load_model_config("tiny", vocab_size=VOCAB + 8, grid_position=False))
    with pytest.raises(CheckpointError, match="c.pt: does not fit this model"):
        load_checkpoint(tmp_path / "c.pt", bigger)


def test_sampler_replays_the_same_order_from_a_saved_position():
    s = ResumableSampler(10, seed=1)
    s.take(7)
    state = s.state_dict()
    rest = s.take(8)  # crosses into epoch 1
    t = ResumableSampler(10, seed=1)
    t.load_state_dict(state)
    assert t.take(8) == rest
    epoch0 = ResumableSampler(10, seed=1).take(10)
    assert sorted(epoch0) == list(range(10)) and epoch0 != list(range(10))
    with pytest.raises(ConfigError, match="does not match this sampler"):
        ResumableSampler(11, seed=1).load_state_dict(state)
