"""The late-fusion baseline: per-modality towers that never see each other's tokens, joined at the embedding,
with OmniModel's interface and parameter count."""

import pytest
import torch
import torch.nn.functional as F

from omniembed.errors import ConfigError
from omniembed.model import OmniModel, build_model, config_for_vocabulary, model_config_dict, model_from_dict
from omniembed.model.late_fusion import (TOWERS, LateFusionModel, compact, early_params, late_params,
                                         match_tower_config, vocabulary_starts)
from omniembed.train.losses import IGNORE_INDEX, lm_targets, next_token_loss
from omniembed.tokenization.vocab import Vocabulary
from omniembed.train.trainer import PairBatch, TokenBatch, TrainConfig, Trainer

VOCAB = Vocabulary(text_size=40, image_codebook=24, audio_codebook=16, time_buckets=4)
SP = VOCAB.special


def late_model(**overrides) -> LateFusionModel:
    return build_model("late", config_for_vocabulary("tiny", VOCAB, **{"grid_position": False, "code_features": "none",
                                                                 **overrides}), VOCAB)


def text(*local):
    return [VOCAB.text_id(i) for i in local]


def image(*codes):
    return [VOCAB.image_id(c) for c in codes]


def audio(*codes):
    return [VOCAB.audio_id(c) for c in codes]


def row(*parts):
    return [SP("<bos>"), *[t for p in parts for t in p], SP("<eos>"), SP("<embed>")]


def interleaved(img_codes=(1, 2, 3, 4), words=(5, 6, 7)):
    """<bos> <image> codes </image> words <audio> codes </audio> <eos> <embed>"""
    return row([SP("<image>"), *image(*img_codes), SP("</image>")], text(*words),
               [SP("<audio>"), *audio(3, 1, 4), SP("</audio>")])


def test_outputs_have_omnimodel_shapes_for_every_head():
    model = late_model().eval()
    ids = torch.tensor([interleaved(), interleaved((9, 8, 7, 6), (1, 2, 3))])
    assert model.forward_lm(ids).shape == (2, ids.shape[1], VOCAB.size)
    assert model.embed_raw(ids).shape == (2, 64)
    emb = model.embed(ids)
    assert emb.shape == (2, 64) and torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    out = model(lm_ids=ids, pair_ids=ids[:1], pair_b_ids=ids[1:])
    assert out["logits"].shape == (2, ids.shape[1], VOCAB.size)
    assert out["embedding"].shape == (2, 64) and out["temperature"].shape == ()
    new = model.generate(ids[0], 5, allowed_ids=VOCAB.text_range, eos_id=SP("<eos>"))
    assert new.dim() == 1 and 1 <= len(new) <= 5
    assert all(int(t) in VOCAB.text_range or int(t) == SP("<eos>") for t in new)


def test_image_ids_never_change_the_text_towers_states_or_text_logits():
    model = late_model().eval()
    base = torch.tensor([interleaved(img_codes=(1, 2, 3, 4))])
    other = torch.tensor([interleaved(img_codes=(20, 0, 11, 7))])
    longer = torch.tensor([interleaved(img_codes=(5,) * 9)])  # more image tokens shift every later position
    ref = model.tower_states(base)
    for changed in (other, longer):
        states = model.tower_states(changed)
        assert torch.equal(states["text"].hidden, ref["text"].hidden)
        assert torch.equal(states["audio"].hidden, ref["audio"].hidden)
    assert not torch.allclose(model.tower_states(other)["image"].hidden, ref["image"].hidden)
    # the next-token logits of text and audio ids come from their own towers: image ids do not move them
    a, b = model.forward_lm(base), model.forward_lm(other)
    own = list(VOCAB.text_range) + list(VOCAB.audio_range)
    assert torch.equal(a[..., own], b[..., own])
    img = list(VOCAB.image_range)
    assert not torch.allclose(a[..., img], b[..., img])


def test_interleaved_embedding_is_the_mean_of_its_towers_embeddings():
    model = late_model().eval()
    img = [SP("<image>"), *image(1, 2, 3), SP("</image>")]
    words = text(4, 5, 6)
    both = torch.tensor([row(img, words)])
    # each tower of `both` reads its own tokens plus every special id, so these are its two towers' inputs
    image_only = torch.tensor([row(img)])
    text_only = torch.tensor([row([SP("<image>"), SP("</image>")], words)])
    mean = (model.embed_raw(image_only) + model.embed_raw(text_only)) / 2
    assert torch.allclose(model.embed_raw(both), mean, atol=1e-5)
    # a content-free row falls back to the text tower instead of dividing by zero
    assert torch.isfinite(model.embed(torch.tensor([row()]))).all()


def test_video_is_read_by_the_image_and_audio_towers_only():
    model = late_model().eval()
    video = row([SP("<video>"), SP("<frame>"), VOCAB.time_token(0.0), *image(1, 2), SP("<frame>"),
                 VOCAB.time_token(0.5), *image(3, 4), SP("<audio>"), *audio(5, 6, 7), SP("</audio>"),
                 SP("</video>")])
    states = model.tower_states(torch.tensor([video]))
    assert [bool(states[m].present) for m in TOWERS] == [False, True, True]
    n_special = sum(1 for t in video if t < VOCAB.text_range.start)
    assert int(states["image"].mask.sum()) == n_special + 4 and int(states["audio"].mask.sum()) == n_special + 3


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_embedding_ignores_padding_on_either_side(attention, pooling):
    model = late_model(embed_attention=attention, pooling=pooling).eval()
    seq = torch.tensor(interleaved())
    pad = torch.zeros(5, dtype=torch.long)
    right, left = torch.cat([seq, pad])[None], torch.cat([pad, seq])[None]
    ref = model.embed(seq[None])
    assert torch.allclose(model.embed(right, right != 0), ref, atol=1e-5)
    assert torch.allclose(model.embed(left, left != 0), ref, atol=1e-5)


