"""The native backend: whole engines run by libswiftrt (the C core) through ctypes.

Why whole engines and not a tensor-in/tensor-out backend: the core's job is what vehicle
software links, i.e. frame in (any size, BGR or RGB) -> resize, colour order, normalization and
layout as the manifest says -> inference -> class map / outlier score / forecast out. So
``--backend native`` hands the camera frame itself to ``srt_engine_run``; the Python side only
fits a copy of the frame for display (runtime/core_preprocess.py: srt_preprocess, the core's
own preprocessing). ctypes releases the GIL during every call into the library.

``NativeEngine`` (segmentation and outlier engines) and ``NativeForecastEngine`` (forecast bundles)
have the engine protocol of runtime.engine_base, so rt-segment, rt-eval, rt-bench and rt-ros2 run
them; ``runtime.open_engine(path)`` picks one.

The library itself (where it is found, its structs and prototypes): runtime/libswiftrt.py.
"""
import collections
import ctypes
import logging
import math
import os

import numpy as np

from runtime import backends as backends_mod
from runtime import manifest as manifest_mod
from runtime.manifest import Manifest
from runtime.tasks import outlier as outlier_mod
from runtime import result as result_mod
from runtime.engine_base import EngineBase
from runtime.errors import ManifestError, UserError
from runtime.tasks.forecast import ForecastOutputs
from runtime.core_preprocess import Preprocessor
from runtime.libswiftrt import (ClassInfo, EngineInfo, Frame, OpenOptions, Result,
                                check as _check, frame_struct, load_library, version)

log = logging.getLogger(__name__)

NAME = "native"
CLASS_MAP = "class_map"          # keys of the outputs dict a native engine returns
OUTLIER_SCORE = "outlier_score"

_RESIZE = {None: 0, "stretch": 1, "letterbox": 2, "crop": 3}
_TASKS = {1: "segmentation", 2: "outlier", 3: "forecast"}


