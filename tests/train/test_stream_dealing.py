"""The stream's dealing of records to (rank, worker) streams and its masked all-views loss, in-process."""

import json

import pytest
import torch

from omniembed.data.sources import parse_raw, plan_units
from omniembed.train.losses import matryoshka_contrastive_loss
from omniembed.train.streaming import RecordStream, StreamSettings
from omniembed.train.trainer import MaskedViewsBatch, Trainer, TrainConfig


def manifest(tmp_path, n):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "kind": "item", "views": {"text": f"t {i}"}}) + "\n"
                            for i in range(n)))
    return path


@pytest.mark.parametrize("n, lines_per_unit", [(100, 7), (5, 256)])  # many units; fewer units than streams
def test_every_record_goes_to_exactly_one_stream_each_epoch_in_a_seeded_shuffle(tmp_path, n, lines_per_unit):
    units = plan_units(manifest(tmp_path, n), lines_per_unit=lines_per_unit)
    streams = 6  # 3 ranks x 2 workers
    settings = StreamSettings(units, "", None, seed=4, rank=0, world=3, workers=2, shuffle_buffer=8)
    stream = RecordStream(settings, [(0, 0)] * 2)
    for epoch in (0, 1):
        got = [parse_raw(raw).id for sid in range(streams) for raw in stream._shuffled(epoch, sid, streams)]
        assert sorted(got) == sorted(f"r{i}" for i in range(n))
    order = lambda epoch: [parse_raw(r).id for r in stream._shuffled(epoch, 0, streams)]  # noqa: E731
    assert order(0) == order(0) and (n < 20 or order(0) != order(1))  # seeded, reshuffled per epoch


def test_the_masked_loss_is_the_plain_loss_over_the_rows_that_have_both_views(make_model):
    torch.manual_seed(0)
    model = make_model()
    trainer = Trainer(model, TrainConfig(total_steps=2, parallel="none"))
    B, V = 6, 2
    present = torch.tensor([[1, 1], [1, 0], [1, 1], [0, 1], [1, 1], [0, 0]], dtype=torch.bool)
    emb = torch.randn(V * B, max(model.cfg.embed_dims))
    batch = MaskedViewsBatch([(torch.zeros(B, 3, dtype=torch.long), torch.ones(B, 3, dtype=torch.bool))] * V,
                             present, [(0, 1, 1.0)], torch.arange(B))
    agreed = trainer._agree(batch, None)
    assert agreed["active"] == [(0, 1, 1.0)] and agreed["lm"] is None
    temperature = torch.tensor(0.07)
    loss, _ = trainer._masked_loss(emb, batch, agreed, temperature)
    rows = present[:, 0] & present[:, 1]
    a, b = emb[:B][rows], emb[B:][rows]
    plain, _ = matryoshka_contrastive_loss(a, b, trainer.dims, temperature, gather=False, labels=torch.arange(B)[rows])
    torch.testing.assert_close(loss, plain)
    lonely = MaskedViewsBatch(batch.views, torch.tensor([[1, 0]] * B, dtype=torch.bool), [(0, 1, 1.0)], torch.arange(B))
    assert trainer._agree(lonely, None) is None  # no pair to form and no LM rows: nothing to learn from


def test_a_reader_without_worker_processes_reads_one_epoch_of_the_manifest_in_process(tiny_run, synth_world):
    from omniembed.train.streaming import StreamReader, stream_units

    from omniembed.train.corpus import Corpus

    units = stream_units(str(synth_world.manifest_path), 1)
    windows = json.loads((tiny_run / "windows.json").read_text())
    reader = StreamReader(StreamSettings(units, str(tiny_run / "tokenizers"), windows, seed=0, rank=0, world=1,
                                         workers=0, shuffle_buffer=10))
    expected = sorted(json.loads(line)["id"] for line in open(synth_world.manifest_path))
    got = [reader.next() for _ in range(len(expected))]
    assert sorted(e["id"] for e in got) == expected and {e["epoch"] for e in got} == {0}
    items = [e for e in got if e["kind"] == "item"]
    # the same ids as the in-memory corpus of the same manifest and tokenizers (images encoded in batches here)
    cached = {it.id: it for it in Corpus.load(tiny_run).items}
    for e in items:
        ours, theirs = e["item"], cached[e["id"]]
        assert sorted(ours.blocks) == sorted(set(theirs.blocks) - {"interleaved"})
        for view in ours.blocks:
            assert ours.blocks[view].tolist() == theirs.blocks[view].tolist(), (e["id"], view)
        assert [t.tolist() for t in ours.texts] == [t.tolist() for t in theirs.texts]
    assert reader.state_dict() == {"positions": [[0, len(expected)]], "consumed": len(expected)}
    assert reader.next()["epoch"] == 1


def test_under_a_label_rule_streamed_items_of_one_label_share_their_training_label(tiny_run, synth_world):
    from omniembed.train.streaming import StreamReader, stream_units

    units = stream_units(str(synth_world.manifest_path), 1)
    windows = json.loads((tiny_run / "windows.json").read_text())
    reader = StreamReader(StreamSettings(units, str(tiny_run / "tokenizers"), windows, seed=0, rank=0, world=1,
                                         workers=0, shuffle_buffer=10, label="shape"))
    items = [e for e in (reader.next() for _ in range(40)) if e["kind"] == "item"]
    shapes = [e["item"].attributes["shape"] for e in items]
    assert len(set(shapes)) > 1
    for e, s in zip(items, shapes):
        for f, t in zip(items, shapes):
            assert (e["label"] == f["label"]) == (s == t)
