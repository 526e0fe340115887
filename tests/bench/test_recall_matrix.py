"""bench/recall_matrix.py: `omniembed eval` of a run with the benchmark's header, on the tiny run end to end."""

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: bench/ is not installed

from bench.recall_matrix import compute, write_results  # noqa: E402


def test_recall_matrix_of_tiny_run_matches_the_training_evaluation_and_writes_md_json_and_png(tiny_run, tmp_path):
    ours = compute(tiny_run)
    written = write_results(ours, tmp_path, f"python -m bench.recall_matrix {tiny_run}")
    md = written["md"].read_text()
    for needle in ("- command: `python -m bench.recall_matrix", "- machine: ", "- date: ", "## dim 16",
                   "## dim 64", "exactly the query's attribute set", "| **interleaved** |", "## chance level"):
        assert needle in md
    assert json.loads(written["json"].read_text())["hit"] == "attributes"
    with Image.open(written["png"]) as im:
        assert im.width > 2 * im.height  # one panel per dim, side by side

    # the same numbers as training computed from the tokenized corpus at the end of training:
    # files -> TorchEmbedder -> omniembed.eval agrees with corpus ids -> model -> omniembed.eval
    last = [json.loads(line) for line in (tiny_run / "eval.jsonl").read_text().splitlines()][-1]
    for d, table in last["recall"]["dims"].items():
        for pair, rec in table.items():
            assert ours["dims"][int(d)][pair] == pytest.approx({int(k): v for k, v in rec.items()}), (d, pair)
            assert ours["map"][int(d)][pair] == pytest.approx(last["recall"]["map"][d][pair]), (d, pair)
