"""Fixtures of the image/audio tokenizer tests: one tiny tokenizer training run, shared by the session."""

import json
from pathlib import Path

import pytest

TINY_CONFIG = Path(__file__).resolve().parent / "tokenizers.yaml"  # the tokenizer tests' own settings


@pytest.fixture(scope="session")
def tiny_tokenizer_run(synth_world, tmp_path_factory):
    """Trains all three tokenizers on the session's synthetic world through the CLI entry point
    (`omniembed tokenizers`), with tests/tokenization/tokenizers.yaml. Returns (exit code, out dir, report dict)."""
    from omniembed.tokenization.train import main

    out = tmp_path_factory.mktemp("tiny_tokenizers")
    code = main(["--manifest", str(synth_world.manifest_path), "--out", str(out), "--config", str(TINY_CONFIG)])
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else None
    return code, out, report