class CoreEngine(object):
    """One ``srt_engine`` handle: open, info, classes, run a BGR frame, reset, close."""

    def __init__(self, path, threads=None, resize=None, outlier_threshold=None, current=False,
                 backend="auto", providers=None, spin=None, allow_legacy=False):
        """``backend``: "auto" or a core backend's name (runtime.backends); ``providers``: ONNX Runtime execution providers
        (a list or a comma string, e.g. "tensorrt,cuda,cpu"); ``spin``: ONNX Runtime's intra-op
        spinning (None: the core's default, on for one model, off for a bundle's stages); ``allow_legacy``: also open manifests without their own
        digest and artifacts without a recorded sha256 (exported before both were written)."""
        if resize not in _RESIZE:
            raise UserError("unknown resize mode {!r}; use one of stretch, letterbox, crop".format(
                resize))
        code = backends_mod.backend_code(backend)
        self.lib = lib = load_library()
        self.threads = int(threads) if threads else None
        self.providers = providers if isinstance(providers, (str, type(None))) else ",".join(providers)
        options = OpenOptions()
        _check(lib, lib.srt_open_options_init_sized(ctypes.byref(options), ctypes.sizeof(options)),
               "srt_open_options_init_sized")
        options.backend = code
        options.threads = int(threads or 0)
        options.resize = _RESIZE[resize]
        if outlier_threshold is not None:
            options.use_outlier_threshold = 1
            options.outlier_threshold = float(outlier_threshold)
        options.decode_current = 1 if current else 0
        if spin is not None:
            options.spin = 1 if spin else 0
        if providers:
            if not isinstance(providers, str):
                providers = ",".join(providers)
            options.providers = providers.encode()
        options.allow_legacy = 1 if allow_legacy else 0
        handle = ctypes.c_void_p()
        _check(lib, lib.srt_engine_open(str(path).encode(), ctypes.byref(options),
                                        ctypes.byref(handle)))
        self.handle = handle
        try:  # a failure after the open must not leak the engine
            info = EngineInfo()
            info.struct_size = ctypes.sizeof(EngineInfo)
            _check(lib, lib.srt_engine_info(handle, ctypes.byref(info)), "srt_engine_info")
            self.info = info
            self.task = _TASKS.get(info.task)
            self.output_hw = (info.output_height, info.output_width)
            self.input_hw = (info.input_height, info.input_width)
            self.backend_name = info.backend_name.decode()
            backends_mod.note_opened(self.backend_name)
            self.classes = []
            for index in range(info.num_classes):
                cls = ClassInfo()
                cls.struct_size = ctypes.sizeof(ClassInfo)
                _check(lib, lib.srt_engine_class(handle, index, ctypes.byref(cls)), "srt_engine_class")
                self.classes.append({"id": cls.id, "name": cls.name.decode(), "color": list(cls.color)})
        except BaseException:
            self.close()
            raise
        self.last_result = None

    def run(self, frame, timestamp=None, class_map=True, outlier=False, forecast=False):
        """BGR uint8 (H, W, 3) frame -> dict of fresh arrays ``class_map`` / ``outlier_score``
        / ``outlier_mask`` / ``forecast_map`` (those asked for); ``self.last_result`` has the
        timings and forecast fields."""
        f, frame = self._frame(frame, timestamp)
        r, out = self._result(class_map, outlier, forecast)
        _check(self.lib, self.lib.srt_engine_run(self.handle, ctypes.byref(f), ctypes.byref(r)),
               "srt_engine_run")
        self.last_result = r
        return out

    def run_batch(self, frames, outlier=False):
        """Several cameras' BGR frames (None: no new frame) in one srt_engine_run_batch call ->
        one dict of fresh arrays per frame (None for None); ``self.last_results`` has each
        one's srt_result (None for None). A library without the call (ABI 1.0) runs a loop."""
        if not hasattr(self.lib, "srt_engine_run_batch"):
            outs = [None if f is None else self.run(f, outlier=outlier) for f in frames]
            self.last_results = [None if f is None else self.last_result for f in frames]
            return outs
        count = len(frames)
        frame_ptrs = (ctypes.POINTER(Frame) * count)()
        result_ptrs = (ctypes.POINTER(Result) * count)()
        keep, outs, results = [], [], []
        for i, frame in enumerate(frames):
            if frame is None:
                outs.append(None)
                results.append(None)
                continue
            f, array = self._frame(frame, None)
            r, out = self._result(True, outlier, False)
            keep.append((f, array))
            frame_ptrs[i] = ctypes.pointer(f)
            result_ptrs[i] = ctypes.pointer(r)
            outs.append(out)
            results.append(r)
        _check(self.lib, self.lib.srt_engine_run_batch(self.handle, frame_ptrs, count, result_ptrs),
               "srt_engine_run_batch")
        self.last_results = results
        return outs

    def _frame(self, frame, timestamp):
        return frame_struct(frame, timestamp)

    def _result(self, class_map, outlier, forecast):
        """(srt_result with fresh buffers for the outputs asked for, {name: array})."""
        r = Result()
        r.struct_size = ctypes.sizeof(Result)
        out = {}
        h, w = self.output_hw
        for key, wanted, dtype, field in ((CLASS_MAP, class_map, np.uint8, "class_map"),
                                          (OUTLIER_SCORE, outlier, np.float32, "outlier_score"),
                                          ("outlier_mask", outlier, np.uint8, "outlier_mask"),
                                          ("forecast_map", forecast, np.uint8, "forecast_map")):
            if wanted:
                array = np.empty((h, w), dtype=dtype)
                out[key] = array
                setattr(r, field, array.ctypes.data)
                setattr(r, field + "_size", array.nbytes)
        return r, out

    def reset(self):
        _check(self.lib, self.lib.srt_engine_reset(self.handle), "srt_engine_reset")

    def close(self):
        if self.handle is not None and self.handle.value:
            self.lib.srt_engine_close(self.handle)
        self.handle = None


