"""What one forecast frame gives, and the counts of a forecast run for its report.

A frame is either a *forecast* (every past offset was served: the class map is the
segmentation expected ``horizon`` frames later) or *warm-up* (not enough history yet:
no forecast). The report says how many of each, how far the picked past frames were
from the times the forecaster was trained on, and what the forecast stages cost. ForecastTask
is the family's hooks: its counters come from the engine (``stream_summary``), its frames'
ForecastFrame reaches the visualizer as ``details``.
"""
import numpy as np

from runtime.engine_base import EngineBase
from runtime.manifest import FORECAST_STAGES
from runtime.errors import UserError
from runtime.stats import Series, ms_text
from runtime.tasks.base import Task
from runtime.visualize import Visualizer, draw_hud, panel_label

VIEWS = ("overlay", "side-by-side")
RESULT_KEY = "forecast"  # the ForecastFrame in the outputs dict the engine hands the pipeline

NEAREST_TIME = "nearest_time"
TRAINED_RATE = "trained_rate"
_RATE_MATCH = 0.01     # a source within 1 % of the trained rate runs at the trained rate
_ON_GRID_S = 1e-3      # picked frames within 1 ms of their targets are on the trained grid


class ForecastFrame(object):
    """One frame of a forecast stream.

    time: the frame's capture (or media) time, s; target_time: time + horizon, the time
    the forecast is for; is_forecast: False during warm-up; class_map: (H, W) uint8
    forecast class map (None in warm-up); current_map: the current frame's segmentation
    when the engine was asked for it, else None; forecast_ms: f2f + decoder time (None in
    warm-up); time_errors: picked minus target time per past offset, s (oldest first;
    None where nothing was buffered); picked_times: capture times of the picked past
    frames; warmup: (index, expected total) of this warm-up frame, None for a forecast;
    stage_ms: ms per stage run for this frame (``features``; ``f2f`` and ``decoder`` for a
    forecast; ``decoder_current`` when the current frame was decoded), for rt-bench.
    """

    __slots__ = ("time", "target_time", "horizon_s", "is_forecast", "class_map", "current_map",
                 "forecast_ms", "time_errors", "picked_times", "warmup", "stage_ms")

    def __init__(self, time, horizon_s):
        self.time, self.horizon_s = time, horizon_s
        self.target_time = time + horizon_s
        self.is_forecast = False
        self.class_map = self.current_map = None
        self.forecast_ms = None
        self.time_errors, self.picked_times = [], None
        self.warmup = None
        self.stage_ms = {}


def stage_names(engine):
    """The stage rows rt-bench times for a bundle's engine (runtime.bench.ForecastRunner), in order."""
    return FORECAST_STAGES + (("decoder_current",) if engine.decode_current else ())


def stage_timings(engine, frame):
    """rt-bench's sub-timings of one forecast ``frame``: ms per stage, and each stage backend's
    own timings as ``<stage>.<key>`` (e.g. ``f2f.compute`` on TensorRT)."""
    timings = dict(frame.stage_ms)
    for stage, backend in engine.bundle.backends.items():
        for key, value in (getattr(backend, "last_timings", None) or {}).items():
            timings["{}.{}".format(stage, key)] = value
    return timings


def stage_info(engine):
    """Each stage's artifact, precision and backend, for rt-bench's report."""
    bundle = engine.bundle
    details = {}
    for stage in FORECAST_STAGES:
        backend = bundle.backends[stage].describe()
        details[stage] = {"file": bundle.stage_paths[stage],
                          "precision": bundle.stages[stage].precision,
                          "backend": backend.get("backend"), "version": backend.get("version"),
                          "providers": backend.get("providers")}
    return details


