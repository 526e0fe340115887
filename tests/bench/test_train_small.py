"""bench/train_small.py: the report of a finished run, with its per-attribute split of wrong top-1s."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: bench/ is not installed

from bench.train_small import TARGET_PAIRS, attribute_misses, report  # noqa: E402


def test_attribute_misses_agree_with_the_runs_recall_and_name_every_attribute(tiny_run, synth_world):
    names, misses = attribute_misses(tiny_run)
    assert set(names) == set(synth_world.items[0].attributes)
    last = [json.loads(line) for line in (tiny_run / "eval.jsonl").read_text().splitlines()][-1]
    table = last["recall"]["dims"][max(last["recall"]["dims"], key=int)]
    for pair in TARGET_PAIRS:
        wrong = 1.0 - table[pair]["1"]
        shares = misses[pair].values()
        # a query misses when its top-1 differs in at least one attribute: the commonest single attribute
        # cannot exceed the misses, and together they cover them
        assert max(shares) <= wrong + 1e-9, (pair, misses[pair], wrong)
        assert sum(shares) >= wrong - 1e-9, (pair, misses[pair], wrong)


def test_report_writes_targets_and_the_attribute_table(tiny_run, tmp_path):
    out = tmp_path / "train_small.md"
    text = report(tiny_run, "python -m bench.train_small --report RUN", None, out)
    assert out.read_text() == text
    for needle in ("## Targets", "| image->audio |", "Which attribute a wrong top-1 gets wrong",
                   "| pair | shape | colour | size | position | motion |", "- command: `python -m bench.train_small"):
        assert needle in text
