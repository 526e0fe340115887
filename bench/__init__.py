"""Benchmark scripts; each writes its committed results under bench/results/."""
