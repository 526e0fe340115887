"""Data: the user-facing format (manifest.py: JSONL items and documents; shards.py: WebDataset shards of
them), the data stages' worker processes (workers.py), and the synthetic world (synth/)."""
