"""`omniembed shards`: a manifest packed into shards in parallel, resumably, with every record that cannot
be packed in rejects.jsonl; the shards read back through the shard reader and the stream's sources."""

import hashlib
import json
import shutil

from omniembed.data.pack import main, pack_manifest
from omniembed.data.shards import read_shards
from omniembed.data.sources import expand_inputs, parse_raw, plan_units, read_raw


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*.tar"))}


def manifest_with_bad_lines(synth_world, tmp_path):
    lines = synth_world.heldout_path.read_text().splitlines()
    media = synth_world.root
    good = [json.loads(l) for l in lines]
    for obj in good:  # absolute media paths: the copy lives elsewhere
        for k, v in obj.get("views", {}).items():
            if k != "text":
                obj["views"][k] = str(media / v)
        for seg in obj.get("segments", []):
            for k, v in seg.items():
                if k != "text":
                    seg[k] = str(media / v)
    rows = [json.dumps(o) for o in good]
    rows.insert(2, '{"id": "no-file", "kind": "item", "views": {"image": "/nope/missing.png"}}')
    rows.insert(4, "{not json")
    rows.insert(5, rows[0])  # the first record's id again
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path, [o["id"] for o in good], len(rows)


def test_bad_records_go_to_rejects_with_their_reason_and_the_rest_is_packed(synth_world, tmp_path):
    manifest, ids, lines = manifest_with_bad_lines(synth_world, tmp_path)
    summary = pack_manifest(manifest, tmp_path / "out", maxcount=3, workers=2)
    assert summary["shards"] == -(-lines // 3) and summary["rejects"] == 3
    rejects = [json.loads(l) for l in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [r["source"].rsplit(":", 1)[1] for r in rejects] == ["3", "5", "6"]
    assert "media file not found" in rejects[0]["reason"] and rejects[0]["id"] == "no-file"
    assert "invalid JSON" in rejects[1]["reason"]
    assert "duplicate id" in rejects[2]["reason"] and rejects[2]["id"] == ids[0]
    packed = [r.id for r in read_shards(expand_inputs(str(tmp_path / "out")))]
    assert sorted(packed) == sorted(ids)  # every good record once, none of the bad ones
    via_sources = [parse_raw(raw).id for u in plan_units(str(tmp_path / "out")) for raw in read_raw(u)]
    assert sorted(via_sources) == sorted(ids)


def test_an_interrupted_pack_is_finished_by_a_rerun_with_identical_shards(synth_world, tmp_path):
    manifest, _, lines = manifest_with_bad_lines(synth_world, tmp_path)
    pack_manifest(manifest, tmp_path / "a", maxcount=3, workers=1)
    reference = digests(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "shard-000001.tar").unlink()  # as if killed before this shard was renamed into place
    (tmp_path / "b" / ".shard-000002.tar.tmp").write_bytes(b"half a tar")
    again = pack_manifest(manifest, tmp_path / "b", maxcount=3, workers=2)
    assert again["written"] == 1 and again["skipped_done"] == -(-lines // 3) - 1 and again["rejects"] == 3
    assert digests(tmp_path / "b") == reference


def test_the_command_prints_a_summary_and_refuses_a_missing_manifest(synth_world, tmp_path, capsys):
    assert main([str(synth_world.heldout_path), "--out", str(tmp_path / "s"), "--maxcount", "4"]) == 0
    lines = len(synth_world.heldout_path.read_text().splitlines())
    assert json.loads(capsys.readouterr().out)["shards"] == -(-lines // 4)
    assert main([str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "t")]) == 2
    assert "no such manifest" in capsys.readouterr().err


def test_shards_are_named_by_pattern_folder_list_or_pipe(synth_world, tmp_path):
    pack_manifest(synth_world.heldout_path, tmp_path / "s", maxcount=2, workers=1)
    folder = expand_inputs(str(tmp_path / "s"))
    assert len(folder) == -(-len(synth_world.heldout_path.read_text().splitlines()) // 2) >= 2
    last = len(folder) - 1
    assert expand_inputs(str(tmp_path / "s" / f"shard-{{000000..{last:06d}}}.tar")) == folder
    pipe = f"pipe:cat {folder[1]}"
    from_pipe = [parse_raw(raw).id for u in plan_units([pipe]) for raw in read_raw(u)]
    from_file = [parse_raw(raw).id for u in plan_units([folder[1]]) for raw in read_raw(u)]
    assert from_pipe == from_file and len(from_pipe) == 2