class NativeBackend(object):
    """The ``backend`` of a NativeEngine: what rt-bench times and reports.

    ``run(feeds)`` takes the frame under the engine's input name (a BGR frame, any size:
    the core fits it) and returns the core's outputs; ``last_timings`` are the core's own
    per-stage times of that call (ms).
    """

    name = NAME

    def __init__(self, core, input_name):
        self.core = core
        self.input_name = input_name
        self.outlier = bool(core.info.has_outlier_score)
        self.last_timings = {}

    def run(self, feeds):
        out = self.core.run(feeds[self.input_name], outlier=self.outlier)
        r = self.core.last_result
        self.last_timings = {"core.preprocess": r.preprocess_ms, "core.inference": r.inference_ms,
                             "core.postprocess": r.postprocess_ms}
        return out

    def describe(self):
        return {"backend": NAME, "version": version(), "core_backend": self.core.backend_name,
                "library": self.core.lib.path, "threads": self.core.threads,
                "providers": self.core.providers}

    def close(self):
        self.core.close()


class NativeEngine(EngineBase):
    """A segmentation or outlier engine run by libswiftrt (runtime.engine_base's protocol)."""

    def __init__(self, path, threads=None, resize=None, outlier_threshold=None, backend="auto",
                 providers=None, allow_legacy=False):
        self.path = str(path)
        self.manifest = Manifest.load(self.path, allow_legacy=allow_legacy)
        result_mod.refuse_forecast_parts(self.path, self.manifest)
        self.artifact = manifest_mod.resolve(self.path)[0]
        self.core = CoreEngine(self.path, threads=threads, resize=resize,
                               outlier_threshold=outlier_threshold, backend=backend,
                               providers=providers, allow_legacy=allow_legacy)
        self.input_name = self.manifest.input.name
        self.backend = NativeBackend(self.core, self.input_name)
        if self.core.backend_name.startswith("openvino") and \
                self.manifest.quantization.get("flavor") == "cpu":
            log.warning("warning: %s: this INT8 engine is the cpu flavor, rewritten for ONNX Runtime; "
                        "OpenVINO runs the plain QDQ of rt-export --precision int8 --flavor trt faster",
                        os.path.basename(self.path))
        # Only to show the frame the network saw (the core fits its own copy, identically).
        self.preprocessor = Preprocessor(self.manifest.input, resize=resize)
        self.size = self.core.input_hw
        self.batch_size = self.manifest.batch   # frames one inference takes (srt_engine_run_batch)
        self.classes = self.manifest.classes
        self.class_map_output = self.manifest.output("class_map")
        self.logits_output = self.manifest.output("logits")
        self.outlier_output = outlier_mod.score_output(self.manifest)
        self.outlier_threshold = (float(self.core.info.outlier_threshold)
                                  if self.outlier_output is not None else None)

    def preprocess(self, frame):
        """BGR frame -> (the frame itself: the core fits it, fitted frame for display, Fit)."""
        fitted, fit = self.preprocessor.fit(frame)
        return frame, fitted, fit

    def infer(self, frame):
        """A BGR frame -> {``class_map``: (H, W) uint8, ``outlier_score``: (H, W) float32}."""
        return self.backend.run({self.input_name: frame})

    def infer_batch(self, frames):
        """Several cameras' BGR frames (None: no new frame) through the core in one call
        (srt_engine_run_batch) -> one output dict per frame (None for None)."""
        return self.core.run_batch(frames, outlier=self.backend.outlier)

    def postprocess(self, outputs):
        return outputs[CLASS_MAP]

    def outlier_score(self, outputs):
        return outputs.get(OUTLIER_SCORE) if self.outlier_output is not None else None

    def segment(self, frame):
        """One BGR frame through the core; a runtime.result.Result with the core's timings."""
        _, fitted, fit = self.preprocess(frame)
        outputs = self.infer(frame)
        r = self.core.last_result
        timings = {"preprocess": r.preprocess_ms, "inference": r.inference_ms,
                   "postprocess": r.postprocess_ms}
        return result_mod.Result(fitted, outputs[CLASS_MAP], outputs, timings, fit,
                                self.outlier_score(outputs), fitted=fitted)

    def dummy_input(self, seed=0):
        """A random BGR frame of the network's size (what rt-bench feeds every call)."""
        h, w = self.size
        return np.random.RandomState(seed).randint(0, 256, size=(h, w, 3)).astype(np.uint8)

    def describe(self):
        info = dict(self.backend.describe())
        info.update({"engine": self.artifact, "arch": self.manifest.arch,
                     "task": self.manifest.task, "precision": self.manifest.precision,
                     "input_size": list(self.size)})
        return info

    def close(self):
        self.backend.close()


