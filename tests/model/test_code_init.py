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
        model = build_model(kind, config_for_vocabulary("tiny", vocab, image_tokens=4), vocab)
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
