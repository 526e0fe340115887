"""`model.dropout: auto` (the small config's default): resolved by whether the training items have captions,
recorded as a number in the run's train.yaml, and a clear error for any other word."""

import pytest
import yaml

from bench.worlds import subset
from omniembed.errors import ConfigError
from omniembed.model.config import AUTO_DROPOUT, load_model_config
from omniembed.train.cli import main


@pytest.mark.parametrize("views,captioned", [(["image", "audio"], False), (["text", "image"], True)])
def test_auto_dropout_follows_the_training_items_views(views, captioned, tiny_run, synth_world, tmp_path):
    manifest, heldout = subset(synth_world.root, tmp_path / "data", views)
    out = tmp_path / "run"
    rc = main(["--config", "tiny", "--out", str(out), f"data.manifest={manifest}", f"data.heldout={heldout}",
               f"tokenizers={tiny_run / 'tokenizers'}", "model.dropout=auto", "loop.steps=2", "loop.eval_every=0",
               "loop.eval_captions=0"])
    assert rc == 0
    recorded = yaml.safe_load((out / "train.yaml").read_text())["model"]["dropout"]
    assert recorded == AUTO_DROPOUT[captioned] and AUTO_DROPOUT[False] > AUTO_DROPOUT[True]
    assert f"model.dropout auto: {recorded}" in (out / "train.log").read_text()


def test_the_small_config_resolves_auto_outside_training_and_refuses_other_words():
    assert load_model_config("small", vocab_size=1000, grid_position=False).dropout == AUTO_DROPOUT[True]
    with pytest.raises(ConfigError, match=r"dropout.*\"auto\".*'sometimes'"):
        load_model_config("small", vocab_size=1000, grid_position=False, dropout="sometimes")


def test_a_number_is_kept_and_a_stream_without_heldout_items_counts_as_captioned():
    from omniembed.train.loop import with_auto_dropout

    assert with_auto_dropout({"dropout": 0.2}, None, streamed=True) == {"dropout": 0.2}
    assert with_auto_dropout({"dropout": "auto", "d_model": 8}, None, streamed=True) == {
        "dropout": AUTO_DROPOUT[True], "d_model": 8}