class _StageBackend(object):
    """What rt-bench's ForecastRunner asks of a bundle stage's backend: a description."""

    name = NAME
    last_timings = None

    def __init__(self, core):
        self.core = core

    def describe(self):
        return {"backend": NAME, "version": version(), "core_backend": self.core.backend_name}

    def close(self):
        pass


class _NativeBundle(object):
    """The ``bundle`` attribute rt-bench reads: manifests and stage paths, backends = the core."""

    def __init__(self, path, core, allow_legacy=False):
        self.path = manifest_mod.resolve(path)[1]
        self.manifest = Manifest.load(path, allow_legacy=allow_legacy)
        folder = os.path.dirname(os.path.abspath(self.path))
        stages = self.manifest.stages
        self.stage_paths = collections.OrderedDict(
            (name, os.path.join(folder, stages[name])) for name in manifest_mod.FORECAST_STAGES)
        self.stages = dict((name, Manifest.load(p, allow_legacy=allow_legacy))
                           for name, p in self.stage_paths.items())
        self.backends = dict((name, _StageBackend(core)) for name in self.stage_paths)


class NativeForecastEngine(ForecastOutputs):
    """A forecast bundle run by libswiftrt: the three stages and the ring buffer of past
    features run inside the core (docs/forecast-bundle.md has the time-offset rules)."""

    def __init__(self, path, threads=None, resize=None, current=False, backend="auto",
                 providers=None, allow_legacy=False):
        from runtime.tasks.forecast import ForecastStats
        self.core = CoreEngine(path, threads=threads, resize=resize, current=current,
                               backend=backend, providers=providers,
                               allow_legacy=allow_legacy)
        if self.core.task != "forecast":
            raise ManifestError("{} is not a forecast bundle".format(path))
        self.bundle = _NativeBundle(path, self.core, allow_legacy)
        self.path, self.manifest = self.bundle.path, self.bundle.manifest
        self.classes = self.manifest.classes
        self.preprocessor = Preprocessor(self.bundle.stages["features"].input, resize=resize)
        self.size = self.core.input_hw
        self.past_offsets = self.manifest.past_offsets
        self.horizon = self.manifest.horizon
        self.frame_rate = float(self.manifest.frame_rate)
        self.offsets_s = [o / self.frame_rate for o in self.past_offsets]
        self.horizon_s = self.horizon / self.frame_rate
        steps = [b - a for a, b in zip(self.past_offsets, self.past_offsets[1:])]
        self.spacing_s = min(steps) / self.frame_rate if steps else None
        self.decode_current = bool(current)
        self._stats_class = ForecastStats
        self.reset()

    def reset(self):
        """A new stream: the core's ring buffer and the counters start empty."""
        self.core.reset()
        self.stats = self._stats_class(self.past_offsets, self.horizon, self.frame_rate)
        self._frames = 0
        self._warmup_run = 0
        self._last_time = None
        self._intervals = collections.deque(maxlen=16)
        self._interval = None
        self.source_slow = False

    def preprocess(self, frame):
        fitted, fit = self.preprocessor.fit(frame)
        return frame, fitted, fit

    def infer_at(self, frame, frame_time):
        """One frame of the stream at ``frame_time`` (s; None: consecutive at the trained rate)."""
        from runtime.tasks.forecast import RESULT_KEY
        from runtime.tasks.forecast import ForecastFrame
        if frame_time is None:
            frame_time = self._frames / self.frame_rate
        self._frames += 1
        self._observe(frame_time)
        out = self.core.run(frame, timestamp=frame_time, class_map=self.decode_current,
                            forecast=True)
        r = self.core.last_result
        result = ForecastFrame(frame_time, self.horizon_s)
        picked = [r.picked_times[i] for i in range(r.picked_count)]
        result.time_errors = [t - (frame_time + o) for t, o in zip(picked, self.offsets_s)]
        result.stage_ms = {"features": r.features_ms}
        if r.is_forecast:
            self._warmup_run = 0
            result.is_forecast = True
            result.class_map = out["forecast_map"]
            result.picked_times = picked
            result.forecast_ms = r.f2f_ms + r.decoder_ms
            result.stage_ms.update(f2f=r.f2f_ms, decoder=r.decoder_ms)
        else:
            self._warmup_run += 1
            result.warmup = (self._warmup_run, max(self._warmup_run, self._expected_warmup()))
        if self.decode_current:
            result.current_map = out[CLASS_MAP]
        return {RESULT_KEY: result}

    def infer(self, frame):
        """All stages once (warm-up, timing), then a fresh stream: the core cannot run a frame
        outside its ring, so the ring is emptied again (a warm-up frame at time 0 would
        otherwise stay in it and widen the picking tolerance of the stream that follows)."""
        outputs = self.infer_at(frame, None)
        self.reset()
        return outputs

    def stream_summary(self):
        return {"forecast": self.stats.summary(self._interval, self.source_slow, self.decode_current)}

    def step(self, frame_bgr, capture_time=None):
        """One BGR frame through the whole stream step: a ForecastFrame."""
        return self.finish_frame(self.infer_at(frame_bgr, capture_time))

    def dummy_input(self, seed=0):
        h, w = self.size
        return np.random.RandomState(seed).randint(0, 256, size=(h, w, 3)).astype(np.uint8)

    def describe(self):
        info = {"backend": NAME, "version": version(), "core_backend": self.core.backend_name,
                "engine": self.path, "arch": self.manifest.arch, "task": "forecast",
                "precision": self.manifest.precision, "input_size": list(self.size),
                "stages": dict(self.bundle.stage_paths), "past_offsets": list(self.past_offsets),
                "horizon": self.horizon, "frame_rate": self.frame_rate,
                "current_segmentation": self.decode_current}
        return info

    def close(self):
        self.core.close()

    def _observe(self, frame_time):
        """The source's frame interval (median of the recent ones), for the report, the warm-up
        count and a warning when it is slower than the past frames' spacing (the core keeps
        its own for picking)."""
        last, self._last_time = self._last_time, frame_time
        if last is not None and frame_time < last:  # a new stream (e.g. a file started over)
            self._intervals.clear()
            self._warmup_run = 0
        if last is None or frame_time <= last:
            return
        self._intervals.append(frame_time - last)
        ordered = sorted(self._intervals)  # a median of <= 16 values: cheaper than numpy's
        middle = len(ordered) // 2
        self._interval = (ordered[middle] if len(ordered) % 2
                          else 0.5 * (ordered[middle - 1] + ordered[middle]))
        if (self.spacing_s is not None and not self.source_slow
                and self._interval > self.spacing_s * 1.01):
            self.source_slow = True
            log.warning("forecast: source frames come every %.0f ms, but the forecaster's past "
                        "frames are %.0f ms apart (trained at %.1f Hz): going on with the nearest "
                        "frames (some past frames repeat)", self._interval * 1e3,
                        self.spacing_s * 1e3, self.frame_rate)

    def _expected_warmup(self):
        """Frames a stream needs before its first forecast, at the current source interval
        (the core picks a past frame within half the longer of the two intervals)."""
        interval = self._interval or 1.0 / self.frame_rate
        tolerance = 0.5 * max(1.0 / self.frame_rate, interval)
        return max(0, int(math.ceil((-self.offsets_s[0] - tolerance) / interval - 1e-6)))


def open_native_engine(path, backend=None, providers=None, threads=None, resize=None,
                       current=False, allow_legacy=False):
    """A NativeForecastEngine for a forecast bundle, else a NativeEngine. ``backend``: None or
    "native" (the core picks by file) or one of the core's backends (runtime.backends); the core
    refuses options a backend does not take (``providers`` anywhere but ONNX Runtime).
    ``allow_legacy``: also open exports older than the manifest digest (runtime.manifest)."""
    backend = "auto" if backend in backends_mod.AUTO + (None,) else backend
    backends_mod.backend_code(backend)  # an unknown name: one line before the manifest is read
    if manifest_mod.peek_task(path) == "forecast":
        return NativeForecastEngine(path, threads=threads, resize=resize, current=current,
                                    backend=backend, providers=providers,
                                    allow_legacy=allow_legacy)
    return NativeEngine(path, threads=threads, resize=resize, backend=backend,
                        providers=providers, allow_legacy=allow_legacy)
