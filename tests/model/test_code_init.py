"""Media-code embeddings started from the tokenizers' codebooks (omniembed.model.code_init)."""

import torch

from omniembed.model import build_model, config_for_vocabulary
from omniembed.model.code_init import codebook_rows, init_code_embeddings
from omniembed.tokenization.vocab import Vocabulary
from omniembed.tokenization.vq import VectorQuantizer


def distances(x):
    return torch.cdist(x.double(), x.double())


def test_rows_keep_the_codes_distances_up_to_scale_and_have_the_embedding_std():
    g = torch.Generator().manual_seed(0)
    narrow = torch.randn(50, 8, generator=g)  # narrower than the model: rotated in, distances exact
    rows = codebook_rows(narrow, 32, std=0.02)
    assert rows.shape == (50, 32) and abs(rows.std().item() - 0.02) < 0.004
    ratio = distances(rows)[~torch.eye(50, dtype=bool)] / distances(narrow)[~torch.eye(50, dtype=bool)]
    assert torch.allclose(ratio, ratio.mean().expand_as(ratio), rtol=1e-4)
    wide = torch.randn(50, 4, generator=g) @ torch.randn(4, 64, generator=g)  # rank 4 in 64 dims: PCA keeps it all
    rows = codebook_rows(wide, 16, std=0.02)
    ratio = distances(rows)[~torch.eye(50, dtype=bool)] / distances(wide)[~torch.eye(50, dtype=bool)]
    assert torch.allclose(ratio, ratio.mean().expand_as(ratio), rtol=1e-4)


def quantizers(vocab, trained=("image", "audio")):
    out = {}
    for name, n in (("image", vocab.image_codebook), ("audio", vocab.audio_codebook)):
        vq = VectorQuantizer(n, 6)
        vq.codebook.copy_(torch.randn(n, 6))
        vq.initialized.fill_(name in trained)
        out[name] = vq
    return out


def test_each_trained_codebook_lands_on_its_codes_ids_in_early_and_late_fusion():
    vocab = Vocabulary(text_size=40, image_codebook=24, audio_codebook=16, time_buckets=4)
    for kind in ("early", "late"):
        torch.manual_seed(0)
        model = build_model(kind, config_for_vocabulary("tiny", vocab, image_tokens=4, code_features="none"), vocab)
        before = {k: v.clone() for k, v in model.state_dict().items() if "tok_emb" in k}
        vqs = quantizers(vocab, trained=("image",))  # audio untrained (the data had none): left random
        assert init_code_embeddings(model, vocab, vqs) == ["image"]
        ids = torch.tensor([vocab.image_id(c) for c in range(24)])
        if kind == "early":
            image = model.tok_emb.weight[ids]
            assert torch.equal(model.tok_emb.weight[vocab.audio_range.start:], before["tok_emb.weight"][
                vocab.audio_range.start:])
            assert torch.equal(model.tok_emb.weight[:vocab.image_range.start],
                               before["tok_emb.weight"][:vocab.image_range.start])
        else:
            table = model.towers["image"].tok_emb.weight
            image = table[vocab.num_special:]
            assert torch.equal(table[:vocab.num_special], before["towers.image.tok_emb.weight"][:vocab.num_special])
            assert torch.equal(model.towers["audio"].tok_emb.weight, before["towers.audio.tok_emb.weight"])
        off = ~torch.eye(24, dtype=bool)
        ratio = distances(image)[off] / distances(vqs["image"].codebook)[off]
        assert torch.allclose(ratio, ratio.mean().expand_as(ratio), rtol=1e-3), kind


