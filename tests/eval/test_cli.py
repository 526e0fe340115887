"""`omniembed eval`: a bundle through ONNX Runtime and a run through torch, on the synthetic held-out set,
against training's own evaluation; md, JSON and PNG written; bad arguments answered by name."""

import json

import numpy as np
from PIL import Image

from omniembed.cli import main as cli_main


def _training_eval(run_dir) -> dict:
    return json.loads((run_dir / "eval.jsonl").read_text().splitlines()[-1])["recall"]


def test_eval_of_a_run_reproduces_training_evaluation_exactly(tiny_run, tmp_path, capsys):
    assert cli_main(["eval", str(tiny_run), "--out", str(tmp_path)]) == 0
    ours = json.loads((tmp_path / "recall_matrix.json").read_text())
    theirs = _training_eval(tiny_run)
    for d, table in theirs["dims"].items():
        for pair, rec in table.items():
            assert ours["dims"][d][pair] == rec, (d, pair)
            assert ours["map"][d][pair] == theirs["map"][d][pair], (d, pair)
    assert "R@1 dim 64" in capsys.readouterr().out


def test_eval_of_a_bundle_agrees_with_training_and_writes_every_output(tiny_bundle, tiny_run, synth_world, tmp_path):
    out = tmp_path / "eval"
    assert cli_main(["eval", str(tiny_bundle.path), "--manifest", str(synth_world.heldout_path),
                     "--out", str(out)]) == 0
    result = json.loads((out / "recall_matrix.json").read_text())
    assert result["hit"] == "attributes" and set(result["counts"]) == {"text", "image", "audio", "video",
                                                                        "interleaved"}
    md = (out / "recall_matrix.md").read_text()
    assert "## dim 16" in md and "(mAP)" in md and "bundle" in md
    with Image.open(out / "recall_matrix.png") as im:
        assert im.width > im.height
    # ONNX Runtime and torch agree to cosine 0.999 (a VQ code may flip at a float near-tie): the same matrix
    # within a small share of the queries
    theirs = _training_eval(tiny_run)
    full = str(max(int(d) for d in theirs["dims"]))
    diffs = [abs(result["dims"][full][p]["1"] - r["1"]) for p, r in theirs["dims"][full].items()]
    assert np.mean(diffs) <= 0.05, diffs


def test_eval_refuses_a_folder_that_is_neither_and_a_bundle_without_a_manifest(tiny_bundle, tmp_path, capsys):
    assert cli_main(["eval", str(tmp_path)]) == 2
    assert "neither a bundle" in capsys.readouterr().err
    assert cli_main(["eval", str(tiny_bundle.path), "--out", str(tmp_path / "x")]) == 2
    assert "--manifest" in capsys.readouterr().err
