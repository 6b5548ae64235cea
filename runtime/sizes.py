"""Sizes written as two numbers joined by an x ("256x512"): one grammar for every flag that takes one.

Digits, ``x`` or ``X``, digits; spaces around them are allowed. What the two numbers mean (HxW for
network and scene sizes, WxH for camera modes) and which values are allowed stay with the caller,
which also words its own error (it knows the flag).
"""
import re

_PAIR = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def split_pair(text):
    """'256x512' -> (256, 512), in the order written; None when it is not two numbers joined by x."""
    match = _PAIR.match(text) if isinstance(text, str) else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def parse_hw(text):
    """'HxW' -> (h, w), for argparse's ``type=`` (a ValueError becomes argparse's one-line error)."""
    pair = split_pair(text)
    if pair is None:
        raise ValueError("expected HEIGHTxWIDTH, e.g. 256x512, got {!r}".format(text))
    return pair
