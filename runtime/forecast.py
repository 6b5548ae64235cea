"""Semantic forecasting as a composition of three stage networks (docs/forecast-bundle.md).

A bundle (``forecast.json``) names three artifacts: ``features`` (frame -> standardized
features), ``f2f`` (past features, oldest first, concatenated -> future features) and
``decoder`` (features -> class map). ``ForecastBundle`` loads and cross-checks them and
offers the three primitives; ``ForecastEngine`` drives them frame by frame, keeping past
features in a ring buffer keyed by capture time, so that ``runtime.pipeline.Pipeline``
runs a forecaster exactly like a segmentation engine:

    engine = ForecastEngine("engines/f2f-mid_fp32/forecast.json")
    frame = engine.step(frame_bgr, capture_time)   # a ForecastFrame
    frame.is_forecast, frame.class_map             # the class map for capture_time + horizon
"""
import collections
import logging
import math
import os
import time

import numpy as np

from runtime import manifest as manifest_mod
from runtime.backends import open_backend
from runtime.errors import ManifestError
from runtime.feature_ring import FeatureRing, capacity_for
from runtime.forecast_stats import RESULT_KEY, ForecastFrame, ForecastOutputs, ForecastStats
from runtime.manifest import Manifest
from runtime.preprocess import Preprocessor

log = logging.getLogger(__name__)

STAGES = manifest_mod.FORECAST_STAGES
_SHARED = ("frame_rate", "past_offsets", "horizon")  # stage manifests may repeat these
_clock = time.perf_counter


