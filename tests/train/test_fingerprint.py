"""The same seed gives the same training: tiny_run's per-step losses and held-out recall against a committed
fingerprint (tests/train/tiny_fingerprint.json), so a refactor that changes what training computes fails here."""

import json
from pathlib import Path

import pytest
import torch

FINGERPRINT = Path(__file__).with_name("tiny_fingerprint.json")


def _read(run_dir: Path) -> tuple[list[float], dict]:
    losses = [json.loads(line)["loss"] for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    last = json.loads((run_dir / "eval.jsonl").read_text().splitlines()[-1])
    recall = {str(d): {pair: at["1"] for pair, at in table.items()} for d, table in last["recall"]["dims"].items()}
    return losses, recall


def test_tiny_training_reproduces_the_committed_losses_and_recall(tiny_run):
    want = json.loads(FINGERPRINT.read_text())
    losses, recall = _read(tiny_run)
    assert recall == want["recall_at_1"]
    same_platform = (torch.__version__, torch.backends.cpu.get_cpu_capability()) == (want["torch"],
                                                                                       want["cpu_capability"])
    if same_platform:  # the torch build and CPU kernels it was recorded with: bit for bit
        assert losses == want["losses"]
    else:  # other kernels round differently; the run must still be the same run
        assert losses == pytest.approx(want["losses"], rel=1e-4)
