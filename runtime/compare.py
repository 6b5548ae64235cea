"""Whether two runs agree, Polygraphy-style: the one comparator of the project.

Every place that compares two runs' outputs uses it: the export parity gate (PyTorch vs
ONNX Runtime, export/parity.py and export/forecast_export.py), the post-build check of a
TensorRT plan against its ONNX model (runtime/plan/build.py), INT8/FP16 against FP32
(calib/accuracy.py) and rt-eval's ``--reference`` (runtime/cli/eval.py,
runtime/forecast_eval.py). So "agreement", "mismatch" and "max abs error" mean one thing
everywhere: agreement is the share of equal class decisions (pixels), pooled over images;
errors are computed in float64.

Device side: numpy only, Python 3.6.
"""
import numpy as np


class Agreement(object):
    """Share of equal class decisions between two runs, pooled over pairs of maps (pixels count
    alike, whatever the image they are in). ``value`` is None until something was compared."""

    __slots__ = ("same", "total")

    def __init__(self):
        self.same = 0
        self.total = 0

    def add(self, a, b):
        """Count the equal elements of two arrays of one shape (class maps, decisions)."""
        a, b = np.asarray(a), np.asarray(b)
        self.same += int(np.count_nonzero(a == b))
        self.total += int(a.size)
        return self

    def extend(self, maps, ref_maps):
        """``add`` each pair of ``maps`` and ``ref_maps``."""
        for a, b in zip(maps, ref_maps):
            self.add(a, b)
        return self

    @property
    def value(self):
        return self.same / float(self.total) if self.total else None


def agreement(a, b):
    """Share of equal elements of two arrays of one shape (1.0 for empty arrays)."""
    a = np.asarray(a)
    return float(np.count_nonzero(a == np.asarray(b))) / a.size if a.size else 1.0


def mean_agreement(maps, ref_maps):
    """The mean over pairs of their ``agreement`` (each pair weighs the same)."""
    return float(np.mean([agreement(a, b) for a, b in zip(maps, ref_maps)]))


def class_decisions(array, class_axis=1):
    """Class ids of an output: the argmax over ``class_axis`` of 4-D float scores with more than
    one class (NCHW logits), the array itself otherwise (class maps, score maps)."""
    array = np.asarray(array)
    if array.dtype.kind == "f" and array.ndim == 4 and array.shape[class_axis] > 1:
        return np.argmax(array, axis=class_axis)
    return array


def abs_error(a, b):
    """|a - b| elementwise, in float64."""
    return np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))


def max_abs_error(a, b):
    """The largest |a - b| (0.0 for empty arrays)."""
    diff = abs_error(a, b)
    return float(diff.max()) if diff.size else 0.0


def max_rel_error(reference, candidate):
    """The largest |a - b| relative to the reference's range (elementwise ratios explode near
    zero logits)."""
    return max_abs_error(reference, candidate) / max(float(np.abs(reference).max()), 1e-12)


def count_non_finite(array):
    """NaN and Inf values of ``array`` (they compare as equal argmaxes: a NaN model would pass)."""
    array = np.asarray(array)
    return int(array.size - np.count_nonzero(np.isfinite(array)))


def check_outputs(reference, candidate, max_mismatch=0.01, atol=None, class_axis=1):
    """Compare a candidate's outputs with the reference's, Polygraphy-style.

    For each reference output: the candidate must have it with the same shape and only
    finite values; class decisions must agree on at least ``1 - max_mismatch`` of the
    pixels (argmax over ``class_axis`` for 4-D float outputs with more than one class, i.e.
    NCHW logits; equality for integer outputs such as class maps); with ``atol`` the max
    abs error of float outputs must stay within it. Returns {'ok', 'outputs': {name: stats}, 'problems': [...]}.
    """
    problems, stats = [], {}
    for name, ref in reference.items():
        ref = np.asarray(ref)
        if name not in candidate:
            problems.append("{}: missing from the candidate".format(name))
            continue
        cand = np.asarray(candidate[name])
        if cand.shape != ref.shape:
            problems.append("{}: shape {} vs reference {}".format(name, cand.shape, ref.shape))
            continue
        entry = {}
        if cand.dtype.kind == "f":
            bad = count_non_finite(cand)
            entry["non_finite"] = bad
            if bad:
                problems.append("{}: {} NaN/Inf value(s)".format(name, bad))
                stats[name] = entry
                continue
        if ref.dtype.kind == "f" and cand.dtype.kind == "f":
            diff = abs_error(cand, ref)
            entry["max_abs_error"] = float(diff.max()) if diff.size else 0.0
            entry["mean_abs_error"] = float(diff.mean()) if diff.size else 0.0
            if atol is not None and entry["max_abs_error"] > atol:
                problems.append("{}: max abs error {:.4g} > {:.4g}".format(
                    name, entry["max_abs_error"], atol))
            if ref.ndim == 4 and ref.shape[class_axis] > 1:
                entry["mismatch"] = 1.0 - agreement(class_decisions(ref, class_axis),
                                                    class_decisions(cand, class_axis))
        elif ref.dtype.kind in "iub":
            entry["mismatch"] = 1.0 - agreement(ref, cand)
        if entry.get("mismatch", 0.0) > max_mismatch:
            problems.append("{}: {:.2%} of the class decisions differ (> {:.2%})".format(
                name, entry["mismatch"], max_mismatch))
        stats[name] = entry
    return {"ok": not problems, "outputs": stats, "problems": problems}
