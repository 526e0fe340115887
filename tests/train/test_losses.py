"""Losses: next-token CE + z-loss, and the Matryoshka contrastive loss (single process; DDP in
test_distributed.py)."""

import math

import pytest
import torch
import torch.nn.functional as F

from omniembed.train.losses import IGNORE_INDEX, lm_targets, matryoshka_contrastive_loss, next_token_loss


def test_lm_targets_shift_by_one_and_ignore_padding_and_the_last_position():
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    targets = lm_targets(ids, ids != 0)
    assert targets.tolist() == [[6, 7, IGNORE_INDEX, IGNORE_INDEX], [9, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]


def test_next_token_loss_is_cross_entropy_plus_weighted_mean_squared_log_normaliser():
    logits = torch.randn(2, 5, 11) * 3
    targets = torch.randint(0, 11, (2, 5))
    targets[1, 3:] = IGNORE_INDEX
    loss, stats = next_token_loss(logits, targets, IGNORE_INDEX, z_loss_weight=0.01)
    ce = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1), ignore_index=IGNORE_INDEX)
    valid = targets.reshape(-1) != IGNORE_INDEX
    z = torch.logsumexp(logits.reshape(-1, 11), -1)[valid].pow(2).mean()
    assert torch.allclose(stats["lm/ce"], ce, atol=1e-5)
    assert torch.allclose(stats["lm/z"], z, atol=1e-4)
    assert torch.allclose(loss, ce + 0.01 * z, atol=1e-5)
    assert int(stats["lm/tokens"]) == 8


def test_z_loss_gradient_pulls_the_log_normaliser_toward_zero():
    logits = torch.full((1, 1, 4), 5.0, requires_grad=True)  # log Z = 5 + ln 4 > 0
    loss, _ = next_token_loss(logits, torch.tensor([[0]]), z_loss_weight=1.0)
    loss.backward()
    # without the z-loss the gradient of CE sums to zero over the vocabulary; with it, it pushes all logits down
    assert logits.grad.sum() > 0


def test_matryoshka_loss_is_finite_at_every_prefix_and_each_term_is_infonce():
    torch.manual_seed(0)
    a, b = torch.randn(8, 32), torch.randn(8, 32)
    dims = (8, 16, 32)
    loss, stats = matryoshka_contrastive_loss(a, b, dims, temperature=0.1)
    assert torch.isfinite(loss)
    for d in dims:
        an, bn = F.normalize(a[:, :d], dim=-1), F.normalize(b[:, :d], dim=-1)
        logits = an @ bn.T / 0.1
        expected = (F.cross_entropy(logits, torch.arange(8)) + F.cross_entropy(logits.T, torch.arange(8))) / 2
        assert torch.isfinite(stats[f"con/loss@{d}"])
        assert torch.allclose(stats[f"con/loss@{d}"], expected, atol=1e-5)
    assert torch.allclose(loss, torch.stack([stats[f"con/loss@{d}"] for d in dims]).mean(), atol=1e-6)


def test_matryoshka_loss_is_near_zero_for_matching_views_and_near_log_batch_for_random_ones():
    torch.manual_seed(0)
    a = torch.randn(16, 64)
    low, _ = matryoshka_contrastive_loss(a, a + 0.01 * torch.randn(16, 64), (16, 64), temperature=0.05)
    high, _ = matryoshka_contrastive_loss(a, torch.randn(16, 64), (16, 64), temperature=1.0)
    assert low < 0.05
    assert abs(high.item() - math.log(16)) < 0.5


def test_rows_sharing_a_label_are_not_negatives_of_each_other():
    torch.manual_seed(0)
    base = torch.randn(4, 16)
    # rows 0 and 1 are the same item seen twice: identical views, so each is as close to the other as to itself
    a = torch.cat([base[:1], base[:1], base[1:]])
    b = a.clone()
    labels = torch.tensor([7, 7, 1, 2, 3])
    without, _ = matryoshka_contrastive_loss(a, b, (16,), temperature=0.05)
    masked, stats = matryoshka_contrastive_loss(a, b, (16,), temperature=0.05, labels=labels)
    # unmasked, the duplicate is a negative as close as the positive: ln 2 for each of its 2 rows of 5
    assert abs(without.item() - 2 * math.log(2) / 5) < 0.02
    assert masked < 0.01
    assert stats["con/acc@16"] == 1.0


def test_learnable_temperature_receives_a_gradient():
    log_t = torch.tensor(math.log(0.07), requires_grad=True)
    loss, _ = matryoshka_contrastive_loss(torch.randn(6, 8), torch.randn(6, 8), (4, 8), temperature=log_t.exp())
    loss.backward()
    assert log_t.grad is not None and torch.isfinite(log_t.grad) and log_t.grad != 0


def test_matryoshka_loss_refuses_dims_past_the_embedding_width():
    with pytest.raises(ValueError, match="dims \\[8, 64\\] must lie in 1..32"):
        matryoshka_contrastive_loss(torch.randn(4, 32), torch.randn(4, 32), (8, 64), temperature=0.1)
