"""Compare two runs' outputs, Polygraphy-style: the post-build check of a plan against its ONNX model."""
import numpy as np


# -- post-build check -------------------------------------------------------------------

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
            bad = int(np.size(cand) - np.count_nonzero(np.isfinite(cand)))
            entry["non_finite"] = bad
            if bad:
                problems.append("{}: {} NaN/Inf value(s)".format(name, bad))
                stats[name] = entry
                continue
        if ref.dtype.kind == "f" and cand.dtype.kind == "f":
            diff = np.abs(cand.astype(np.float64) - ref.astype(np.float64))
            entry["max_abs_error"] = float(diff.max()) if diff.size else 0.0
            entry["mean_abs_error"] = float(diff.mean()) if diff.size else 0.0
            if atol is not None and entry["max_abs_error"] > atol:
                problems.append("{}: max abs error {:.4g} > {:.4g}".format(
                    name, entry["max_abs_error"], atol))
            if ref.ndim == 4 and ref.shape[class_axis] > 1:
                agree = np.argmax(ref, axis=class_axis) == np.argmax(cand, axis=class_axis)
                entry["mismatch"] = 1.0 - float(agree.mean())
        elif ref.dtype.kind in "iub":
            entry["mismatch"] = 1.0 - float((ref == cand).mean()) if ref.size else 0.0
        if entry.get("mismatch", 0.0) > max_mismatch:
            problems.append("{}: {:.2%} of the class decisions differ (> {:.2%})".format(
                name, entry["mismatch"], max_mismatch))
        stats[name] = entry
    return {"ok": not problems, "outputs": stats, "problems": problems}
