"""Activation ranges from ONNX Runtime's calibrators (entropy, percentile, minmax).

One calibration drives every INT8 artifact: the QDQ models (through quantize_static) and
TensorRT's calibration cache and amax table. The histograms and thresholds are ONNX
Runtime's own (``onnxruntime.quantization.calibrate.create_calibrator``); this module only
feeds them a few images at a time, so memory stays bounded whatever the image count, and
shows a progress bar.

    ranges = collect_ranges("model.onnx", images.tensors(pre), "frame", method="entropy",
                            total=len(images))
    ranges.amax()        # {tensor: max(|lowest|, |highest|)}  (TensorRT's symmetric scale * 127)
"""
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile

import numpy as np

from runtime.errors import UserError
from runtime.jsonfile import write_atomic

METHODS = ("entropy", "percentile", "minmax")
DEFAULT_METHOD = "percentile"  # entropy lost 3.7 pp mIoU on the demo checkpoint, percentile 0.06
# TensorRT's entropy calibrator uses 2048 histogram bins and 128 quantized bins; ONNX
# Runtime's default of 128 bins leaves its KL search a single candidate (= minmax).
ENTROPY_BINS = 2048
ENTROPY_QUANTIZED_BINS = 128
PERCENTILE = 99.999
PERCENTILE_BINS = 2048
CHUNK = 4  # images whose activations are held at once


def _ort_method(method):
    from onnxruntime.quantization import CalibrationMethod
    return {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
            "minmax": CalibrationMethod.MinMax}[method]


def check_method(method):
    if method not in METHODS:
        raise UserError("unknown calibration method {!r}: use one of {}".format(
            method, ", ".join(METHODS)))
    return method


class Ranges(object):
    """Per-tensor activation ranges (lowest, highest) of one calibration."""

    def __init__(self, method, tensors, images=0, info=None):
        self.method = method
        self.tensors = dict((str(k), (float(v[0]), float(v[1]))) for k, v in tensors.items())
        self.images = int(images)
        self.info = dict(info or {})

    def __len__(self):
        return len(self.tensors)

    def __contains__(self, name):
        return name in self.tensors

    def amax(self, names=None):
        """{tensor: max(|lowest|, |highest|)} (for ``names`` only when given)."""
        keys = self.tensors if names is None else [n for n in names if n in self.tensors]
        return dict((k, max(abs(self.tensors[k][0]), abs(self.tensors[k][1]))) for k in keys)

    def to_tensors_data(self):
        """ONNX Runtime's TensorsData (what quantize_static reads from its calibration cache)."""
        from onnxruntime.quantization.calibrate import TensorData, TensorsData
        data = {}
        for name, (low, high) in self.tensors.items():
            data[name] = TensorData(lowest=np.array(low, dtype=np.float32),
                                    highest=np.array(high, dtype=np.float32))
        return TensorsData(_ort_method(self.method), data)

    def write_ort_cache(self, path):
        """Write the ranges as ONNX Runtime's calibration cache (quantize_static's
        ``calibration_cache_path``)."""
        from onnxruntime.quantization.calibrate import save_tensors_data
        save_tensors_data(self.to_tensors_data(), path)
        return path

    def to_json(self):
        return {"method": self.method, "images": self.images, "info": self.info,
                "tensors": dict((k, list(v)) for k, v in sorted(self.tensors.items()))}

    @classmethod
    def from_json(cls, data):
        return cls(data["method"], data["tensors"], data.get("images", 0), data.get("info"))

    def save(self, path):
        write_atomic(path, self.to_json(), indent=1)

    @classmethod
    def load(cls, path):
        try:
            with open(str(path)) as handle:
                return cls.from_json(json.load(handle))
        except (IOError, OSError, ValueError, KeyError) as exc:
            raise UserError("cannot read ranges {}: {}".format(path, exc))


def make_progress(total, desc, enabled=True):
    """A tqdm bar on stderr (a no-op object when disabled or tqdm is missing)."""
    if enabled:
        try:
            from tqdm import tqdm
            return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False,
                        dynamic_ncols=True)
        except ImportError:
            pass
    return _NoBar()


