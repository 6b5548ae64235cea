"""Command-line entry points of the device side (rt-segment, rt-bench, rt-eval)."""
