"""The joint training step: losses fall on learnable token data, bad steps are skipped, bf16 runs,
the LR schedule has its shape."""

import logging

import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.train.schedule import build_scheduler, warmup_cosine
from omniembed.train.trainer import (PairBatch, TokenBatch, TrainConfig, Trainer, TrainingDiverged,
                               cpu_has_native_bf16)

PAD = 0


def lm_batch(ids):
    return TokenBatch(ids, ids != PAD)


def pair_batch(a, b, labels=None):
    return PairBatch(a, a != PAD, b, b != PAD, labels)


def test_tiny_model_next_token_loss_falls_on_a_learnable_corpus(make_model, corpus):
    data = corpus(256, seed=1)
    trainer = Trainer(make_model(), TrainConfig(lr=3e-3, warmup_steps=5, total_steps=60))
    losses = []
    for step in range(40):
        batch = data[(step * 16) % 256:(step * 16) % 256 + 16]
        losses.append(trainer.train_step(lm=lm_batch(batch)).stats["lm/ce"])
    first, last = sum(losses[:3]) / 3, sum(losses[-5:]) / 5
    assert first > 3.5  # about ln(64) at init
    assert last < 0.6 * first, losses
    print(f"lm ce first {first:.3f} last {last:.3f}")


def test_contrastive_loss_falls_on_paired_views_that_share_content(make_model, pairs):
    a, b, labels = pairs(512, seed=2)
    trainer = Trainer(make_model(), TrainConfig(lr=3e-3, warmup_steps=5, total_steps=60))
    accs, losses = [], []
    for step in range(40):
        sl = slice((step * 32) % 512, (step * 32) % 512 + 32)
        r = trainer.train_step(pairs=pair_batch(a[sl], b[sl], labels[sl]))
        losses.append(r.stats["con/loss"])
        accs.append(r.stats["con/acc@64"])
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:3]) / 3, losses
    assert sum(accs[-5:]) / 5 > 0.5  # in-batch retrieval of the other view, chance is ~1/32
    # held-out items: the trained model puts each item's two views closest together
    ta, tb, tl = pairs(32, seed=99)
    model = trainer.model.eval()
    sims = model.embed(ta) @ model.embed(tb).T
    hit = (tl[sims.argmax(1)] == tl).float().mean()
    assert hit > 0.5
    print(f"contrastive loss {losses[0]:.3f} -> {losses[-1]:.3f}, acc {accs[-1]:.2f}, held-out hit {hit:.2f}")


def test_joint_step_reports_both_losses_and_every_matryoshka_dim(make_model, corpus, pairs):
    a, b, labels = pairs(16)
    trainer = Trainer(make_model(), TrainConfig())
    r = trainer.train_step(lm_batch(corpus(8)), pair_batch(a, b, labels))
    assert not r.skipped and r.step == 1
    for key in ("lm/ce", "lm/z", "con/loss@16", "con/loss@32", "con/loss@64", "temperature"):
        assert key in r.stats and torch.isfinite(torch.tensor(r.stats[key]))
    # total = lm_weight * (ce + z_w * z) + contrastive_weight * contrastive
    z_w = trainer.model.cfg.z_loss_weight
    expected = r.stats["lm/ce"] + z_w * r.stats["lm/z"] + r.stats["con/loss"]
    assert abs(r.loss - expected) < 1e-4


def test_bf16_autocast_step_runs_and_keeps_fp32_weights(make_model, corpus, pairs, caplog):
    a, b, labels = pairs(16)
    with caplog.at_level(logging.WARNING, logger="omniembed.train"):
        trainer = Trainer(make_model(), TrainConfig(precision="bf16"))
    # where the CPU emulates bf16 the user is told it will be slower, not left to find out
    assert ("without AVX512-BF16 or AMX" in caplog.text) is (not cpu_has_native_bf16())
    before = trainer.model.tok_emb.weight.detach().clone()
    r = trainer.train_step(lm_batch(corpus(8)), pair_batch(a, b, labels))
    assert not r.skipped and torch.isfinite(torch.tensor(r.loss))
    assert trainer.model.tok_emb.weight.dtype == torch.float32
    assert not torch.equal(before, trainer.model.tok_emb.weight)


