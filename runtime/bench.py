"""rt-bench's measurement core: runners, warm-up, interleaved rounds, results.

A *runner* is one thing to time, behind a tiny interface:

    name, kind, includes      # includes: what one timed call covers, in words
    stages                    # names of the sub-timings that are stages of the call (or ())
    warmup()                  # one untimed call (default: run_once)
    run_once() -> dict|None   # one complete call; optional sub-timings in ms
    describe() -> dict        # versions, devices, threads (for the report)

``measure`` warms every runner up (warm-up never counts), then times them in
*rounds*: each round every runner makes its share of the calls, in an order rotated
from round to round, so that machine drift (thermal, other tenants, frequency
scaling) hits all runners alike. Every sample is ``time.perf_counter`` around
``run_once``, and ``run_once`` returns only when its results are on the host.

``results`` turns a measurement into plain dicts: latency statistics
(runtime.stats.summarize), throughput = 1000 / mean, ratio to the first runner,
sub-timings (TensorRT: H2D, GPU compute, D2H, enqueue from CUDA events), stages (a
forecast bundle's features, f2f and decoder), stability.

Device side: Python 3.6, numpy; never torch (the PyTorch peer lives in export/).
"""
import logging
import os
import platform
import time

from runtime import backends
from runtime import manifest as manifest_mod
from runtime import report
from runtime.errors import first_line
from runtime.stats import summarize

log = logging.getLogger(__name__)

SCHEMA = "rt-bench/1"
DEFAULT_ROUNDS = 10
DEFAULT_SETTLE_S = 0.1    # untimed pause between runners: spinning thread pools go idle
DEFAULT_REWARM = 1        # untimed calls at the start of each block when runners alternate
DEFAULT_CV_WARN = 0.10   # std / mean above which a latency is called unstable
DEFAULT_WARMUP_S = 1.0   # per runner, when neither --warmup nor --warmup-s is given
DEFAULT_DURATION_S = 5.0  # timed seconds per runner, when neither --iterations nor --duration


class Unavailable(Exception):
    """A peer that cannot run here (not installed, wrong artifact); reported, not fatal."""


# -- runners ------------------------------------------------------------------------------

class Runner(object):
    """Base runner: subclasses set name, kind, includes and implement run_once."""

    name = "runner"
    kind = "runner"
    includes = ""
    stages = ()

    def warmup(self):
        self.run_once()

    def run_once(self):
        raise NotImplementedError

    def describe(self):
        return {}

    def close(self):
        pass


class NoopRunner(Runner):
    """Does nothing: what the timing loop itself costs per iteration."""

    name = "no-op"
    kind = "no-op"
    includes = "nothing (the timing loop's own cost)"

    def run_once(self):
        return None


class CallRunner(Runner):
    """Times a plain callable (peers, tests)."""

    def __init__(self, name, call, kind="callable", includes="", info=None):
        self.name, self.kind, self.includes = name, kind, includes
        self._call = call
        self._info = dict(info or {})

    def run_once(self):
        self._call()
        return None

    def describe(self):
        return dict(self._info)


def core_includes(info):
    """What one srt_engine_run of an engine covers, from its ``describe()``: the core's own work
    and its backend's part, as runtime.backends declares it."""
    core = info.get("core_backend")
    return ("libswiftrt srt_engine_run ({}): BGR frame of the network size in, colour order / "
            "normalization / layout in C++, {}, class map out".format(
                core, backends.capability(core).includes))


class EngineRunner(Runner):
    """An engine fed a prepared input (the core: a frame of the network's size; TensorRT plans run
    on the core's TensorRT backend, which times them itself)."""

    kind = "engine"

    def __init__(self, engine, name=None):
        self.engine = engine
        self.name = name or os.path.basename(engine.path)
        self.tensor = engine.dummy_input()
        self.feeds = {engine.input_name: self.tensor}
        # What a peer on the same model is fed: the network's input tensor (the core takes the
        # frame itself and fits it; the tensor is the same frame prepared as the manifest says).
        self.network_input = engine.preprocessor.to_tensor(self.tensor)
        self.includes = core_includes(engine.backend.describe())

    def run_once(self):
        self.engine.backend.run(self.feeds)
        timings = getattr(self.engine.backend, "last_timings", None)
        return dict(timings) if timings else None

    def describe(self):
        return dict(self.engine.describe())


FORECAST_STAGES = manifest_mod.FORECAST_STAGES
_PRIMING_LIMIT = 1000   # frames a bundle may take to give its first forecast


