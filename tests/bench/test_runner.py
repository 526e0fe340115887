"""python -m bench: the suite table, its inputs, and one benchmark run end to end through the runner."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # bench/ is not installed

from bench.__main__ import SUITE, command_for, main  # noqa: E402
from bench.common import results_header  # noqa: E402


def test_list_prints_every_benchmark_with_the_command_it_runs():
    out = subprocess.run([sys.executable, "-m", "bench", "--list"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    for name, bench in SUITE.items():
        assert name in out and f"python -m {bench.module}" in out


def test_placeholders_are_filled_and_a_missing_input_is_named():
    values = {"run": "/r", "bundle": None, "out": "/o"}
    assert command_for(SUITE["recall_matrix"], values, quick=False) == ["/r", "--out", "/o"]
    assert "--bundle" not in command_for(SUITE["serve_latency"], values, quick=True)  # optional, not given
    assert command_for(SUITE["serve_latency"], {**values, "bundle": "/b"}, quick=True)[-2:] == ["--bundle", "/b"]
    with pytest.raises(KeyError, match="--run"):
        command_for(SUITE["recall_matrix"], {"run": None, "bundle": None, "out": "/o"}, quick=True)


def test_naming_a_benchmark_without_its_input_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["recall_matrix", "--out", "/tmp/unused"])
    assert exc.value.code == 2 and "--run" in capsys.readouterr().err


def test_unknown_benchmark_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["no_such_bench"])
    assert "no_such_bench" in capsys.readouterr().err


def test_results_header_states_command_machine_and_date():
    text = "\n".join(results_header("T", "python -m bench.x --n 3"))
    assert "`python -m bench.x --n 3`" in text and " UTC" in text and "cores" in text and "torch " in text


def test_runner_runs_recall_matrix_quick_as_a_process_into_the_given_folder(tiny_run, tmp_path):
    assert main(["recall_matrix", "--run", str(tiny_run), "--quick", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "recall_matrix.md").read_text()
    assert f"- command: `python -m bench.recall_matrix {tiny_run} --max-items 24 --out {tmp_path}`" in md
    assert (tmp_path / "recall_matrix.png").stat().st_size > 1000