class ForecastBundle(object):
    """The three stages of a bundle, loaded with their backends and checked against each other.

    ``path``: the bundle's ``forecast.json`` or its folder. Anything inconsistent
    (a missing stage, shapes, classes or rates that disagree) is a ManifestError
    naming the stage and what disagrees.
    """

    def __init__(self, path, backend=None, providers=None, threads=None, resize=None,
                 verify=True, allow_legacy=False):
        self.path = manifest_mod.resolve(path)[1]
        self.verify = verify  # each stage's sha256 against its manifest (runtime.manifest)
        self.allow_legacy = allow_legacy  # manifests without digests (Manifest.load)
        self.manifest = bundle = Manifest.load(path, allow_legacy=allow_legacy)
        if bundle.task != "forecast":
            raise ManifestError("{}: task {!r} is not a forecast bundle (task 'forecast', see "
                                "docs/forecast-bundle.md)".format(self.path, bundle.task))
        self.past_offsets = bundle.past_offsets
        self.horizon = bundle.horizon
        self.frame_rate = float(bundle.frame_rate)
        self.feature_shape = bundle.feature_shape
        self.classes = bundle.classes
        folder = os.path.dirname(os.path.abspath(self.path))
        stages = bundle.stages
        self.stage_paths = collections.OrderedDict(
            (name, os.path.join(folder, stages[name])) for name in STAGES)
        self.stages = dict((name, self._load_stage(name)) for name in STAGES)
        self._check_stages()
        self.backends = {}
        try:
            for name in STAGES:
                # Three sessions in turn: no spinning thread pools (see OnnxRuntimeBackend).
                self.backends[name] = open_backend(self.stage_paths[name], self.stages[name],
                                                   backend=backend, providers=providers,
                                                   threads=threads, spin=False)
                self._check_model(name)
        except BaseException:
            self.close()
            raise
        self.preprocessor = Preprocessor(self.stages["features"].input, resize=resize)
        self.size = self.preprocessor.size
        self._io = dict((name, (self.stages[name].input.name, self._output(name).name))
                        for name in STAGES)
        self._dtype = dict((name, np.dtype(self.stages[name].input.dtype))
                           for name in ("f2f", "decoder"))
        decoder_out = self._output("decoder")
        self._decoder_logits = decoder_out.meaning == "logits"

    # -- loading and checks ---------------------------------------------------------------

    def _fail(self, message, *args):
        raise ManifestError("forecast bundle {}: {}".format(self.path, message.format(*args)))

    def _load_stage(self, name):
        path = self.stage_paths[name]
        if not os.path.isfile(path):
            self._fail("stage '{}' file {} is missing", name, path)
        stage = Manifest.load(path, allow_legacy=self.allow_legacy)
        if stage.task != "forecast_stage" or stage.stage != name:
            self._fail("{} is not the '{}' stage (its manifest says task {!r}, stage {!r})",
                       path, name, stage.task, stage.stage)
        pinned = (self.manifest.to_dict().get("stage_sha256") or {}).get(name)
        if pinned is not None and stage.artifact.get("sha256") != pinned:
            self._fail("stage '{}' ({}) is not the one this forecast.json was published with (its "
                       "sha256 differs: a mixed or half re-exported bundle); export the bundle again",
                       name, path)
        if self.verify:
            stage.verify_artifact(path)
        return stage

    def _output(self, name):
        meanings = ("class_map", "logits") if name == "decoder" else ("features",)
        for meaning in meanings:
            out = self.stages[name].output(meaning)
            if out is not None:
                return out
        self._fail("stage '{}' has no output with meaning {}", name, " or ".join(meanings))

    def _check_stages(self):
        """Shapes, kinds, classes and rates of the stage manifests against the bundle's."""
        shape, count = self.feature_shape, len(self.past_offsets)
        stacked = [shape[0], shape[1] * count] + shape[2:]
        expected_inputs = {"features": ("frame", None), "f2f": ("features", stacked),
                           "decoder": ("features", shape)}
        for name in STAGES:
            inp = self.stages[name].input
            kind, want = expected_inputs[name]
            if inp.kind != kind:
                self._fail("stage '{}' input '{}' is a {}, expected {}", name, inp.name,
                           inp.kind, kind)
            if want is not None and inp.shape != want:
                why = ("{} past frames x feature_shape {}".format(count, shape) if name == "f2f"
                       else "feature_shape")
                self._fail("stage '{}' input '{}' has shape {}, expected {} ({})", name,
                           inp.name, inp.shape, want, why)
            if name != "decoder" and self._output(name).shape != shape:
                self._fail("stage '{}' output '{}' has shape {}, expected feature_shape {}",
                           name, self._output(name).name, self._output(name).shape, shape)
        frame, ours = self.stages["features"].input, self.manifest.input
        for key in ("shape", "dtype", "layout", "color_order"):
            if getattr(frame, key) != getattr(ours, key):
                self._fail("stage 'features' input {} is {!r}, the bundle's input says {!r}",
                           key, getattr(frame, key), getattr(ours, key))
        decoder_classes = self.stages["decoder"].classes
        if _class_keys(decoder_classes) != _class_keys(self.classes):
            self._fail("stage 'decoder' has {} classes that differ from the bundle's {} "
                       "(ids and names must match)", len(decoder_classes), len(self.classes))
        for name in STAGES:
            for key in _SHARED:
                value, ours = self.stages[name].forecast_value(key), getattr(self.manifest, key)
                if value is not None and not _same(value, ours):
                    self._fail("stage '{}' says {} {!r}, the bundle says {!r}", name, key,
                               value, ours)

    def _check_model(self, name):
        """The tensors the stage manifest names exist in the model, with the same static dims."""
        backend, data = self.backends[name], self.stages[name]
        for described, tensors, what in ((data.input, backend.inputs, "input"),
                                         (self._output(name), backend.outputs, "output")):
            found = dict((t.name, t) for t in tensors)
            tensor = found.get(described.name)
            if tensor is None:
                self._fail("stage '{}' manifest {} '{}' is not in {} (it has {})", name, what,
                           described.name, self.stage_paths[name], ", ".join(sorted(found)))
            dims, want = list(tensor.shape), described.shape
            if len(dims) != len(want) or any(
                    isinstance(d, int) and d != int(w) for d, w in zip(dims, want)):
                self._fail("stage '{}' {} '{}' is {} in the model but {} in its manifest", name,
                           what, described.name, dims, want)

    # -- the three primitives -------------------------------------------------------------

    def features(self, frame_bgr):
        """BGR frame -> (standardized features float32 (1, C, h, w), fitted frame, Fit)."""
        tensor, fitted, fit = self.preprocessor(frame_bgr)
        return self.run_features(tensor), fitted, fit

    def run_features(self, tensor):
        """The features stage on an input tensor (from ``preprocessor``)."""
        name_in, name_out = self._io["features"]
        out = self.backends["features"].run({name_in: tensor})[name_out]
        return np.asarray(out).astype(np.float32, copy=False)

    def forecast(self, past_features):
        """Features of the past frames (oldest first, one per past offset) -> future features."""
        if len(past_features) != len(self.past_offsets):
            raise ValueError("forecast() takes {} feature maps (one per past offset), got {}"
                             .format(len(self.past_offsets), len(past_features)))
        name_in, name_out = self._io["f2f"]
        stacked = np.concatenate(past_features, axis=1).astype(self._dtype["f2f"], copy=False)
        out = self.backends["f2f"].run({name_in: stacked})[name_out]
        return np.asarray(out).astype(np.float32, copy=False)

    def decode(self, features):
        """Features (1, C, h, w) -> (H, W) uint8 class map at the input resolution."""
        name_in, name_out = self._io["decoder"]
        feed = np.asarray(features, dtype=self._dtype["decoder"])
        out = self.backends["decoder"].run({name_in: feed})[name_out][0]
        if self._decoder_logits:
            return np.argmax(out, axis=0).astype(np.uint8)
        return np.asarray(out).astype(np.uint8, copy=False)

    def describe(self):
        info = dict(self.backends["features"].describe())
        info.update({"engine": self.path, "arch": self.manifest.arch, "task": "forecast",
                     "precision": self.manifest.precision, "input_size": list(self.size),
                     "stages": dict(self.stage_paths), "past_offsets": list(self.past_offsets),
                     "horizon": self.horizon, "frame_rate": self.frame_rate})
        return info

    def close(self):
        for backend in self.backends.values():
            backend.close()