def is_bundle(path):
    """Whether ``path`` (a manifest, artifact or folder) is a forecast bundle."""
    return manifest_mod.peek_task(path) == "forecast"


def bundle_name(path):
    """A forecast bundle's display name: its folder and manifest, e.g. f2f-mid_fp32/forecast.json."""
    manifest_path = os.path.abspath(manifest_mod.resolve(path)[1])
    return "{}/{}".format(os.path.basename(os.path.dirname(manifest_path)),
                          os.path.basename(manifest_path))


def forecast_includes(engine):
    """What one timed call of a forecast bundle covers (a ForecastRunner's ``includes``)."""
    how = core_includes(engine.describe()) + "; stages and feature ring inside the core"
    current = ("; + decoder of the current frame (current segmentation on)"
               if engine.decode_current else "; the current frame is not decoded")
    return ("one streamed frame once warmed up (infer_at at the trained rate, "
            "every past offset in the feature ring): features stage on a prepared {} {} tensor + "
            "ring buffer + f2f on the {} concatenated past feature maps + decoder of the forecast "
            "(class map out){}; {}".format(
                engine.manifest.input.dtype, engine.manifest.input.layout,
                len(engine.past_offsets), current, how))


class ForecastRunner(Runner):
    """A forecast bundle (runtime.backends.native.NativeForecastEngine) streamed frame after frame.

    One timed call is what one streamed frame costs once the stream is warmed up:
    ``infer_at`` on a prepared input tensor at the next frame time of the trained rate,
    i.e. features stage + ring buffer + f2f + decoder of the forecast. Its stage times come
    back as sub-timings named by ``stages`` (and, on TensorRT, ``<stage>.compute`` etc.).
    The first warm-up call first streams the frames the ring needs (untimed); a timed call
    that is not a forecast is an error, never a sample.
    """

    kind = "forecast"

    def __init__(self, engine, name=None):
        from runtime.tasks import forecast
        self.engine = engine
        self.name = name or bundle_name(engine.path)
        self.tensor = engine.dummy_input()
        self._task = forecast
        self.stages = forecast.stage_names(engine)
        self.includes = forecast_includes(engine)
        self.priming_frames = 0
        self._key = forecast.RESULT_KEY
        self._index = 0
        self._primed = False

    def _step(self):
        engine = self.engine
        outputs = engine.infer_at(self.tensor, self._index / engine.frame_rate)
        self._index += 1
        return outputs[self._key]

    def warmup(self):
        if self._primed:
            self.run_once()
            return
        for _ in range(_PRIMING_LIMIT):
            self.priming_frames += 1
            if self._step().is_forecast:
                self._primed = True
                return
        raise RuntimeError("{}: no forecast after {} frames at the trained rate".format(
            self.name, _PRIMING_LIMIT))

    def run_once(self):
        frame = self._step()
        if not frame.is_forecast:
            raise RuntimeError("{}: a timed frame was a warm-up frame (no forecast): the stream "
                               "was not warmed up".format(self.name))
        return self._task.stage_timings(self.engine, frame)

    def describe(self):
        info = dict(self.engine.describe())
        info.update(stage_info=self._task.stage_info(self.engine), priming_frames=self.priming_frames)
        return info


class OpenVinoRunner(Runner):
    """OpenVINO's own Python API on the same ONNX file and input tensors: a peer a user would
    otherwise pick (the engines themselves run in libswiftrt, OpenVINO included)."""

    kind = "peer"

    def __init__(self, onnx_path, feeds, threads=None, precision="f32", device="CPU"):
        try:
            import openvino
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            compiled = openvino.Core().compile_model(str(onnx_path), device, config)
        except ImportError:
            raise Unavailable("OpenVINO is not installed (pip install openvino)")
        except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses
            raise Unavailable("OpenVINO cannot compile {}: {}".format(onnx_path, first_line(exc)))
        self.request = compiled.create_infer_request()
        self.info = {"backend": "openvino", "version": openvino.__version__, "device": device,
                     "threads": threads, "precision_hint": precision}
        self.name = "openvino-{}".format(precision)
        self.feeds = dict(feeds)
        self.includes = ("OpenVINO {} infer() (precision hint {}), outputs copied to the host; the "
                         "same ONNX graph and input".format(device, precision))

    def run_once(self):
        self.request.infer(self.feeds)
        return None

    def describe(self):
        return dict(self.info)


# -- measurement --------------------------------------------------------------------------