class _NoBar(object):
    def update(self, n=1):
        pass

    def close(self):
        pass


class _ListReader(object):
    """A CalibrationDataReader over a list of feeds (one chunk)."""

    def __init__(self, feeds):
        self._feeds = iter(feeds)

    def get_next(self):
        return next(self._feeds, None)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


@contextlib.contextmanager
def _quiet_stdout():
    """ORT's histogram calibrators print progress lines to stdout; keep stdout clean."""
    saved = sys.stdout
    sys.stdout = io.StringIO()
    try:
        yield
    finally:
        sys.stdout = saved


def collect_ranges(model_path, tensors, input_name, method=DEFAULT_METHOD, total=None,
                   chunk=CHUNK, progress=True, op_types=None, num_bins=None,
                   percentile=PERCENTILE, workdir=None, log=None):
    """Run ``tensors`` (an iterable of input arrays) through ONNX Runtime's calibrator.

    ``model_path`` is the FP32 model the ranges are for (its tensor names are the keys).
    ``op_types``: restrict to the inputs/outputs of these operator types (default: every
    float tensor). Returns Ranges; observed min/max bound every threshold.
    """
    from onnxruntime.quantization.calibrate import create_calibrator
    check_method(method)
    own_dir = workdir is None
    folder = tempfile.mkdtemp(prefix="calib-") if own_dir else workdir
    extra = {}
    if method == "entropy":
        extra = {"num_bins": int(num_bins or ENTROPY_BINS),
                 "num_quantized_bins": ENTROPY_QUANTIZED_BINS}
    elif method == "percentile":
        extra = {"num_bins": int(num_bins or PERCENTILE_BINS), "percentile": float(percentile),
                 "symmetric": True}
    try:
        with _quiet_stdout():
            calibrator = create_calibrator(
                model_path, op_types, augmented_model_path=os.path.join(folder, "augmented.onnx"),
                calibrate_method=_ort_method(method), extra_options=extra,
                providers=["CPUExecutionProvider"])
        bar = make_progress(total, "calibrating ({})".format(method), progress)
        seen = 0
        batch = []
        try:
            for tensor in tensors:
                batch.append({input_name: tensor})
                if len(batch) == chunk:
                    seen += _collect(calibrator, batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                seen += _collect(calibrator, batch)
                bar.update(len(batch))
        finally:
            bar.close()
        if seen == 0:
            raise UserError("no calibration images were given")
        observed = _observed(calibrator)
        if log and method == "entropy":
            log("searching entropy thresholds of {} tensors (ONNX Runtime, about a second "
                "each)".format(len(observed)))
        with _quiet_stdout():
            data = calibrator.compute_data()
        ranges = {}
        for name, value in data.items():
            low, high = value.range_value
            low, high = float(np.asarray(low).min()), float(np.asarray(high).max())
            if name in observed:  # never beyond what the data showed
                low = max(low, observed[name][0])
                high = min(high, observed[name][1])
            if not (np.isfinite(low) and np.isfinite(high)):
                raise UserError("calibration produced a non-finite range for tensor {}: does "
                                "the model give NaN/Inf on these images?".format(name))
            ranges[name] = (low, high)
        return Ranges(method, ranges, images=seen)
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)


def _collect(calibrator, feeds):
    with _quiet_stdout():
        calibrator.collect_data(_ListReader(feeds))
    return len(feeds)


def _observed(calibrator):
    """{tensor: (min, max)} seen by a histogram calibrator ({} for minmax)."""
    collector = getattr(calibrator, "collector", None)
    histograms = getattr(collector, "histogram_dict", None) or {}
    observed = {}
    for name, hist in histograms.items():
        # (hist, edges, min, max[, threshold]) in the ORT releases that have collectors
        try:
            observed[name] = (float(hist[2]), float(hist[3]))
        except (IndexError, TypeError, ValueError):
            continue
    return observed
