"""Beyond one process through `python -m omniembed.train` under torchrun (gloo on CPU, in a loopback-only
network namespace where the OS allows one): two "nodes" on one machine match the single-node 2-rank run, and
FSDP saves sharded checkpoints (torch.distributed.checkpoint) that resume to an unbroken run's parameters."""

import os
import socket
import sys

import pytest
import torch

from omniembed.train.checkpoint import read_checkpoint
from omniembed.train.rundir import load_run

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ok(results):
    for code, output in results:
        assert code == 0, output[-4000:]


def test_two_nodes_of_one_rank_match_one_node_of_two_ranks(tiny_args, tmp_path, in_loopback_namespace):
    extra = ("loop.steps=4", "loop.eval_captions=0", "loop.pair_batch=8")
    one_node, two_nodes = tmp_path / "one-node", tmp_path / "two-nodes"
    ok(in_loopback_namespace([[*TORCHRUN, "--standalone", "--nproc-per-node=2", "-m", "omniembed.train",
                         *tiny_args(one_node, *extra)]], ENV, tmp_path / "logs-1"))
    # two launches, as on two machines: --nnodes 2, one process each, a c10d rendezvous on localhost
    port = free_port()
    node = [*TORCHRUN, "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=omniembed-test", "--local-addr=127.0.0.1",
            "-m", "omniembed.train", *tiny_args(two_nodes, *extra)]
    ok(in_loopback_namespace([node, node], ENV, tmp_path / "logs-2"))
    a, b = read_checkpoint(one_node / "checkpoint.pt"), read_checkpoint(two_nodes / "checkpoint.pt")
    assert a["step"] == b["step"] == 4
    for name, tensor in a["model"].items():  # same ranks, same batches, same collectives: the same numbers
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-6, atol=1e-7, msg=name)


def test_fsdp_through_the_entry_point_saves_sharded_and_resumes_to_an_unbroken_run(tiny_args, tmp_path,
                                                                                   in_loopback_namespace):
    extra = ("train.parallel=fsdp", "loop.steps=6", "loop.eval_captions=0", "loop.pair_batch=8")
    unbroken, broken = tmp_path / "unbroken", tmp_path / "broken"

    def launch(out, *more):
        ok(in_loopback_namespace([[*TORCHRUN, "--standalone", "--nproc-per-node=2", "-m", "omniembed.train",
                             *tiny_args(out, *extra), *more]], ENV, tmp_path / f"logs-{out.name}-{len(more)}"))

    launch(unbroken)
    launch(broken, "--stop-at", "3")
    saved = read_checkpoint(broken / "checkpoint.pt")
    assert saved["step"] == 3 and saved["model"] is None and saved["dcp"] == "checkpoint.pt.dcp/step-00000003"
    shards = sorted(p.name for p in (broken / saved["dcp"]).iterdir())
    assert "__0_0.distcp" in shards and "__1_0.distcp" in shards  # each rank wrote its own shard
    launch(broken, "--resume")
    assert sorted(p.name for p in (broken / "checkpoint.pt.dcp").iterdir()) == ["step-00000006"]
    a, b = load_run(unbroken), load_run(broken)  # a single process reads the sharded state back
    assert a.step == b.step == 6
    sa, sb = a.model.state_dict(), b.model.state_dict()
    for name, tensor in sa.items():
        torch.testing.assert_close(sb[name], tensor, rtol=0, atol=0, msg=name)
    # the sharded state reshards onto another world size: the 2-rank checkpoint resumes on one rank
    ok(in_loopback_namespace([[*TORCHRUN, "--standalone", "--nproc-per-node=1", "-m", "omniembed.train",
                               *tiny_args(broken, *extra[:-2], "loop.steps=7", "loop.eval_captions=0",
                                          "loop.pair_batch=8"), "--resume"]], ENV, tmp_path / "logs-one-rank"))
    assert read_checkpoint(broken / "checkpoint.pt")["step"] == 7
