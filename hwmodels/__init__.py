"""Per-device cost tables, profiling and latency prediction (imports nothing from deepmad)."""
