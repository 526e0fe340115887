"""A Node client built from the .proto alone (clients/node/check.mjs) uses a real server."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import pytest

from omniembed.serve import Client

from .conftest import DIM, TOKEN

NODE_DIR = pathlib.Path(__file__).resolve().parents[2] / "clients" / "node"


@pytest.fixture(scope="module")
def node_ready():
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the Node client check needs it")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed: cannot fetch @grpc/grpc-js and @grpc/proto-loader")
        out = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True,
                             text=True, timeout=300)
        if out.returncode != 0:
            pytest.skip(f"npm install failed (offline?): {out.stderr.strip()[-300:]}")


def test_node_client_from_the_proto_alone_runs_every_vector_rpc(node_ready, server):
    out = subprocess.run(["node", "check.mjs", "--target", server.target, "--token", TOKEN], cwd=NODE_DIR,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["upserted"] == 3
    assert report["search"][0]["id"] == "node-b" and report["search"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert report["filtered"] == ["node-c"]
    assert report["get"] == {"id": "node-c", "values": DIM}
    assert report["delete"] == {"deleted": 1, "not_found": ["never-stored"]}
    assert report["get_deleted"]["code"] == "NOT_FOUND" and "'node-a'" in report["get_deleted"]["details"]
    assert report["wrong_token"] == {"code": "UNAUTHENTICATED", "details": "wrong bearer token"}
    assert report["count"] == 2
    # what Node wrote, Python reads back
    with Client(server.target, token=TOKEN) as c:
        item = c.get(["node-b"])[0]
        assert item.metadata == {"modality": "text", "uri": "node://node-b", "payload": {"lang": "js", "n": 1}}
