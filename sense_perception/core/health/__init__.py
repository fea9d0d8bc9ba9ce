"""Pipeline health: frame counters and latency statistics, per-frame inference retries, and the
health of each camera (blocked, low visibility, exposure, frozen and late streams)."""
