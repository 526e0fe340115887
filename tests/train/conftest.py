"""Fixtures for the training entry point tests: the tiny config and runs that reuse tiny_run's tokenizers
and tokenized corpus, so each extra run costs only its training steps."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = "tiny"


@pytest.fixture
def tiny_args(tiny_run, synth_world):
    """argv for omniembed.train.main: the tiny config on synth_world, reusing tiny_run's tokenizers and corpus."""
    def args(out, *extra):
        return ["--config", str(TINY), "--out", str(out), f"data.manifest={synth_world.manifest_path}",
                f"tokenizers={tiny_run / 'tokenizers'}", f"data.corpus_cache={tiny_run}", *extra]
    return args


@pytest.fixture(autouse=True)
def _one_thread_and_seed(one_torch_thread):
    # 2 cores shared with other test runs: one thread avoids OpenMP contention
    yield
