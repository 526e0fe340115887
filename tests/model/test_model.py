"""The trunk: config loading, masks, padding invariance, Matryoshka prefixes, greedy generation."""

import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.model import ModelConfig, OmniModel, config_for_vocabulary, load_model_config
from omniembed.tokenization.vocab import Vocabulary

PAD, EOS, VOCAB = 0, 2, 64  # the test vocabulary of tests/model/conftest.py


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_named_configs_give_their_model_section_and_grow_in_order(name):
    cfg = load_model_config(name, vocab_size=1000, grid_position=False)  # no image range in this vocabulary
    assert cfg.vocab_size == 1000 and cfg.d_model % cfg.n_heads == 0
    sizes = [load_model_config(n, vocab_size=1000, grid_position=False).d_model
             * load_model_config(n, vocab_size=1000, grid_position=False).n_layers for n in ("tiny", "small", "base")]
    assert sizes == sorted(sizes)


def test_config_for_a_vocabulary_takes_its_size_and_pad_id():
    vocab = Vocabulary(text_size=300, image_codebook=64, audio_codebook=32)
    cfg = config_for_vocabulary("tiny", vocab, image_tokens=4)
    assert cfg.vocab_size == vocab.size and cfg.pad_id == vocab.special("<pad>")
    ids = torch.tensor([[vocab.special("<bos>"), vocab.image_range[5], vocab.audio_range[-1],
                         vocab.special("<embed>")]])
    assert OmniModel(cfg).embed(ids).shape == (1, 64)


def test_small_config_is_the_demo_trunk_of_under_a_million_parameters():
    # the demo's vocabulary: 2048 BPE tokens, 512 image and 512 audio codes, the markers and time buckets
    vocab = Vocabulary(text_size=2048, image_codebook=512, audio_codebook=512)
    model = OmniModel(config_for_vocabulary("small", vocab, image_tokens=16))
    assert (model.cfg.d_model, model.cfg.n_layers) == (96, 3)
    assert 3e5 < model.num_params() < 1e6


def test_config_errors_name_the_key_and_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="n_heads"):
        ModelConfig(vocab_size=10, d_model=64, n_heads=3)
    with pytest.raises(ConfigError, match="embed_dims"):
        ModelConfig(vocab_size=10, embed_dims=(64, 32))
    with pytest.raises(ConfigError, match="pooling"):
        ModelConfig(vocab_size=10, pooling="max")
    with pytest.raises(ConfigError, match="vocab_size is not set"):
        OmniModel(load_model_config("tiny", grid_position=False))
    bad = tmp_path / "m.yaml"
    bad.write_text("d_model: 64\nn_layer: 2\n")
    with pytest.raises(ConfigError, match="unknown keys \\['n_layer'\\]"):
        load_model_config(bad, vocab_size=10)
    with pytest.raises(ConfigError, match="no such file"):
        load_model_config("huge", vocab_size=10)


def test_causal_embedding_ignores_later_tokens_and_bidirectional_does_not(make_model):
    ids = torch.randint(4, VOCAB, (1, 10))
    changed = ids.clone()
    changed[0, 7:] = (changed[0, 7:] - 4 + 5) % (VOCAB - 4) + 4  # alter tokens after position 6
    for attention, should_match in (("causal", True), ("bidirectional", False)):
        model = make_model(embed_attention=attention).eval()
        mask = torch.ones_like(ids, dtype=torch.bool)
        h1 = model.hidden(ids, mask, causal=attention == "causal")
        h2 = model.hidden(changed, mask, causal=attention == "causal")
        assert torch.allclose(h1[0, :7], h2[0, :7], atol=1e-6) is should_match
        # embed() runs the trunk with the configured mask
        for causal in (True, False):
            h = model.hidden(ids, mask, causal=causal)
            expected = torch.nn.functional.normalize(model.embed_head(model.pool(h, mask)), dim=-1)
            assert torch.allclose(model.embed(ids), expected, atol=1e-6) is (causal == (attention == "causal"))