class Record(object):
    """What was measured for one runner: samples (ms), sub-timings, timed windows."""

    def __init__(self, runner):
        self.runner = runner
        self.samples = []
        self.sub = {}
        self.windows = []       # (t_start, t_end) of each timed segment, clock seconds
        self.segments = []      # (first, end) sample indices of each segment, one per round
        self.warmup_calls = 0
        self.warmup_s = 0.0

    def add_sub(self, timings):
        for key, value in timings.items():
            self.sub.setdefault(key, []).append(value)


class Measurement(object):
    """Records per runner (in the given order), the segment order and the settings."""

    def __init__(self, records, order, settings):
        self.records = records
        self.order = order          # [(round, runner index)] in the order segments ran
        self.settings = settings


def measure(runners, warmup_iters=None, warmup_s=None, iterations=None, duration=None,
            rounds=DEFAULT_ROUNDS, clock=time.perf_counter, settle_s=None, sleep=time.sleep,
            rewarm=None):
    """Warm up, then time ``runners`` interleaved in rounds.

    Warm-up: ``warmup_iters`` calls or ``warmup_s`` seconds per runner (at least one
    call; default DEFAULT_WARMUP_S). Timed: ``iterations`` calls per runner, spread over
    ``rounds`` rounds, or ``duration`` timed seconds per runner (default
    DEFAULT_DURATION_S), each round getting duration / rounds. Round r runs the runners
    starting at index r mod n. Between two runners' blocks the loop pauses ``settle_s``
    (default DEFAULT_SETTLE_S, untimed): thread pools that spin after their work (PyTorch's
    OpenMP, ONNX Runtime's) would otherwise steal the CPU from the next runner's first calls.
    Each block then starts with ``rewarm`` untimed calls (default DEFAULT_REWARM): the runner
    before it evicted this one's weights and buffers from the caches, which a stream never
    sees.
    """
    runners = list(runners)
    settle_s = DEFAULT_SETTLE_S if settle_s is None else float(settle_s)
    rewarm = DEFAULT_REWARM if rewarm is None else max(0, int(rewarm))
    if not runners:
        raise ValueError("nothing to measure")
    if warmup_iters is not None and warmup_s is not None:
        raise ValueError("give warmup_iters or warmup_s, not both")
    if iterations is not None and duration is not None:
        raise ValueError("give iterations or duration, not both")
    if warmup_iters is None and warmup_s is None:
        warmup_s = DEFAULT_WARMUP_S
    if iterations is None and duration is None:
        duration = DEFAULT_DURATION_S
    rounds = max(1, int(rounds))
    if iterations is not None:
        iterations = int(iterations)
        if iterations < 1:
            raise ValueError("iterations must be at least 1")
        rounds = min(rounds, iterations)
    records = [Record(r) for r in runners]

    for record in records:
        _warm_up(record, warmup_iters, warmup_s, clock)

    order = []
    n = len(records)
    for rnd in range(rounds):
        for k in range(n):
            index = (rnd + k) % n
            order.append((rnd, index))
            if n > 1 and settle_s > 0:
                sleep(settle_s)
            for _ in range(rewarm if n > 1 else 0):
                records[index].runner.warmup()
            if iterations is not None:
                calls = iterations // rounds + (1 if rnd < iterations % rounds else 0)
                _timed(records[index], calls, None, clock)
            else:
                _timed(records[index], None, float(duration) / rounds, clock)
    settings = {"warmup_iters": warmup_iters, "warmup_s": warmup_s, "iterations": iterations,
                "duration_s": duration, "rounds": rounds, "runners": n, "settle_s": settle_s,
                "rewarm_calls": rewarm if n > 1 else 0}
    return Measurement(records, order, settings)


def _warm_up(record, iterations, seconds, clock):
    start = clock()
    calls = 0
    while True:
        record.runner.warmup()
        calls += 1
        if iterations is not None:
            if calls >= iterations:
                break
        elif clock() - start >= seconds:
            break
    record.warmup_calls = calls
    record.warmup_s = clock() - start


def _timed(record, calls, seconds, clock):
    """One segment: ``calls`` timed calls, or calls until ``seconds`` have passed (>= 1)."""
    run = record.runner.run_once
    samples = record.samples
    first = len(samples)
    start = clock()
    deadline = None if calls is not None else start + seconds
    done = 0
    while True:
        t0 = clock()
        sub = run()
        t1 = clock()
        samples.append((t1 - t0) * 1e3)
        if sub:
            record.add_sub(sub)
        done += 1
        if (deadline is None and done >= calls) or (deadline is not None and t1 >= deadline):
            break
    record.windows.append((start, clock()))
    record.segments.append((first, len(samples)))