def test_nan_loss_skips_the_step_with_a_message_and_leaves_weights_unchanged(make_model, corpus, caplog):
    trainer = Trainer(make_model(), TrainConfig(max_bad_steps=3))
    data = lm_batch(corpus(8))
    trainer.train_step(data)
    weight = trainer.model.blocks[0].mlp.down.weight
    saved = weight.detach().clone()
    with torch.no_grad():
        weight[0, 0] = float("nan")  # a corrupted weight: every loss is NaN from here
    snapshot = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="omniembed.train"):
        r = trainer.train_step(data)
    assert r.skipped and "loss is nan" in r.reason
    assert "step 2: loss is nan; step skipped, weights unchanged (1/3 in a row)" in caplog.text
    after = trainer.model.state_dict()
    assert all(torch.allclose(snapshot[k], after[k], rtol=0, atol=0, equal_nan=True) for k in snapshot)
    assert trainer.step == 1 and trainer.scheduler.last_epoch == 1
    with torch.no_grad():
        weight.copy_(saved)
    assert not trainer.train_step(data).skipped and trainer.step == 2  # recovers once the weights are sane


def test_consecutive_nan_steps_stop_training_with_a_clear_error(make_model, corpus):
    trainer = Trainer(make_model(), TrainConfig(max_bad_steps=3))
    with torch.no_grad():
        trainer.model.norm.weight.fill_(float("nan"))
    data = lm_batch(corpus(8))
    assert trainer.train_step(data).skipped
    assert trainer.train_step(data).skipped
    with pytest.raises(TrainingDiverged, match="3 consecutive steps skipped.*loss is nan"):
        trainer.train_step(data)


def test_a_loss_spike_far_above_the_running_mean_is_skipped(make_model, corpus):
    trainer = Trainer(make_model(), TrainConfig(spike_warmup=3, spike_factor=2.0, lr=1e-3))
    data = lm_batch(corpus(8))
    for _ in range(3):
        assert not trainer.train_step(data).skipped
    with torch.no_grad():  # sharpen the output head: a confident wrong model, a huge but finite loss
        trainer.model.norm.weight.mul_(200.0)
    r = trainer.train_step(data)
    assert r.skipped and "spiked" in r.reason


def test_warmup_cosine_rises_linearly_then_decays_to_the_floor():
    assert warmup_cosine(0, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 110, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(110, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 10, 110, 0.1) == pytest.approx(0.1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = build_scheduler(opt, 10, 110, 0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)
    for _ in range(60):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.1)
    with pytest.raises(ConfigError, match="min_lr_ratio=2"):
        build_scheduler(opt, 10, 110, 2)


def test_train_config_rejects_unknown_keys_and_precisions():
    with pytest.raises(ConfigError, match="unknown keys \\['learning_rate'\\]"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="precision='fp16'"):
        TrainConfig(precision="fp16")


def test_a_views_step_trains_the_weighted_mean_of_its_pair_losses(make_model, pairs):
    from omniembed.train.losses import matryoshka_contrastive_loss
    from omniembed.train.trainer import ViewsBatch

    a, b, labels = pairs(16, seed=5)
    c = torch.roll(b, 1, dims=1)  # a third view of the same items
    views = [(x, x != PAD) for x in (a, b, c)]
    batch = ViewsBatch(views, [(0, 1, 2.0), (1, 2, 1.0)], labels)
    model = make_model()
    trainer = Trainer(model, TrainConfig(lr=1e-3))
    with torch.no_grad():
        emb = [model.embed_raw(ids, mask) for ids, mask in views]
        t = model.temperature()
        want = (2 * matryoshka_contrastive_loss(emb[0], emb[1], model.cfg.embed_dims, t, labels=labels)[0]
                + matryoshka_contrastive_loss(emb[1], emb[2], model.cfg.embed_dims, t, labels=labels)[0]) / 3
    r = trainer.train_step(pairs=batch)
    assert not r.skipped and abs(r.stats["con/loss"] - float(want)) < 1e-4
    assert batch.tokens() == int(sum(m.sum() for _, m in views))
