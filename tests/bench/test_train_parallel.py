"""bench.train_parallel: the real entry point timed as one process and as 2 data-parallel processes."""

import pytest

from bench.train_parallel import main, parse_arms


def test_arms_are_processes_by_threads_and_bad_ones_are_named():
    assert parse_arms("1x2,2x1") == [(1, 2), (2, 1)]
    with pytest.raises(SystemExit, match="'2-1'"):
        parse_arms("1x1,2-1")
    with pytest.raises(SystemExit, match="'0x1'"):
        parse_arms("0x1")


def test_a_folder_that_is_not_a_finished_run_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="train.yaml"):
        main([str(tmp_path), "--out", str(tmp_path / "r.md")])


@pytest.mark.slow
def test_one_process_against_two_writes_the_table_and_the_plot(tiny_run, tmp_path):
    out = tmp_path / "train_parallel.md"
    assert main([str(tiny_run), "--steps", "14", "--arms", "1x1,2x1", "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 1 x 1") or line.startswith("| 2 x 1")]
    assert len(rows) == 2 and rows[0].endswith("| 1.00x |")
    assert float(rows[1].split("|")[2]) > 0  # seconds per step, read from the loop's clock
    assert out.with_suffix(".png").stat().st_size > 1000
