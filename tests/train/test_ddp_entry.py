"""The training entry point under torchrun: 2 CPU processes (gloo) through `python -m omniembed.train`
reach the parameters of one process on the same global batch."""

import os
import subprocess
import sys

import pytest
import torch

from omniembed.checkpoint import read_checkpoint
from omniembed.train import main


@pytest.mark.slow
def test_torchrun_two_cpu_processes_match_one_process_through_the_entry_point(tiny_args, tmp_path):
    # contrastive steps only: with an all-gather the pair loss of 2 ranks equals one process's exactly,
    # while a per-rank mean of next-token losses would weight tokens differently
    extra = ("loop.steps=4", "loop.lm_every=0", "loop.eval_captions=0", "loop.pair_batch=8")
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert main(tiny_args(single, *extra)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "omniembed.train", *tiny_args(ddp, *extra)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a, b = read_checkpoint(single / "checkpoint.pt"), read_checkpoint(ddp / "checkpoint.pt")
    assert a["step"] == b["step"] == 4
    # atol 1e-4 (0.03 of one step's lr): the 2 ranks sum the same gradients in another order, and Adam turns
    # a float-noise difference in a near-zero gradient component into up to a whole lr-sized step; measured
    # at most 6e-5 with tiny.yaml's all-views batches and hard negatives; ranks training on the wrong rows
    # would differ by whole updates (lr 3e-3)
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-4, atol=1e-4, msg=name)
