"""Pipeline health: frame counters and latency statistics, per-frame inference retries."""
