"""Read units and the tokenizers' seeded sample: bounded by the sample size, in file order when it all fits."""

import json

from omniembed.data.sources import plan_units, sample_records


def write_manifest(path, n):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"r{i:05d}", "kind": "item", "views": {"text": f"caption {i}"}}) + "\n")
    return path


def test_a_sample_reads_whole_units_up_to_its_size_not_the_corpus(tmp_path):
    manifest = write_manifest(tmp_path / "big.jsonl", 5000)  # 20 units of 256 lines
    records, units = sample_records(manifest, 300, seed=1)
    assert len(records) == 300 and units == 2  # two units read of twenty
    again, _ = sample_records(manifest, 300, seed=1)
    other, _ = sample_records(manifest, 300, seed=2)
    assert [r.id for r in again] == [r.id for r in records]  # seeded
    assert [r.id for r in other] != [r.id for r in records]


def test_a_corpus_within_the_sample_comes_whole_in_file_order(tmp_path):
    manifest = write_manifest(tmp_path / "small.jsonl", 600)
    records, units = sample_records(manifest, 20000, seed=3)
    assert [r.id for r in records] == [f"r{i:05d}" for i in range(600)]
    assert units == len(plan_units(manifest))
    every, _ = sample_records(manifest, 0, seed=3)
    assert len(every) == 600


def test_invalid_lines_are_skipped_by_a_stream_sample_and_raised_by_a_strict_one(tmp_path):
    manifest = write_manifest(tmp_path / "m.jsonl", 10)
    with open(manifest, "a") as f:
        f.write("{broken\n")
    records, _ = sample_records(manifest, 0, seed=0)
    assert len(records) == 10
    import pytest

    from omniembed.errors import ManifestError

    with pytest.raises(ManifestError, match="m.jsonl:11: invalid JSON"):
        sample_records(manifest, 0, seed=0, strict=True)