def test_lm_logits_at_position_t_ignore_later_tokens():
    model = late_model().eval()
    ids = torch.tensor([interleaved()])
    full = model.forward_lm(ids)
    for t in (1, 4, 8, ids.shape[1] - 1):
        assert torch.allclose(model.forward_lm(ids[:, :t]), full[:, :t], atol=1e-5)


def test_matryoshka_prefixes_are_renormalised_prefixes_of_the_full_vector():
    model = late_model().eval()
    ids = torch.tensor([interleaved(), interleaved((3, 3, 3, 3), (9, 9, 9))])
    raw = model.embed_raw(ids)
    for d in model.cfg.embed_dims:
        assert torch.allclose(model.embed(ids, dim=d), F.normalize(raw[:, :d], dim=-1), atol=1e-6)
    with pytest.raises(ValueError, match="embedding dim"):
        model.embed(ids, dim=65)


def test_joint_loss_reaches_every_tower_the_projection_and_the_temperature():
    model = late_model()
    lm = torch.tensor([interleaved()])
    a = torch.tensor([row(text(1, 2)), row(text(3, 4))])
    b = torch.tensor([row([SP("<image>"), *image(1, 2), SP("</image>")]),
                      row([SP("<audio>"), *audio(3, 4), SP("</audio>")])])
    out = model(lm_ids=lm, pair_ids=a, pair_b_ids=b)
    loss, _ = next_token_loss(out["logits"], lm_targets(lm, lm != 0), IGNORE_INDEX)
    ea, eb = F.normalize(out["embedding"], dim=-1).chunk(2)
    logits = ea @ eb.T / out["temperature"]
    loss = loss + F.cross_entropy(logits, torch.arange(2))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_parameter_count_matches_the_early_fusion_trunk_within_two_percent():
    for sizes in ((40, 24, 16), (512, 64, 64), (2048, 512, 512)):
        vocab = Vocabulary(*sizes)
        for name in ("tiny", "small"):
            # the formulas count no grid cells and no code features (late fusion has neither, nor image dropout)
            cfg = config_for_vocabulary(name, vocab, grid_position=False, code_features="none",
                                        image_dropout=0.0)
            late, early = build_model("late", cfg, vocab), OmniModel(cfg)
            assert abs(late.num_params() - early.num_params()) <= 0.02 * early.num_params(), (sizes, name)
            assert late.num_params() == late_params(late.cfg, late.starts)
            assert early.num_params() == early_params(cfg)
    # the formula also holds without tied embeddings
    untied = config_for_vocabulary("tiny", VOCAB, tie_embeddings=False, grid_position=False, code_features="none")
    shape = match_tower_config(untied, vocabulary_starts(VOCAB))
    assert LateFusionModel(shape, vocabulary_starts(VOCAB)).num_params() == late_params(shape, vocabulary_starts(VOCAB))
    assert OmniModel(untied).num_params() == early_params(untied)


def test_trainer_drives_the_late_model_and_its_contrastive_loss_falls():
    torch.manual_seed(0)
    model = late_model()
    trainer = Trainer(model, TrainConfig(lr=3e-3, warmup_steps=3, total_steps=70, spike_factor=0))
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(60):  # separate towers align slower than one shared trunk: more steps than test_training
        labels = torch.randperm(24, generator=g)[:12]
        a = torch.tensor([row(text(int(k), int(k) + 10)) for k in labels])
        b = torch.tensor([row([SP("<image>"), *image(int(k), int(k)), SP("</image>")]) for k in labels])
        lm = torch.tensor([interleaved()] * 2)
        r = trainer.train_step(lm=TokenBatch(lm, lm != 0),
                               pairs=PairBatch(a, a != 0, b, b != 0, labels))
        losses.append(r.stats["con/loss"])
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:5]) / 5, losses


def test_a_model_rebuilt_from_its_config_dict_loads_its_weights(tmp_path):
    model = late_model().eval()
    data = model_config_dict(model)
    assert data["kind"] == "late"
    again = model_from_dict(data).eval()
    again.load_state_dict(model.state_dict())
    ids = torch.tensor([interleaved()])
    assert torch.equal(again.embed(ids), model.embed(ids))
    early = build_model("early", config_for_vocabulary("tiny", VOCAB, grid_position=False))
    assert isinstance(model_from_dict(model_config_dict(early)), OmniModel)


def test_bad_kinds_and_ranges_are_config_errors_naming_the_key():
    with pytest.raises(ConfigError, match="model.code_features=none with model.kind=late"):
        build_model("late", config_for_vocabulary("tiny", VOCAB, grid_position=False, code_features="replace"), VOCAB)
    cfg = config_for_vocabulary("tiny", VOCAB, grid_position=False, code_features="none")
    with pytest.raises(ConfigError, match="model.kind='mid'"):
        build_model("mid", cfg, VOCAB)
    with pytest.raises(ConfigError, match="needs the Vocabulary"):
        build_model("late", cfg)
    with pytest.raises(ConfigError, match="starts"):
        LateFusionModel(cfg, (0, 10, 20))
    with pytest.raises(ConfigError, match="kind='late'"):
        model_from_dict({**cfg.to_dict(), "kind": "late"})


def test_compact_moves_members_to_the_front_in_order():
    member = torch.tensor([[False, True, False, True, True], [True, False, False, False, False]])
    index, mask = compact(member)
    assert index.shape == (2, 3)
    assert index[0].tolist() == [1, 3, 4] and index[1, 0].item() == 0
    assert mask.tolist() == [[True, True, True], [True, False, False]]
