"""The training entry point under torchrun: 2 CPU processes (gloo) through `python -m omniembed.train`
reach the parameters of one process on the same global batch."""

import os
import sys

import pytest
import torch

from omniembed.train.checkpoint import read_checkpoint
from omniembed.train.cli import main

COMMAND = [sys.executable, "-m", "omniembed.train"]  # loop.processes launches torchrun: run in the namespace


@pytest.mark.slow
def test_torchrun_two_cpu_processes_match_one_process_through_the_entry_point(tiny_args, tmp_path,
                                                                               in_loopback_namespace):
    # contrastive steps only: with an all-gather the pair loss of 2 ranks equals one process's exactly,
    # while a per-rank mean of next-token losses would weight tokens differently
    extra = ("loop.steps=4", "loop.lm_every=0", "loop.eval_captions=0", "loop.pair_batch=8")
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert main(tiny_args(single, *extra)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "omniembed.train", *tiny_args(ddp, *extra)]
    (code, output), = in_loopback_namespace([cmd], env, tmp_path / "logs")
    assert code == 0, output[-6000:]
    _assert_same_parameters(single, ddp)


@pytest.mark.slow
def test_loop_processes_prepares_the_data_once_then_trains_as_that_many_ranks(tiny_args, tmp_path,
                                                                             in_loopback_namespace):
    # `python -m omniembed.train ... loop.processes=2` (what configs/small.yaml does on CPU): the command
    # itself prepares the data, then runs as 2 DDP ranks, to the parameters of one process
    extra = ("loop.steps=4", "loop.lm_every=0", "loop.eval_captions=0", "loop.pair_batch=8")
    single, ranks = tmp_path / "single", tmp_path / "ranks"
    assert main(tiny_args(single, *extra)) == 0
    (code, output), = in_loopback_namespace([COMMAND + tiny_args(ranks, *extra, "loop.processes=2", "loop.threads=1")],
                                            dict(os.environ), tmp_path / "logs")
    assert code == 0, output[-6000:]
    _assert_same_parameters(single, ranks)
    log = (ranks / "train.log").read_text()
    assert "2 data-parallel CPU processes" in log
    assert log.count("tokenizers copied") == 1  # stage 1 ran once, in the launching process


@pytest.mark.slow
def test_loop_processes_reports_a_rank_failure_with_a_nonzero_exit(tiny_args, tmp_path, in_loopback_namespace):
    out = tmp_path / "odd"
    (code, _), = in_loopback_namespace([COMMAND + tiny_args(out, "loop.steps=2", "loop.pair_batch=7",
                                                            "loop.processes=2", "loop.threads=1")],
                                       dict(os.environ), tmp_path / "logs")
    assert code != 0
    log = (out / "train.log").read_text()
    assert "loop.pair_batch=7 does not split evenly over 2 processes" in log
    assert "training ranks failed" in log


def _assert_same_parameters(single, ddp):
    a, b = read_checkpoint(single / "checkpoint.pt"), read_checkpoint(ddp / "checkpoint.pt")
    assert a["step"] == b["step"] == 4
    # atol 1e-4 (0.03 of one step's lr): the 2 ranks sum the same gradients in another order, and Adam turns
    # a float-noise difference in a near-zero gradient component into up to a whole lr-sized step; measured
    # at most 6e-5 with tiny.yaml's all-views batches and hard negatives; ranks training on the wrong rows
    # would differ by whole updates (lr 3e-3)
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-4, atol=1e-4, msg=name)
