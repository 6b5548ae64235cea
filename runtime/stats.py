"""Latency statistics, the same way everywhere (rt-segment reports, rt-bench).

Percentiles, not only means: a real-time system is judged by its tail (p99), and
trtexec-style reports carry min/mean/median/p90/p95/p99/max plus the coefficient
of variation that tells a stable measurement from a noisy one.
"""
import random

import numpy as np

PERCENTILES = (50, 90, 95, 99)
KEYS = ("count", "min", "mean", "p50", "p90", "p95", "p99", "max", "std", "cv")


def summarize(samples_ms):
    """Summary of latency samples (ms): count, min, mean, p50, p90, p95, p99, max, std, cv.

    ``cv`` is std / mean (the spread relative to the typical value; > 0.1 means a
    noisy run). With no samples every value but ``count`` is None, so that a
    report always has the same keys.
    """
    values = np.asarray(samples_ms, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        out = dict.fromkeys(KEYS)
        out["count"] = 0
        return out
    mean = float(values.mean())
    std = float(values.std())
    pcts = np.percentile(values, PERCENTILES)
    out = {"count": int(values.size), "min": float(values.min()), "mean": mean}
    for pct, value in zip(PERCENTILES, pcts):
        out["p{}".format(pct)] = float(value)
    out.update({"max": float(values.max()), "std": std,
                "cv": std / mean if mean > 0 else None})
    return out


def ms_text(stats, key):
    """``stats[key]`` (a Series summary's ms) as text with one decimal, ``-`` when absent."""
    value = stats.get(key) if stats else None
    return "{:.1f}".format(value) if value is not None else "-"


class Series(object):
    """Samples of one measurement, with bounded memory for runs of any length.

    Keeps the first ``capacity`` samples in a preallocated array; after that a
    uniform reservoir sample (so percentiles stay unbiased) while count, min, max
    and mean stay exact. One writer thread; ``summary()`` may be called from
    another thread at any time (it reads a consistent prefix).
    """

    def __init__(self, capacity=100000, seed=0):
        self._values = np.empty(int(capacity), dtype=np.float64)
        self._kept = 0
        self.count = 0
        self.total = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self._rng = random.Random(seed)

    def add(self, value_ms):
        value = float(value_ms)
        self.count += 1
        self.total += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        capacity = self._values.shape[0]
        if self._kept < capacity:
            self._values[self._kept] = value
            self._kept += 1
        else:
            slot = self._rng.randrange(self.count)
            if slot < capacity:
                self._values[slot] = value

    def samples(self):
        """The kept samples (a copy)."""
        return self._values[:self._kept].copy()

    def summary(self):
        """``summarize`` of the kept samples, with exact count, min, max and mean."""
        out = summarize(self._values[:self._kept])
        if self.count and out["count"]:
            out["count"] = self.count
            out["min"], out["max"] = self.min, self.max
            out["mean"] = self.total / self.count
        return out
