"""A design's latency on a device: cost-table models, what to profile, end-to-end checks."""
