"""A writer that the crash test kills with SIGKILL: it upserts, re-upserts, deletes and snapshots in a loop.

Before each call it prints `P <op> <id:version ...>` and after the call returns `A`, so the parent knows
which writes were acknowledged and which one (at most) was in flight when the process died.
Usage: python crash_writer.py ROOT_OR_URI FIRST_ID SEED  (a folder: FAISS; milvus-lite:///path/db: Milvus Lite)
"""

import os
import sys
import zlib

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

DIM = 32


def vector_for(id_: str, version: int) -> np.ndarray:
    v = np.random.default_rng(zlib.crc32(f"{id_}:{version}".encode())).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def metadata_for(id_: str, version: int) -> dict:
    return {"modality": ("image", "audio")[version % 2], "uri": f"mem://{id_}", "payload": {"id": id_, "v": version}}


def main() -> None:
    from omniembed.index import Index, open_index

    root, first, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if "://" in root:
        ix = open_index(root, DIM, "hnsw", M=8)
    else:
        ix = Index.open(root) if os.path.exists(root) else Index.create(root, DIM, "hnsw", M=8, snapshot_bytes=64 << 10)
    rng = np.random.default_rng(seed)
    mine: dict[str, int] = {}  # ids this run wrote and did not delete -> version
    next_id = first
    out = sys.stdout
    while True:
        r = rng.random()
        if r < 0.6 or len(mine) < 5:
            ids = [f"c{next_id + j}" for j in range(int(rng.integers(1, 5)))]
            next_id += len(ids)
            versions = [0] * len(ids)
            op = "U"
        elif r < 0.75:
            ids = list(rng.choice(sorted(mine), 2, replace=False))
            versions = [mine[i] + 1 for i in ids]
            op = "U"
        elif r < 0.95:
            ids = list(rng.choice(sorted(mine), int(rng.integers(1, 3)), replace=False))
            versions = [-1] * len(ids)
            op = "D"
        else:
            ids, versions, op = [], [], "S"
        out.write(f"P {op} " + " ".join(f"{i}:{v}" for i, v in zip(ids, versions)) + "\n")
        out.flush()
        if op == "U":
            ix.upsert(ids, np.stack([vector_for(i, v) for i, v in zip(ids, versions)]),
                      [metadata_for(i, v) for i, v in zip(ids, versions)])
            mine.update(zip(ids, versions))
        elif op == "D":
            ix.delete(ids)
            for i in ids:
                mine.pop(i)
        else:
            ix.snapshot()
        out.write("A\n")
        out.flush()


if __name__ == "__main__":
    main()
