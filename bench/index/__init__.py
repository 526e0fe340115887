"""Index benchmarks: `python -m bench.index` (see run.py)."""
