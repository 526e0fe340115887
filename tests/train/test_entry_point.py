"""`python -m omniembed.train` end to end on the synthetic world: the run directory, falling losses, exact
resume, and clear errors for bad configs."""

import json

import pytest
import torch
import yaml

from omniembed.train.checkpoint import read_checkpoint
from omniembed.errors import ConfigError
from omniembed.train.cli import main


def steps_of(run_dir):
    return [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]


def test_tiny_run_writes_the_agreed_run_directory(tiny_run):
    for name in ("train.yaml", "tokenizers/tokenizers.yaml", "tokenizers/tokenizer.json", "checkpoint.pt",
                 "eval.jsonl", "train.log", "steps.jsonl", "vocab.json"):
        assert (tiny_run / name).exists(), name
    assert any((tiny_run / "tb").iterdir())
    config = yaml.safe_load((tiny_run / "train.yaml").read_text())
    assert config["model"]["vocab_size"] > 0 and config["tokenizers"] == "tokenizers"
    assert read_checkpoint(tiny_run / "checkpoint.pt")["step"] == config["loop"]["steps"]
    seconds = [s["seconds"] for s in steps_of(tiny_run)]  # into the loop: what bench.train_parallel times
    assert seconds == sorted(seconds) and seconds[0] > 0


def test_tiny_run_evaluates_recall_for_every_ordered_modality_pair_and_dim(tiny_run):
    record = json.loads((tiny_run / "eval.jsonl").read_text().splitlines()[-1])
    assert "exactly the query's attribute set" in record["hit"]
    dims = record["recall"]["dims"]  # JSON keys: dims and k are strings
    config = yaml.safe_load((tiny_run / "train.yaml").read_text())
    assert sorted(int(d) for d in dims) == sorted(config["model"]["embed_dims"])
    modalities = [m for m in ("text", "image", "audio", "video") if record["recall"]["counts"].get(m)]
    assert len(modalities) == 4 and record["recall"]["skipped"] == []
    for d, table in dims.items():
        assert sorted(table) == sorted(f"{q}->{g}" for q in modalities for g in modalities if q != g)
        for pair, rk in table.items():
            assert 0.0 <= rk["1"] <= rk["5"] <= rk["10"] <= 1.0
            assert 0.0 < record["recall"]["map"][d][pair] <= 1.0
    assert "colour" in record["captions"] and record["captions"]["colour_chance"] == pytest.approx(1 / 6)


def test_tiny_training_lowers_the_loss(tiny_args, tmp_path):
    out = tmp_path / "run"
    assert main(tiny_args(out, "loop.steps=24", "loop.pair_weights={text-image: 1.0}", "loop.eval_captions=0")) == 0
    steps = steps_of(out)
    assert len(steps) == 24
    first = sum(s["lm/ce"] for s in steps[:4]) / 4
    last = sum(s["lm/ce"] for s in steps[-4:]) / 4
    assert last < first - 0.2, (first, last)
    con_first = sum(s["con/loss"] for s in steps[:4]) / 4
    con_last = sum(s["con/loss"] for s in steps[-4:]) / 4
    assert con_last < con_first, (con_first, con_last)


def test_resume_through_the_entry_point_matches_an_uninterrupted_run(tiny_args, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    # with the code embeddings started from the codebooks: a resumed run loads its trained table over them
    extra = ("loop.steps=8", "loop.eval_captions=0", "loop.ckpt_every=0", "train.code_init=codebook")
    assert main(tiny_args(straight, *extra)) == 0
    assert "started from the tokenizers' codebooks" in (straight / "train.log").read_text()
    assert main(tiny_args(split, *extra, "--stop-at", "4")) == 0
    assert read_checkpoint(split / "checkpoint.pt")["step"] == 4
    assert main(["--out", str(split), "--resume"]) == 0  # config, tokenizers and corpus come from the run dir
    a = read_checkpoint(straight / "checkpoint.pt")
    b = read_checkpoint(split / "checkpoint.pt")
    assert a["step"] == b["step"] == 8
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert a["data_state"] == b["data_state"]


def test_unknown_config_keys_fail_with_a_message_naming_them(tmp_path, capsys):
    rc = main(["--config", "tiny", "--out", str(tmp_path / "bad"), "loop.stepz=3"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "stepz" in err and "steps" in err


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["--config", "tiny", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "checkpoint.pt does not exist" in capsys.readouterr().err


def test_model_kind_late_trains_through_the_entry_point_and_loads_back_as_late_fusion(tiny_args, tmp_path):
    from omniembed.export import export_run
    from omniembed.model.late_fusion import LateFusionModel
    from omniembed.train.rundir import load_run

    out = tmp_path / "late"
    assert main(tiny_args(out, "model.kind=late", "model.code_features=none", "loop.steps=2")) == 0
    assert yaml.safe_load((out / "train.yaml").read_text())["model"]["kind"] == "late"
    run = load_run(out)
    assert isinstance(run.model, LateFusionModel)
    with pytest.raises(ConfigError, match="early-fusion"):
        export_run(out, tmp_path / "bundle")


def test_a_runs_train_yaml_loads_back_as_a_config_and_vocabulary_fields_must_agree(tiny_run, tiny_args, tmp_path):
    from omniembed.train.config import load_config

    again = load_config(tiny_run / "train.yaml")
    assert again.model["vocab_size"] > 0 and again.loop.steps == load_config("tiny").loop.steps
    rc = main([*tiny_args(tmp_path / "wrong"), "model.vocab_size=10", "loop.steps=2"])
    assert rc == 2
    assert "model.vocab_size=10" in (tmp_path / "wrong" / "train.log").read_text()
