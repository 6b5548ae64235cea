"""A bounded buffer of past features keyed by capture time (for semantic forecasting).

A forecaster was trained on frames at fixed offsets (e.g. -9, -6, -3, 0 frames at 15 Hz).
A camera delivers frames at its own rate and drops some, so past features are picked by
time, not by position: for each offset the buffered frame nearest to ``now + offset``.
The buffer keeps only what the oldest offset can still need, so memory stays flat.
"""
import bisect
import collections
import math

SLACK = 2                # entries kept beyond what the oldest offset needs
MAX_RATE_FACTOR = 8.0    # capacity follows the source rate up to 8x the trained rate
_EPS = 1e-6              # s: a frame exactly half an interval away still counts


def capacity_for(oldest_offset_s, frame_rate, source_rate=None):
    """Entries that reach ``oldest_offset_s`` back at the faster of the two rates, plus slack."""
    rate = float(frame_rate)
    if source_rate:
        rate = min(max(rate, float(source_rate)), MAX_RATE_FACTOR * float(frame_rate))
    return int(math.ceil(abs(float(oldest_offset_s)) * rate - _EPS)) + 1 + SLACK


class FeatureRing(object):
    """(capture_time, features) pairs in time order, at most ``capacity`` of them."""

    def __init__(self, capacity):
        self._items = collections.deque(maxlen=max(1, int(capacity)))

    @property
    def capacity(self):
        return self._items.maxlen

    def __len__(self):
        return len(self._items)

    def resize(self, capacity):
        """Change the bound, keeping the newest entries."""
        capacity = max(1, int(capacity))
        if capacity != self._items.maxlen:
            self._items = collections.deque(self._items, maxlen=capacity)

    def clear(self):
        self._items.clear()

    def add(self, capture_time, features):
        """Append the newest entry; a time before the last one starts a new stream (cleared)."""
        if self._items and capture_time < self._items[-1][0]:
            self._items.clear()
        self._items.append((float(capture_time), features))

    def select(self, now, offsets_s, tolerance_s):
        """For each offset the entry nearest to ``now + offset`` (ties: the newer one).

        Returns ``(entries, errors)``: ``entries`` is the list of (time, features) in the
        order of ``offsets_s``, or None when any offset has no entry within ``tolerance_s``;
        ``errors`` is picked time minus target time per offset (s; None where nothing is
        buffered at all).
        """
        items = self._items
        if not items:
            return None, [None] * len(offsets_s)
        times = [item[0] for item in items]
        last = len(times) - 1
        entries, errors, complete = [], [], True
        for offset in offsets_s:
            target = now + offset
            index = min(bisect.bisect_left(times, target), last)
            if index > 0 and target - times[index - 1] < times[index] - target:
                index -= 1  # the older neighbour is strictly nearer
            err = times[index] - target
            entries.append(items[index])
            errors.append(err)
            if abs(err) > tolerance_s + _EPS:
                complete = False
        return (entries if complete else None), errors
