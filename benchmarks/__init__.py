"""Benchmark suite of sense_perception; run with ``make bench`` (see run.py)."""
