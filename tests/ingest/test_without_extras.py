"""Serving, the runtime and `--actors 0` ingest keep working where the milvus and ray extras are not installed;
what needs them says which extra to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys

WITHOUT = r'''
import json, sys

class NotInstalled:
    """Makes the optional extras' modules unimportable, as on an install without them."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pymilvus", "milvus_lite", "ray"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NotInstalled())
manifest, bundle, work = sys.argv[1:4]
from omniembed.cli import main
from omniembed.index import open_index
from omniembed.index.errors import IndexInputError
from omniembed.serve.server import Server  # the whole service imports
out = {}
with open_index(work + "/faiss", dim=8) as ix:
    ix.upsert(["a"], [[1, 0, 0, 0, 0, 0, 0, 0]])
    out["faiss"] = ix.search([[1, 0, 0, 0, 0, 0, 0, 0]], k=1)[0][0].id
try:
    open_index("milvus-lite://" + work + "/m.db", dim=8)
except IndexInputError as exc:
    out["milvus"] = str(exc)
out["ray_rc"] = main(["ingest", manifest, "--bundle", bundle, "--index", work + "/a", "--actors", "1",
                      "--no-progress"])
out["local_rc"] = main(["ingest", manifest, "--bundle", bundle, "--index", work + "/b", "--actors", "0",
                        "--no-progress", "--summary", work + "/s.json"])
out["loaded"] = sorted(m for m in ("pymilvus", "milvus_lite", "ray") if m in sys.modules)
print(json.dumps(out))
'''


def test_serving_and_a_local_ingest_need_neither_milvus_nor_ray(tiny_bundle, synth_world, tmp_path):
    proc = subprocess.run([sys.executable, "-c", WITHOUT, str(synth_world.heldout_path), os.fspath(tiny_bundle),
                           str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["faiss"] == "a" and out["loaded"] == []
    assert "pip install 'omniembed[milvus]'" in out["milvus"]
    assert out["ray_rc"] == 2 and "pip install 'omniembed[ray]'" in proc.stderr
    assert out["local_rc"] == 0 and json.loads((tmp_path / "s.json").read_text())["written"] > 0