class ForecastStats(object):
    """Forecast and warm-up frames, time errors of the picked frames, f2f + decoder latency."""

    def __init__(self, past_offsets, horizon, frame_rate):
        self.past_offsets, self.horizon, self.frame_rate = past_offsets, horizon, frame_rate
        self.frames_forecast = self.frames_warmup = 0
        self.latency = Series()
        self.error_max = 0.0
        self.error_sum = 0.0
        self.error_count = 0

    def update(self, frame):
        """Count one processed frame (a ForecastFrame)."""
        if not frame.is_forecast:
            self.frames_warmup += 1
            return
        self.frames_forecast += 1
        self.latency.add(frame.forecast_ms)
        for offset, err in zip(self.past_offsets, frame.time_errors):
            if offset != 0:  # offset 0 is the current frame itself: error 0 by construction
                self.error_max = max(self.error_max, abs(err))
                self.error_sum += abs(err)
                self.error_count += 1

    def summary(self, source_interval=None, source_slow=False, current=False):
        """A JSON-ready dict for the report's ``forecast`` block (docs/report-schema.md)."""
        rate = self.frame_rate
        source_rate = 1.0 / source_interval if source_interval else None
        errors = self.error_count > 0
        off_rate = source_rate is not None and abs(source_rate - rate) > _RATE_MATCH * rate
        off_grid = errors and self.error_max > _ON_GRID_S
        selection = NEAREST_TIME if (off_rate or off_grid or source_slow) else TRAINED_RATE
        return {
            "frames_forecast": self.frames_forecast,
            "frames_warmup": self.frames_warmup,
            "horizon": {"frames": self.horizon, "s": self.horizon / rate},
            "past_offsets": {"frames": list(self.past_offsets),
                             "s": [o / rate for o in self.past_offsets]},
            "frame_rate": rate,
            "source_rate": source_rate,
            "time_error_ms": {"mean": self.error_sum / self.error_count * 1e3 if errors else None,
                              "max": self.error_max * 1e3 if errors else None},
            "latency_ms": self.latency.summary(),
            "frame_selection": selection,
            "source_slower_than_offsets": bool(source_slow),
            "current_segmentation": bool(current),
            "note": _note(selection, rate, source_rate, source_slow, self.past_offsets,
                          self.error_max * 1e3 if errors else None),
        }


def _note(selection, rate, source_rate, source_slow, offsets, error_max_ms):
    """One sentence for a person reading the report, or None when frames sat on the grid."""
    if selection == TRAINED_RATE:
        return None
    parts = []
    if source_rate is not None:
        parts.append("source at {:.1f} Hz, forecaster trained at {:.1f} Hz".format(
            source_rate, rate))
    parts.append("past frames picked by nearest capture time")
    if error_max_ms is not None:
        parts.append("up to {:.1f} ms from the trained offsets".format(error_max_ms))
    if source_slow:
        spacing = min(b - a for a, b in zip(offsets, offsets[1:])) / rate * 1e3
        parts.append("the source's frames are further apart than the {:.0f} ms between the "
                     "past frames, so some past frames repeat".format(spacing))
    return "; ".join(parts)


class ForecastOutputs(EngineBase):
    """How a forecast engine's per-frame outputs reach the pipeline (runtime.backends.native.
    NativeForecastEngine): one ForecastFrame under RESULT_KEY, counted once."""

    stateful = True

    def postprocess(self, outputs):
        """The forecast class map (None for a warm-up frame)."""
        return outputs[RESULT_KEY].class_map

    def finish_frame(self, outputs):
        """Count a processed frame (once each, in order) and return its ForecastFrame."""
        frame = outputs[RESULT_KEY]
        self.stats.update(frame)
        return frame


def check_view(view):
    if view not in VIEWS:
        raise UserError("unknown --forecast-view {!r}; use one of {}".format(view, ", ".join(VIEWS)))
    return view


class ForecastVisualizer(Visualizer):
    """Pictures of a forecast stream: the forecast over the current frame, or now | forecast.

    ``view``: ``overlay`` (the forecast class map blended over the current frame) or
    ``side-by-side`` (the current segmentation left, the forecast right; the engine must
    decode the current frame: runtime.open_engine(bundle, current=True)). Warm-up frames show the
    plain frame. The HUD (overlay) or the panel captions (side-by-side) say
    ``forecast +0.60 s`` or ``warm-up 3/9``.
    """

    def __init__(self, manifest, view="overlay", alpha=0.5, legend=True, hud=True):
        check_view(view)
        Visualizer.__init__(self, manifest, mode="side-by-side" if view == "side-by-side"
                            else "overlay", alpha=alpha, legend=legend, hud=hud)
        self.view = view

    def render(self, frame, class_map, hud_text=None, details=None, **extras):
        """``details``: the frame's ForecastFrame (None: drawn as a warm-up frame)."""
        height, width = frame.shape[:2]
        forecasting = details is not None and details.is_forecast
        label = _forecast_label(details)
        forecast = self.blend(frame, class_map if forecasting else None)
        out_h, out_w = self.output_size((height, width))
        image = np.empty((out_h, out_w, 3), dtype=np.uint8)
        if self.view == "side-by-side":
            image[:, :width] = self.blend(frame, details.current_map if details else None)
            image[:, width:2 * width] = forecast
            right = 2 * width
            if self.hud:
                panel_label(image, "now", 0, width)
                panel_label(image, label, width, width)
        else:
            image[:, :width] = forecast
            right = width
        if self.legend:
            image[:, right:] = self.legend_panel(height)
        if self.hud:
            if self.view == "overlay":
                hud_text = label + ("  " + hud_text if hud_text else "")
            if hud_text:
                draw_hud(image, hud_text)
        return image