def test_lm_logits_at_position_t_ignore_later_tokens(make_model):
    model = make_model().eval()
    ids = torch.randint(4, VOCAB, (2, 12))
    logits = model.forward_lm(ids)
    assert logits.shape == (2, 12, VOCAB)
    assert torch.allclose(model.forward_lm(ids[:, :5]), logits[:, :5], atol=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_changes_neither_embedding_nor_logits(make_model, side, attention, pooling):
    model = make_model(embed_attention=attention, pooling=pooling).eval()
    short = torch.randint(4, VOCAB, (1, 6))
    other = torch.randint(4, VOCAB, (1, 11))
    pad = torch.full((1, 5), PAD)
    padded = torch.cat([pad, short], 1) if side == "left" else torch.cat([short, pad], 1)
    batch = torch.cat([padded, other])  # (2, 11)
    mask = batch != PAD
    alone_emb = model.embed(short)
    batch_emb = model.embed(batch, mask)
    assert torch.allclose(alone_emb[0], batch_emb[0], atol=1e-5)
    assert torch.allclose(model.embed(other)[0], batch_emb[1], atol=1e-5)
    real = mask[0]
    assert torch.allclose(model.forward_lm(short)[0], model.forward_lm(batch, mask)[0, real], atol=1e-5)


def test_matryoshka_prefixes_are_unit_vectors_and_prefixes_of_the_full_embedding(make_model):
    model = make_model().eval()
    ids = torch.randint(4, VOCAB, (3, 9))
    full = model.embed(ids)
    assert full.shape == (3, 64)
    for dim in model.cfg.embed_dims:
        e = model.embed(ids, dim=dim)
        assert e.shape == (3, dim)
        assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
        # same direction as the full vector's first `dim` coordinates
        assert torch.allclose(e, torch.nn.functional.normalize(full[:, :dim], dim=-1), atol=1e-5)
    with pytest.raises(ValueError, match="embedding dim 65"):
        model.embed(ids, dim=65)


def test_sequence_longer_than_max_len_is_refused_with_its_length(make_model):
    model = make_model(max_len=16)
    with pytest.raises(ValueError, match="17 tokens exceeds max_len=16"):
        model.forward_lm(torch.randint(4, VOCAB, (1, 17)))


def test_generation_with_allowed_ids_emits_only_allowed_ids(make_model):
    model = make_model()
    prompt = torch.randint(4, VOCAB, (3, 7))
    free = set(model.generate(prompt, 8).flatten().tolist())
    allowed = [i for i in range(4, VOCAB) if i not in free][:5]  # ids an unrestricted decode never chose
    out = model.generate(prompt, 8, allowed_ids=allowed)
    assert out.shape == (3, 8)
    assert set(out.flatten().tolist()) <= set(allowed)


def test_generation_with_cache_matches_greedy_decoding_by_full_recompute(make_model):
    model = make_model().eval()
    prompt = torch.cat([torch.full((1, 3), PAD), torch.randint(4, VOCAB, (1, 5))], 1)  # left-padded
    prompt = torch.cat([prompt, torch.randint(4, VOCAB, (1, 8))])
    cached = model.generate(prompt, 6, pad_mask=prompt != PAD)
    for row in range(2):
        seq = prompt[row][prompt[row] != PAD][None]
        for _ in range(6):
            nxt = model.forward_lm(seq)[0, -1].argmax()
            seq = torch.cat([seq, nxt.view(1, 1)], 1)
        assert cached[row].tolist() == seq[0, -6:].tolist()


def test_generation_stops_a_row_at_eos_and_pads_after_it(make_model):
    model = make_model()
    prompt = torch.randint(4, VOCAB, (4, 5))
    free = model.generate(prompt, 10)
    eos = int(free[0, 2])  # a token row 0 emits third: call it eos
    out = model.generate(prompt, 10, eos_id=eos)
    for row in range(4):
        hits = (free[row] == eos).nonzero()
        if len(hits):
            stop = int(hits[0])
            assert out[row, :stop + 1].tolist() == free[row, :stop + 1].tolist()
            assert (out[row, stop + 1:] == PAD).all()
        else:
            assert out[row].tolist() == free[row, :out.shape[1]].tolist()
    single = model.generate(prompt[0], 10, eos_id=eos)  # 1-D in, 1-D out, ends at the first eos
    assert single.tolist() == free[0, :int((free[0] == eos).nonzero()[0]) + 1].tolist()


def test_grid_position_gives_each_image_code_its_cell_and_leaves_other_tokens_alone():
    vocab = Vocabulary(text_size=300, image_codebook=64, audio_codebook=32)
    cfg = config_for_vocabulary("tiny", vocab, image_tokens=4, grid_position=True)
    model = OmniModel(cfg)
    img = list(vocab.image_range[10:14])
    text, audio = vocab.text_range[7], vocab.audio_range[3]
    # text, an image (4 codes), audio, then two video frames of 4 codes each separated by a marker
    ids = torch.tensor([[vocab.special("<bos>"), text, vocab.special("<image>"), *img, vocab.special("</image>"),
                         audio, vocab.special("<frame>"), *img, vocab.special("<frame>"), *img]])
    extra = model.grid_embedding(ids)[0]
    codes = [k for k, t in enumerate(ids[0].tolist()) if t in img]
    for n, k in enumerate(codes):
        assert torch.equal(extra[k], model.grid_emb.weight[n % 4])  # cell = order within its image
    others = [k for k in range(ids.shape[1]) if k not in codes]
    assert torch.count_nonzero(extra[others]) == 0
    with pytest.raises(ConfigError, match="grid_position"):
        load_model_config("tiny", vocab_size=100, grid_position=True)  # no image range: refused by name