def paired_ratio(record, reference):
    """Median over rounds of (this runner's mean / the reference's mean in the same round).

    Robust to drift: a slow phase of the machine scales both sides of a round alike.
    """
    ratios = []
    for (a0, a1), (b0, b1) in zip(record.segments, reference.segments):
        if a1 > a0 and b1 > b0:
            mine = sum(record.samples[a0:a1]) / (a1 - a0)
            ref = sum(reference.samples[b0:b1]) / (b1 - b0)
            if ref > 0:
                ratios.append(mine / ref)
    if not ratios:
        return None
    ratios.sort()
    mid = len(ratios) // 2
    return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2.0


def loop_overhead(iterations=20000, rounds=DEFAULT_ROUNDS, clock=time.perf_counter):
    """The timing loop's own cost with a no-op runner, in ms per iteration.

    ``timed_ms``: what a timed sample is inflated by (clock reads + the call);
    ``loop_ms``: the whole per-iteration cost, wall time / calls.
    """
    m = measure([NoopRunner()], warmup_iters=100, iterations=iterations, rounds=rounds,
                clock=clock)
    rec = m.records[0]
    wall = sum(t1 - t0 for t0, t1 in rec.windows)
    stats = summarize(rec.samples)
    return {"iterations": len(rec.samples), "timed_ms": stats["mean"], "timed_p99_ms": stats["p99"],
            "loop_ms": wall * 1e3 / len(rec.samples)}


# -- results ------------------------------------------------------------------------------

def results(measurement, cv_warn=DEFAULT_CV_WARN):
    """Per-runner result dicts (the JSON's ``runners``) and warnings."""
    entries, warnings = [], []
    first = None
    for record in measurement.records:
        runner = record.runner
        stats = summarize(record.samples)
        sub = dict(record.sub)
        stages = _stages_block(getattr(runner, "stages", ()) or (), sub, stats["mean"])
        mean, p50 = stats["mean"], stats["p50"]
        if first is None:
            first = stats
        entry = {
            "name": runner.name, "kind": runner.kind, "includes": runner.includes,
            "info": runner.describe(),
            "latency_ms": stats,
            "throughput_fps": 1000.0 / mean if mean else None,
            "ratio_to_first": mean / first["mean"] if mean and first["mean"] else None,
            "ratio_to_first_p50": p50 / first["p50"] if p50 and first["p50"] else None,
            "ratio_to_first_paired": paired_ratio(record, measurement.records[0]),
            "sub_timings_ms": dict((k, summarize(v)) for k, v in sorted(sub.items())),
            "stages": stages,
            "stable": None if stats["cv"] is None else stats["cv"] <= cv_warn,
            "warmup": {"calls": record.warmup_calls, "seconds": record.warmup_s},
            "timed_s": sum(t1 - t0 for t0, t1 in record.windows),
            "power": None,
        }
        if entry["stable"] is False:
            warnings.append("{}: latency is unstable (coefficient of variation {:.1%} > {:.0%}): "
                            "lock clocks (jetson_clocks / performance governor), stop other load, "
                            "or measure longer".format(runner.name, stats["cv"], cv_warn))
        for key, sub in entry["sub_timings_ms"].items():
            if sub["cv"] is not None and sub["cv"] > cv_warn:
                warnings.append("{}: {} time is unstable (coefficient of variation {:.1%})".format(
                    runner.name, key, sub["cv"]))
        entries.append(entry)
    return entries, warnings


def _stages_block(names, sub, total_mean):
    """The ``stages`` of a runner (popped from ``sub``): statistics per stage, their sum, the rest.

    ``other_mean_ms`` = the call's mean latency - the sum of the stage means: what the call
    does between its stages (a forecast bundle: ring buffer, concatenation, casts, Python).
    """
    if not names:
        return None
    latency = dict((name, summarize(sub.pop(name, []))) for name in names)
    means = [latency[name]["mean"] for name in names]
    total = sum(means) if all(m is not None for m in means) else None
    return {"order": list(names), "latency_ms": latency, "sum_mean_ms": total,
            "other_mean_ms": (total_mean - total) if total is not None and total_mean else None}