def _forecast_label(details):
    if details is None:
        return "warm-up"
    if details.is_forecast:
        return "forecast {:+.2f} s".format(details.horizon_s)
    if details.warmup:
        return "warm-up {}/{}".format(*details.warmup)
    return "warm-up"


class ForecastTask(Task):
    """A forecast bundle: the engine counts its frames (ForecastStats) and reports them under
    RESULT_KEY; each frame's ForecastFrame is the result's ``details``."""

    name = "forecast"
    report_key = RESULT_KEY

    def add_arguments(self, group):
        group.add_argument("--forecast-view", metavar="VIEW",
                           help="forecast bundles: overlay (the forecast over the current frame, "
                                "default) or side-by-side (current segmentation | forecast)")

    def options(self, args):
        return {"forecast_view": args.forecast_view}

    def check_options(self, options):
        if options.get("forecast_view") is not None:
            check_view(options["forecast_view"])

    def check_engine_options(self, options, engine, task):
        if task is self and options.get("mode", "overlay") != "overlay":
            raise UserError("--visualize: {} is a forecast bundle; its views are --forecast-view "
                            "{}".format(engine.path, "|".join(VIEWS)))
        if task is not self and options.get("forecast_view") is not None:
            raise UserError("--forecast-view: {} is not a forecast bundle (manifest task {!r})"
                            .format(engine.path, task.name))

    def evaluate(self, engine_path, data, split, options, **common):
        """Forecast vs copy-last vs oracle on a sequence folder (runtime.forecast_eval)."""
        from runtime import forecast_eval  # rt-eval only: not on every engine open
        return forecast_eval.evaluate_bundle(engine_path, data, split, **common)

    def eval_lines(self, result):
        from runtime import forecast_eval  # rt-eval only: not on every engine open
        return forecast_eval.result_lines(result)

    def open_options(self, options):
        """The current frame is decoded too when the side-by-side view shows it."""
        return {"current": options.get("forecast_view") == "side-by-side"}

    def visualizer(self, manifest, options, **common):
        """Only ``alpha``, ``legend`` and ``hud`` of ``common`` apply: the views are
        ``forecast_view`` (overlay, the default, or side-by-side)."""
        kept = dict((k, v) for k, v in common.items() if k in ("alpha", "legend", "hud"))
        return ForecastVisualizer(manifest, view=options.get("forecast_view") or "overlay", **kept)

    def ros_topics(self, engine, settings):
        return ["forecast"]

    def ros_class_map(self, result):
        """~/class_map is the current frame's segmentation (when the engine decodes it)."""
        return getattr(result.details, "current_map", None)

    def ros_publish(self, publisher, result, header_in, header, sized):
        """~/forecast (mono8), stamped with the time it is for: the input's + the horizon."""
        if result.class_map is not None and publisher._subscribed("forecast"):
            publisher._publish("forecast", publisher.stamped(header_in, publisher.engine.horizon_s),
                               sized(result.class_map, publisher.fill_id), "mono8")

    def report_lines(self, block):
        latency = block.get("latency_ms") or {}
        lines = ["forecast +{:.2f} s: {} frames forecast, {} warm-up; f2f + decoder p50 {} ms".format(
            block["horizon"]["s"], block["frames_forecast"], block["frames_warmup"],
            ms_text(latency, "p50"))]
        if block.get("note"):
            lines.append("  " + block["note"])
        return lines


TASK = ForecastTask()
