"""Trainer options for large runs, each against the plain step: gradient accumulation, activation
checkpointing, torch.compile, and the tokens/s and MFU accounting."""

import math

import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.train.throughput import Throughput, batch_tokens, flops_per_token
from omniembed.train.trainer import PairBatch, TokenBatch, TrainConfig, Trainer

PAD = 0


def trained(make_model, steps, **cfg):
    torch.manual_seed(0)
    trainer = Trainer(make_model(), TrainConfig(lr=3e-3, warmup_steps=1, total_steps=10, **cfg))
    for batch in steps:
        trainer.train_step(**batch)
    return trainer.model.state_dict()


def assert_same(a, b, atol):
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=atol, msg=lambda m: f"{name}: {m}")


def lm(ids):
    return TokenBatch(ids, ids != PAD)


def test_two_accumulated_micro_batches_step_like_one_batch_of_both(make_model, corpus):
    data = corpus(24, seed=3)  # equal lengths: the mean over tokens of the halves is the mean of the whole
    whole = [{"lm": lm(data[i:i + 8])} for i in (0, 8, 16)]
    halves = [{"micro": [(lm(data[i:i + 4]), None), (lm(data[i + 4:i + 8]), None)]} for i in (0, 8, 16)]
    # the second arm runs with grad_accum=2, as the loop would hand it two micro-batches per step
    # atol 5e-5: float rounding through Adam (measured 2.8e-6 with AVX2 kernels, 1.1e-5 with AVX-512 ones); an
    # accumulation bug moves weights by ~lr (3e-3)
    assert_same(trained(make_model, whole), trained(make_model, halves, grad_accum=2), atol=5e-5)


def test_activation_checkpointing_recomputes_to_the_same_parameters(make_model, corpus, pairs):
    data = corpus(16, seed=4)
    a, b, labels = pairs(16, seed=4)
    steps = [{"lm": lm(data[:8]), "pairs": PairBatch(a[:8], a[:8] != PAD, b[:8], b[:8] != PAD, labels[:8])},
             {"lm": lm(data[8:]), "pairs": PairBatch(a[8:], a[8:] != PAD, b[8:], b[8:] != PAD, labels[8:])}]
    assert_same(trained(make_model, steps), trained(make_model, steps, activation_checkpointing=True), atol=1e-6)


def test_compiled_model_trains_to_the_same_parameters(make_model, corpus):
    data = corpus(16, seed=5)
    steps = [{"lm": lm(data[:8])}, {"lm": lm(data[8:])}]
    # backend "eager": the graph capture of torch.compile without a C++ toolchain; inductor is the default
    assert_same(trained(make_model, steps), trained(make_model, steps, compile="eager"), atol=1e-6)


def test_grad_accum_must_be_positive():
    with pytest.raises(ConfigError, match="grad_accum"):
        TrainConfig(grad_accum=0)


def test_throughput_counts_real_tokens_and_model_flops(make_model, corpus):
    model = make_model()
    ids = corpus(4, length=10)
    ids[0, 6:] = PAD  # one row padded: 6 + 10 + 10 + 10 real tokens
    tokens, mean_len = batch_tokens(TokenBatch(ids, ids != PAD))
    assert tokens == 36 and mean_len == 9.0
    fpt = flops_per_token(model, mean_len)
    embed = model.tok_emb.weight.numel()
    assert fpt == pytest.approx(6 * (model.num_params() - embed) + 12 * model.cfg.n_layers * model.cfg.d_model * 9)
    rate = Throughput(model, torch.device("cpu"), world=2, configured_tflops=1.0)
    rate.add(tokens, mean_len)
    got = rate.report()
    assert got["tokens"] == 72 and got["peak_source"] == "train.peak_tflops"
    assert math.isclose(got["mfu"], got["tokens_per_s"] * fpt / 2e12, rel_tol=1e-3)