def attach_power(entries, measurement, reader):
    """Average board power (mW) in each runner's timed windows and energy per call (mJ)."""
    from runtime.tegrastats import energy_per_frame_mj
    for entry, record in zip(entries, measurement.records):
        mean_mw, count = reader.average_mw(record.windows)
        entry["power"] = {"average_mw": mean_mw, "samples": count, "source": reader.source,
                          "energy_per_frame_mj": energy_per_frame_mj(
                              mean_mw, entry["latency_ms"]["mean"])}


# -- end to end ---------------------------------------------------------------------------

def end_to_end(engine, video_path, max_frames=None, realtime=False, reader=None,
               clock=time.perf_counter, name=None):
    """Run the rt-segment pipeline headless on a video; per-stage and capture-to-result latency.

    Default (file mode): every frame is processed and the reader runs ahead into the
    pipeline's 2-deep queues, so FPS is the pipeline's throughput and capture-to-result
    includes the time a frame waits in those queues. ``realtime``: the video plays at its
    own frame rate with a camera's drop policy (only the newest frame is taken), so
    capture-to-result is the latency a camera user sees (FPS is then capped by the video's).

    ``engine`` may be a ForecastEngine (runtime.open_engine on a bundle): the result then
    has the stream's ``forecast`` block (frames forecast / warm-up, ...). ``fps_steady``:
    results per second from the first to the last result (forecast results only for a
    bundle), i.e. without the pipeline's fill time and a forecaster's cheaper warm-up frames.
    """
    from runtime.pipeline import Pipeline
    from runtime.sources import video
    pipe = Pipeline(video(video_path), engine, outputs=(), max_frames=max_frames,
                    realtime=realtime)
    done = []   # (completion time, counts for fps_steady) per result, pipeline clock

    def note(result):
        details = result.details
        steady = bool(getattr(details, "is_forecast", True)) if details is not None else True
        done.append((result.capture_time + result.age_ms / 1e3, steady))

    try:
        pipe.start()
        t0 = clock()
        pipe.run(note)
        t1 = clock()
    finally:
        pipe.close()
    summary = pipe.summary()
    forecast = summary.get("forecast")
    steady = [t for t, counted in done if counted]
    span = steady[-1] - steady[0] if len(steady) > 1 else 0.0
    if forecast is not None:
        inference = ("inference (features stage + feature ring + f2f + decoder of the forecast; "
                     "warm-up frames: features only)")
    else:
        inference = "inference"
    out = {"video": str(video_path), "engine": os.path.basename(engine.path),
           "name": name or os.path.basename(engine.path),
           "kind": "forecast" if forecast is not None else "engine",
           "frames": summary["frames"], "frame_size": summary["frame_size"],
           "wall_s": summary["wall_s"], "fps": summary["fps"]["processed"],
           "fps_steady": (len(steady) - 1) / span if span > 0 else None,
           "latency_ms": summary["latency_ms"], "reason": summary["reason"],
           "mode": "realtime" if realtime else "file",
           "includes": "capture (decode) -> preprocess (resize, to tensor) -> " + inference +
                       " -> postprocess, three threads overlapped; no outputs written; " + (
                           "video paced at its frame rate, newest frame taken (drops counted)"
                           if realtime else "every frame processed, capture-to-result includes "
                           "waiting in the 2-deep queues"),
           "forecast": forecast,
           "fps_ratio_to_first": None,
           "power": None}
    if reader is not None:
        from runtime.tegrastats import energy_per_frame_mj
        mean_mw, count = reader.average_mw([(t0, t1)])
        fps = out["fps"]
        out["power"] = {"average_mw": mean_mw, "samples": count, "source": reader.source,
                        "energy_per_frame_mj": energy_per_frame_mj(
                            mean_mw, 1000.0 / fps if fps else None)}
    return out


def stream_ratios(runs):
    """Fill each end-to-end run's ``fps_ratio_to_first``; the forecast-vs-plain stream ratios.

    When the first run is a plain engine, one entry per forecast bundle run: its stream FPS
    / the plain stream's FPS (``fps_ratio``; ``fps_steady_ratio`` likewise on ``fps_steady``).
    None when there is no such pair.
    """
    if not runs:
        return None
    first = runs[0]
    for run in runs:
        run["fps_ratio_to_first"] = _ratio(run.get("fps"), first.get("fps"))
    if first.get("kind") == "forecast":
        return None
    pairs = [{"plain": first["name"], "forecast": run["name"],
              "fps_plain": first.get("fps"), "fps_forecast": run.get("fps"),
              "fps_ratio": _ratio(run.get("fps"), first.get("fps")),
              "fps_steady_ratio": _ratio(run.get("fps_steady"), first.get("fps_steady"))}
             for run in runs[1:] if run.get("kind") == "forecast"]
    return pairs or None


