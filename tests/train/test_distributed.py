"""Distributed training on CPU: 2 processes under torchrun (gloo) must reach the parameters one process
reaches on the same global batches, with DDP and with FSDP2. The worker is tests/model/ddp_worker.py."""

import os
import pathlib
import runpy
import subprocess
import sys

import pytest
import torch

from omniembed.train.checkpoint import read_checkpoint

WORKER = pathlib.Path(__file__).with_name("ddp_worker.py")


def run_worker(out, nproc, parallel="auto", steps=4, resume_at=-1, mixed=False, namespace=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd = launcher + [str(WORKER), "--out", str(out), "--parallel", parallel, "--steps", str(steps),
                      "--resume-at", str(resume_at)] + (["--mixed"] if mixed else [])
    if namespace is not None and nproc > 1:  # torchrun's rendezvous store: reachable on loopback only
        (code, output), = namespace([cmd], env, pathlib.Path(str(out) + ".logs"), timeout=300)
    else:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        code, output = proc.returncode, proc.stdout + proc.stderr
    assert code == 0, output[-6000:]
    losses = [line for line in output.splitlines() if line.startswith("step ")]
    return read_checkpoint(out), losses


def run_single(out, mixed):
    # the reference run in this process (no torchrun: no process group, plain single-process training)
    threads = torch.get_num_threads()
    try:
        worker = runpy.run_path(str(WORKER))
        lines = []
        worker["main"](["--out", str(out), "--steps", "4"] + (["--mixed"] if mixed else []), log=lines.append)
    finally:
        torch.set_num_threads(threads)
    return read_checkpoint(out), lines


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    cache = {}

    def get(mixed):
        if mixed not in cache:
            cache[mixed] = run_single(tmp_path_factory.mktemp("single") / "c.pt", mixed)
        return cache[mixed]
    return get


@pytest.mark.parametrize("parallel, resume_at, mixed", [
    ("ddp", -1, False),
    # the next two take ~15 s of CPU each, 40 s wall on a busy machine
    pytest.param("ddp", -1, True, marks=pytest.mark.slow),
    pytest.param("fsdp", 2, False, marks=pytest.mark.slow),
])
def test_two_cpu_processes_match_one_process_on_the_same_global_batch(single, tmp_path, parallel, resume_at,
                                                                      mixed, in_loopback_namespace):
    """DDP on joint steps; DDP on a cycle of joint / LM-only / pair-only steps (find_unused_parameters);
    FSDP with a save after 2 steps and a resume into fresh sharded objects. Each must end where one
    uninterrupted process on the same global batches ends."""
    ref, ref_losses = single(mixed)
    got, losses = run_worker(tmp_path / "c.pt", nproc=2, parallel=parallel, resume_at=resume_at, mixed=mixed,
                             namespace=in_loopback_namespace)
    if got.get("dcp"):  # FSDP saves sharded (torch.distributed.checkpoint): read the shards back as one file
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        dcp_to_torch_save(tmp_path / got["dcp"], tmp_path / "whole.pt")
        whole = torch.load(tmp_path / "whole.pt", weights_only=False)
        got = {**got, "model": whole["model"], "optimizer": whole["optim"]}
    assert len(losses) == 4
    for line, ref_line in zip(losses, ref_losses):  # the logged loss is the global mean
        assert abs(float(line.split()[-1]) - float(ref_line.split()[-1])) < 1e-4, (losses, ref_losses)
    assert got["step"] == ref["step"] == 4
    assert got["data_state"] == ref["data_state"]
    assert sorted(got["model"]) == sorted(ref["model"])
    for name, value in ref["model"].items():
        assert torch.allclose(got["model"][name], value, rtol=0, atol=5e-5), name
    assert got["optimizer"]["state"], "the optimizer never stepped"