def _class_keys(classes):
    return [(int(c["id"]), c["name"]) for c in classes]


def _same(a, b):
    if isinstance(a, list) or isinstance(b, list):
        try:  # a stage manifest's list of non-numbers (null, text) is not the bundle's
            return (isinstance(a, list) and isinstance(b, list)
                    and [int(x) for x in a] == [int(x) for x in b])
        except (TypeError, ValueError, OverflowError):
            return False
    try:
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))
    except (TypeError, ValueError):
        return False


class ForecastEngine(ForecastOutputs):
    """A bundle driven frame by frame, with the engine protocol (runtime.engine_base).

    Per frame (``infer_at``): features into the ring buffer keyed by the frame's time;
    when a buffered frame lies within the tolerance of ``time + offset`` for every past
    offset (the nearest is taken), f2f then decoder give the class map for ``time +
    horizon``; otherwise the frame is warm-up. Tolerance: half of the longer of the
    trained frame interval and the observed source interval. ``current=True`` also
    decodes the current frame's features (the side-by-side view needs it; it costs a
    decoder run per frame, so it is off by default).
    """

    def __init__(self, path, backend=None, providers=None, threads=None, resize=None,
                 current=False, verify=True, allow_legacy=False):
        self.bundle = bundle = ForecastBundle(path, backend=backend, providers=providers,
                                              threads=threads, resize=resize, verify=verify,
                                              allow_legacy=allow_legacy)
        self.path, self.manifest, self.classes = bundle.path, bundle.manifest, bundle.classes
        self.preprocessor, self.size = bundle.preprocessor, bundle.size
        self.past_offsets, self.horizon = bundle.past_offsets, bundle.horizon
        self.frame_rate = bundle.frame_rate
        self.offsets_s = [o / self.frame_rate for o in self.past_offsets]
        self.horizon_s = self.horizon / self.frame_rate
        steps = [b - a for a, b in zip(self.past_offsets, self.past_offsets[1:])]
        self.spacing_s = min(steps) / self.frame_rate if steps else None
        self.decode_current = bool(current)
        self.reset()

    def reset(self):
        """Forget the stream: empty buffer, counters at zero (a Pipeline calls it at start)."""
        self.ring = FeatureRing(capacity_for(self.offsets_s[0], self.frame_rate))
        self.stats = ForecastStats(self.past_offsets, self.horizon, self.frame_rate)
        self._intervals = collections.deque(maxlen=16)
        self._interval = None
        self._last_time = None
        self._frames = 0
        self._warmup_run = 0
        self.source_slow = False

    # -- what the pipeline calls ------------------------------------------------------------

    def infer(self, tensor):
        """All three stages once on one tensor, leaving the stream untouched (warm-up, timing)."""
        bundle = self.bundle
        features = bundle.run_features(tensor)
        frame = ForecastFrame(0.0, self.horizon_s)
        frame.class_map = bundle.decode(bundle.forecast([features] * len(self.offsets_s)))
        frame.is_forecast = True
        return {RESULT_KEY: frame}

    def infer_at(self, tensor, frame_time):
        """One frame of the stream at ``frame_time`` (s; None: consecutive at the trained rate)."""
        bundle = self.bundle
        t0 = _clock()
        features = bundle.run_features(tensor)
        stage_ms = {"features": (_clock() - t0) * 1e3}
        if frame_time is None:
            frame_time = self._frames / self.frame_rate
        self._frames += 1
        self._observe(frame_time)
        self.ring.add(frame_time, features)
        tolerance = 0.5 * max(1.0 / self.frame_rate, self._interval or 0.0)
        picked, errors = self.ring.select(frame_time, self.offsets_s, tolerance)
        frame = ForecastFrame(frame_time, self.horizon_s)
        frame.time_errors = errors
        if picked is None:
            self._warmup_run += 1
            expected = self._expected_warmup(tolerance)
            frame.warmup = (self._warmup_run, max(self._warmup_run, expected))
        else:
            self._warmup_run = 0
            t0 = _clock()
            future = bundle.forecast([f for _, f in picked])
            t1 = _clock()
            frame.class_map = bundle.decode(future)
            t2 = _clock()
            frame.forecast_ms = (t2 - t0) * 1e3
            stage_ms["f2f"], stage_ms["decoder"] = (t1 - t0) * 1e3, (t2 - t1) * 1e3
            frame.picked_times = [t for t, _ in picked]
            frame.is_forecast = True
        if self.decode_current:
            t0 = _clock()
            frame.current_map = bundle.decode(features)
            stage_ms["decoder_current"] = (_clock() - t0) * 1e3
        frame.stage_ms = stage_ms
        return {RESULT_KEY: frame}

    def stream_summary(self):
        """The report's ``forecast`` block (merged into Pipeline.summary())."""
        return {"forecast": self.stats.summary(self._interval, self.source_slow,
                                               self.decode_current)}

    def step(self, frame_bgr, capture_time=None):
        """One BGR frame through the whole stream step, without a Pipeline: a ForecastFrame."""
        tensor, _, _ = self.preprocess(frame_bgr)
        return self.finish_frame(self.infer_at(tensor, capture_time))

    def describe(self):
        info = self.bundle.describe()
        info["current_segmentation"] = self.decode_current
        return info

    def close(self):
        self.bundle.close()

    # -- time bookkeeping -------------------------------------------------------------------

    def _observe(self, frame_time):
        """Track the source's frame interval (median of recent ones) and size the buffer to it."""
        last, self._last_time = self._last_time, frame_time
        if last is not None and frame_time < last:  # a new stream (e.g. a file started over)
            self.ring.clear()
            self._intervals.clear()
            self._warmup_run = 0
            return
        if last is None or frame_time == last:
            return
        self._intervals.append(frame_time - last)
        ordered = sorted(self._intervals)  # a median of <= 16 values: cheaper than numpy's
        middle = len(ordered) // 2
        interval = (ordered[middle] if len(ordered) % 2
                    else 0.5 * (ordered[middle - 1] + ordered[middle]))
        if interval == self._interval:
            return
        self._interval = interval
        capacity = capacity_for(self.offsets_s[0], self.frame_rate, 1.0 / interval)
        if capacity > self.ring.capacity:
            self.ring.resize(capacity)
        if (self.spacing_s is not None and not self.source_slow
                and self._interval > self.spacing_s * 1.01):
            self.source_slow = True
            log.warning("forecast: source frames come every %.0f ms, but the forecaster's past "
                        "frames are %.0f ms apart (trained at %.1f Hz): going on with the nearest "
                        "frames (some past frames repeat)", self._interval * 1e3,
                        self.spacing_s * 1e3, self.frame_rate)

    def _expected_warmup(self, tolerance):
        """Frames a stream needs before its first forecast, at the current source interval."""
        interval = self._interval or 1.0 / self.frame_rate
        span = -self.offsets_s[0]
        return max(0, int(math.ceil((span - tolerance) / interval - 1e-6)))