def test_code_features_media_codes_enter_by_their_codebook_vectors_alone():
    import pytest

    from omniembed.model.code_init import set_code_features
    from omniembed.model.factory import model_config_dict, model_from_dict

    vocab = Vocabulary(text_size=40, image_codebook=24, audio_codebook=16, time_buckets=4)
    torch.manual_seed(0)
    cfg = config_for_vocabulary("tiny", vocab, image_tokens=4, code_features="replace", code_feature_dim=12)
    model = build_model("early", cfg, vocab).eval()
    with pytest.raises(ValueError, match="code_features is off"):
        plain = config_for_vocabulary("tiny", vocab, image_tokens=4, code_features="none")
        set_code_features(build_model("early", plain, vocab), vocab, quantizers(vocab))
    vqs = quantizers(vocab, trained=("image",))  # audio untrained: its codes keep their own rows
    assert set_code_features(model, vocab, vqs) == ["image"]
    image, audio = vocab.image_range, vocab.audio_range
    assert model.code_table[image.start:image.stop, :6].abs().sum(1).gt(0).all()
    assert not model.code_table[image.start:image.stop, 6:].any() and not model.code_table[audio.start:].any()
    assert not model.code_free[image.start:image.stop].any() and model.code_free[:image.start].eq(1).all()
    assert model.code_free[audio.start:audio.stop].eq(1).all()
    off = ~torch.eye(24, dtype=bool)  # near codes, near inputs: the codebook's distances up to scale
    ratio = distances(model.code_table[image.start:image.stop, :6])[off] / distances(vqs["image"].codebook)[off]
    assert torch.allclose(ratio, ratio.mean().expand_as(ratio), rtol=1e-3)

    ids = torch.tensor([[vocab.special("<image>"), *[vocab.image_id(c) for c in (3, 7, 7, 1)],
                         vocab.special("</image>")]])
    before = model.embed(ids)
    with torch.no_grad():
        model.tok_emb.weight[image.start:image.stop] += 1.0  # the codes' own rows: not inputs any more
    assert torch.allclose(model.embed(ids), before, atol=1e-6)
    with torch.no_grad():
        model.code_table[vocab.image_id(7)] += 1.0
    assert not torch.allclose(model.embed(ids), before, atol=1e-3)
    model.embed(ids).sum().backward()
    assert model.code_proj.weight.grad.abs().sum() > 0 and model.code_table.grad is None  # a fixed table

    again = model_from_dict(model_config_dict(model))  # train.yaml + checkpoint, as export rebuilds it
    again.load_state_dict(model.state_dict())
    assert torch.allclose(again.eval().embed(ids), model.embed(ids), atol=1e-6)


def test_added_code_features_start_at_zero_and_the_map_learns_from_the_first_step():
    from omniembed.model.code_init import set_code_features

    vocab = Vocabulary(text_size=40, image_codebook=24, audio_codebook=16, time_buckets=4)
    torch.manual_seed(0)
    model = build_model("early", config_for_vocabulary("tiny", vocab, image_tokens=4, code_features="add",
                                                       code_feature_dim=12), vocab)
    assert not model.code_proj.weight.any()  # at first the trunk without code features
    assert set_code_features(model, vocab, quantizers(vocab)) == ["image", "audio"]
    assert not hasattr(model, "code_free")  # "add": every code keeps its own row too
    ids = torch.tensor([[vocab.special("<audio>"), *[vocab.audio_id(c) for c in (2, 5, 5)], vocab.special("</audio>")]])
    model.embed(ids).sum().backward()
    assert model.code_proj.weight.grad[:, 6:].abs().sum() > 0  # audio codes: the second half of the columns
    assert not model.code_proj.weight.grad[:, :6].any()  # no image code in the sequence


def test_image_dropout_zeroes_image_code_inputs_in_training_only():
    import pytest

    from omniembed.errors import ConfigError
    from omniembed.model.config import ModelConfig

    vocab = Vocabulary(text_size=40, image_codebook=24, audio_codebook=16, time_buckets=4)
    torch.manual_seed(0)
    model = build_model("early", config_for_vocabulary("tiny", vocab, image_tokens=4, image_dropout=0.5), vocab)
    image = torch.tensor([[vocab.special("<image>"), *[vocab.image_id(c) for c in (3, 7, 7, 1)],
                           vocab.special("</image>")]])
    others = torch.tensor([[vocab.text_id(t) for t in (1, 2, 3)] + [vocab.special("<audio>"), vocab.audio_id(2),
                                                                     vocab.audio_id(5), vocab.special("</audio>")]])
    with torch.no_grad():
        evaluated, evaluated_others = model.eval().embed(image), model.embed(others)
        assert torch.equal(model.embed(image), evaluated)  # no dropout at inference
        model.train()
        image_runs = [model.embed(image) for _ in range(20)]
        other_runs = [model.embed(others) for _ in range(5)]
    assert sum(not torch.allclose(r, evaluated, atol=1e-6) for r in image_runs) >= 10  # codes dropped, p = 0.5
    assert all(torch.allclose(r, evaluated_others, atol=1e-6) for r in other_runs)  # text and audio never dropped
    with pytest.raises(ConfigError, match="image_dropout"):
        ModelConfig(vocab_size=100, image_dropout=1.0)
    with pytest.raises(ConfigError, match="image_dropout.*early-fusion"):  # late fusion's towers renumber ids
        build_model("late", config_for_vocabulary("tiny", vocab, image_tokens=4, image_dropout=0.1,
                                                  code_features="none"), vocab)