def _ratio(a, b):
    return a / b if a and b else None


# -- environment --------------------------------------------------------------------------

def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def cpu_governor():
    """The cpufreq governor(s) of the usable CPUs ("performance", ...), or None if unknown."""
    governors = set()
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    for cpu in sorted(cpus):
        value = _read("/sys/devices/system/cpu/cpu{}/cpufreq/scaling_governor".format(cpu))
        if value:
            governors.add(value)
    return ",".join(sorted(governors)) if governors else None


def cuda_version():
    """The CUDA toolkit version found on disk (version.json / version.txt), or None."""
    import json
    text = _read("/usr/local/cuda/version.json")
    if text:
        try:
            return json.loads(text)["cuda"]["version"]
        except (ValueError, KeyError, TypeError):
            pass
    text = _read("/usr/local/cuda/version.txt")
    if text:
        return text.replace("CUDA Version", "").strip()
    return None


def default_threads():
    """CPU threads to give every CPU runner alike: the cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average():
    """The 1, 5 and 15 minute load averages, or None (a busy machine makes numbers noisy)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def environment(threads=None, entries=(), load_start=None):
    """The machine and software a measurement ran on (every field best-effort)."""
    host = report.host_info()
    env = {"host": host, "governor": cpu_governor(), "threads": threads,
           "load_average": {"start": load_start, "end": load_average()},
           "python": platform.python_version(), "versions": report.versions(),
           "onnxruntime": None, "libswiftrt": core_backends(), "cuda": cuda_version(),
           "peers": {},
           "forecast_bundles": []}
    try:
        import onnxruntime   # the wheel (export side, peers); the engines run the core's backends
        env["onnxruntime"] = {"version": onnxruntime.__version__,
                              "providers": onnxruntime.get_available_providers()}
    except ImportError:
        pass
    for entry in entries:
        info = entry.get("info") or {}
        if entry.get("kind") == "peer" and info.get("backend"):
            env["peers"][info["backend"]] = info.get("version")
        if entry.get("kind") == "forecast":
            stages = info.get("stage_info") or {}
            env["forecast_bundles"].append({
                "name": entry.get("name"), "bundle": info.get("engine"), "arch": info.get("arch"),
                "precision": info.get("precision"),
                "stages": dict((name, {"precision": st.get("precision"),
                                       "backend": st.get("backend")})
                               for name, st in stages.items())})
    return env


def core_backends():
    """libswiftrt's backends as runtime.backends declares them: compiled in, and the version of
    each that an engine of this run opened; None where the library cannot be loaded."""
    from runtime import libswiftrt
    from runtime.errors import UserError
    try:
        return {"version": libswiftrt.version(), "path": libswiftrt.load_library().path,
                "backends": [c.as_dict() for c in backends.capabilities()]}
    except UserError:
        return None


def environment_warnings(env):
    """Conditions that make latency numbers less trustworthy."""
    out = []
    gov = env.get("governor")
    if gov and gov != "performance":
        out.append("CPU governor is '{}': 'performance' gives steadier numbers".format(gov))
    jetson = (env.get("host") or {}).get("jetson")
    if jetson and jetson.get("clocks_locked") is False:
        out.append("Jetson clocks are not locked: run sudo jetson_clocks for stable numbers")
    return out


def build_report(entries, settings, env, warnings=(), notes=(), end_to_end=None, command=None,
                 end_to_end_runs=None, forecast_stream_ratio=None):
    """The rt-bench JSON report.

    ``end_to_end``: the first engine's end-to-end run (None without a video);
    ``end_to_end_runs``: every engine's, in order; ``forecast_stream_ratio``: see stream_ratios.
    """
    if end_to_end is None and end_to_end_runs:
        end_to_end = end_to_end_runs[0]
    return {"schema": SCHEMA, "tool": "rt-bench",
            "command": list(command) if command is not None else None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "settings": dict(settings), "runners": list(entries),
            "end_to_end": end_to_end,
            "end_to_end_runs": list(end_to_end_runs) if end_to_end_runs is not None else (
                [end_to_end] if end_to_end is not None else None),
            "forecast_stream_ratio": forecast_stream_ratio,
            "environment": env,
            "warnings": list(warnings), "notes": list(notes)}
