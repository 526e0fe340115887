"""VectorQuantizer: nearest-code lookup, straight-through gradient, EMA updates, dead-code restart."""

import math

import torch

from omniembed.tokenization.vq import VectorQuantizer, code_usage, squared_distances

torch.set_num_threads(2)


def _clustered_data(n_clusters: int, dim: int, per_cluster: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(n_clusters, dim, generator=g)
    points = centres[:, None, :] + 0.05 * torch.randn(n_clusters, per_cluster, dim, generator=g)
    return points.reshape(-1, dim)


def test_lookup_returns_the_nearest_code_by_euclidean_distance():
    vq = VectorQuantizer(16, 4).eval()
    z = torch.randn(5, 7, 4)
    brute = torch.cdist(z.reshape(-1, 4), vq.codebook).argmin(1).reshape(5, 7)
    assert torch.equal(vq.lookup(z), brute)
    assert torch.allclose(squared_distances(z.reshape(-1, 4), vq.codebook),
                          torch.cdist(z.reshape(-1, 4), vq.codebook) ** 2, atol=1e-4)


def test_straight_through_passes_the_gradient_to_the_encoder_output_unchanged():
    vq = VectorQuantizer(8, 3).eval()
    z = torch.randn(10, 3, requires_grad=True)
    z_q, codes, _ = vq(z)
    assert torch.allclose(z_q, vq.codebook[codes])  # forward value is the code vector
    (z_q * torch.arange(3.0)).sum().backward()
    assert torch.allclose(z.grad, torch.arange(3.0).expand(10, 3))


def test_ema_updates_move_codes_to_the_mean_of_their_assigned_vectors():
    torch.manual_seed(0)
    data = _clustered_data(n_clusters=4, dim=2, per_cluster=64, seed=1)
    vq = VectorQuantizer(4, 2, decay=0.8, dead_after=1000).train()
    for _ in range(60):
        vq(data)
    codes = vq.lookup(data)
    for k in codes.unique():
        assigned = data[codes == k]
        assert torch.allclose(vq.codebook[k], assigned.mean(0), atol=0.05)


def test_dead_code_restart_revives_codes_after_most_of_the_codebook_collapsed():
    torch.manual_seed(0)
    data = _clustered_data(n_clusters=48, dim=8, per_cluster=16, seed=2)  # 768 vectors in 48 tight clusters

    def collapsed(dead_after: int) -> VectorQuantizer:
        vq = VectorQuantizer(64, 8, decay=0.9, dead_after=dead_after).train()
        vq.initialized.fill_(True)  # skip data init: start from a collapsed codebook instead
        far = torch.full((64, 8), 100.0) + torch.randn(64, 8)
        far[:2] = data[:2]  # only two codes anywhere near the data
        vq.codebook.copy_(far)
        vq.ema_sum.copy_(far)
        return vq

    vq = collapsed(dead_after=5)
    vq(data)
    assert vq.usage()["codes_used"] <= 2  # the collapse is real: two codes serve everything
    for _ in range(40):
        vq(data)
    vq.reset_usage()
    for _ in range(5):
        vq(data)
    revived = vq.usage()
    assert revived["restarts"] >= 62
    assert revived["codes_used"] >= 48  # every cluster has its own code again
    assert revived["perplexity"] > 40

    control = collapsed(dead_after=10**6)  # same start, restarts disabled: stays collapsed
    for _ in range(45):
        control(data)
    assert control.usage()["codes_used"] <= 2


def test_code_usage_reports_fraction_and_perplexity():
    uniform = code_usage(torch.arange(8).repeat(10), 16)
    assert uniform["used_fraction"] == 0.5
    assert math.isclose(uniform["perplexity"], 8.0, rel_tol=1e-9)
    single = code_usage(torch.zeros(50, dtype=torch.long), 16)
    assert single["codes_used"] == 1 and math.isclose(single["perplexity"], 1.0)


def test_kmeans_start_gives_rare_clusters_their_own_codes():
    """k-means++ seeding: a cluster holding 1% of the vectors (a small shape among background) gets a code."""
    torch.manual_seed(0)
    common = _clustered_data(n_clusters=4, dim=6, per_cluster=990, seed=3)
    rare = 10.0 + 0.05 * torch.randn(40, 6)  # far from every common cluster
    vq = VectorQuantizer(8, 6)
    vq.init_kmeans(torch.cat([common, rare]))
    assert bool(vq.initialized)
    rare_codes = vq.lookup(rare).unique()
    assert len(rare_codes) >= 1 and not set(rare_codes.tolist()) & set(vq.lookup(common).unique().tolist())
    assert torch.allclose(vq.embed(rare_codes).mean(0), rare.mean(0), atol=0.2)


def test_bypass_passes_vectors_through_unquantised_only_while_training():
    vq = VectorQuantizer(4, 3)
    vq.init_kmeans(torch.randn(64, 3))
    vq.bypass = True
    z = torch.randn(5, 3)
    z_out, _, commitment = vq.train()(z)
    assert torch.equal(z_out, z) and float(commitment) == 0.0
    z_eval, codes, _ = vq.eval()(z)
    assert torch.allclose(z_eval, vq.codebook[codes], atol=1e-6)  # inference always quantises
