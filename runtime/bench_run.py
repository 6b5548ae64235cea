"""rt-bench as a library: open the runners of a comparison and run the whole measurement.

Plain values, no argparse (rt-bench's flags are a BenchOptions, checked here): rt-bench
(runtime/cli/bench.py) only parses and prints, and the scripts in benchmarks/ call the same
functions, so that BENCHMARKS.md and a user's rt-bench report are made by one piece of code.
The timing itself is runtime.bench; the text of the reports is runtime.bench_format.
"""
import logging
import os
import time

from runtime import bench, open_engine  # open_engine imports the engine code when first called
from runtime.backends import check_backend
from runtime.errors import UserError

log = logging.getLogger("rt-bench")


def engine_backends(backend, count):
    """The backend of each of ``count`` engines (None: chosen by file), checked. ``backend``:
    None, one name for every engine, or one name per engine."""
    given = list(backend or [])
    for name in given:
        check_backend(name)
    if len(given) > 1 and len(given) != count:
        raise UserError("--backend: give it once for every engine or once per --engine "
                        "({} given for {} engines)".format(len(given), count))
    return given * count if len(given) == 1 else (given or [None] * count)


def unique_names(paths, backends=None):
    """Runner names: file (or bundle) names, with the backend when engines use different ones."""
    names = [bench.bundle_name(p) if bench.is_bundle(p) else os.path.basename(p) for p in paths]
    if backends:
        names = ["{} [{}]".format(n, b or "auto") for n, b in zip(names, backends)]
    return [n if names.count(n) == 1 else "{}#{}".format(n, i + 1) for i, n in enumerate(names)]


def _note(notes, note):
    log.warning("note: %s", note)
    notes.append(note)


def open_runners(paths, backends=None, names=None, providers=None, threads=None, verify=True,
                 torch=None, openvino=(), notes=None):
    """Engines first (the first is the reference), then the peers that can run here.

    ``backends``: one per path (None: chosen by file); ``names``: the runners' names (default:
    unique_names). ``torch``: "ARCH[:CHECKPOINT]" for the PyTorch eager peer. ``openvino``:
    OpenVINO precision hints, one peer each on the first .onnx engine (where OpenVINO is missing,
    a note instead). Engines are opened with runtime.open_engine: a forecast bundle becomes a
    ForecastEngine timed by a ForecastRunner, anything else an Engine timed by an EngineRunner.
    Returns (engines, runners); ``notes`` collects what was ignored or unavailable.
    """
    notes = [] if notes is None else notes
    backends = list(backends) if backends else [None] * len(paths)
    if names is None:
        names = unique_names(paths, backends if len(set(backends)) > 1 else None)
    engines, runners = [], []
    try:
        for path, name, backend in zip(paths, names, backends):
            engine = open_engine(path, backend=backend, providers=providers, threads=threads,
                                 verify=verify)
            engines.append(engine)
            if engine.stateful:  # a forecast bundle
                runners.append(bench.ForecastRunner(engine, name=name))
            else:
                runners.append(bench.EngineRunner(engine, name=name))
        first = runners[0]
        if torch:
            runners.append(torch_runner(torch, first, threads, notes))
        onnx = [r for r in runners if isinstance(r, bench.EngineRunner)
                and r.engine.artifact.endswith(".onnx")]
        for precision in openvino:
            try:
                if not onnx:
                    raise bench.Unavailable("needs an .onnx engine")
                feeds = {onnx[0].engine.input_name: onnx[0].network_input}
                runners.append(bench.OpenVinoRunner(onnx[0].engine.artifact, feeds,
                                                    threads=threads, precision=precision))
            except bench.Unavailable as exc:
                _note(notes, "openvino: {}".format(exc))
                break
    except BaseException:
        for runner in runners:
            runner.close()
        for engine in engines:
            engine.close()
        raise
    return engines, runners


def torch_runner(spec, first, threads, notes):
    """The PyTorch peer ("ARCH[:CHECKPOINT]"); torch is imported here and only here."""
    arch, _, checkpoint = spec.partition(":")
    engine_arch = first.engine.manifest.arch
    if engine_arch and engine_arch != arch:
        _note(notes, "--torch {} is not the engine's architecture ({}): the ratio compares different "
                     "networks".format(arch, engine_arch))
    try:
        from export.torch_runner import TorchRunner
    except ImportError as exc:
        raise UserError("--torch needs PyTorch and the export package (workstation side): {}"
                        .format(exc))
    return TorchRunner(arch, first.network_input, first.engine.manifest.input,
                       checkpoint=checkpoint or None, threads=threads)


class BenchOptions(object):
    """How :func:`run` measures: rt-bench's flags as plain values (benchmarks/ build one too).

    backends: one backend name per path, None for chosen by file (see engine_backends).
    providers: ONNX Runtime providers (None: the backend's default).
    threads: CPU threads for every CPU runner alike (None: bench.default_threads()).
    verify: check each artifact's sha256 against its manifest when opening it.
    warmup: warm-up calls per runner (None: ``warmup_s`` seconds).
    warmup_s: warm-up seconds per runner (None: bench.DEFAULT_WARMUP_S).
    iterations: timed calls per runner (None: ``duration`` seconds).
    duration: timed seconds per runner (None: bench.DEFAULT_DURATION_S).
    rounds: interleaved rounds the runners are timed in.
    cv_warn: warn when a runner's std/mean exceeds this.
    torch: "ARCH[:CHECKPOINT]" for the PyTorch eager peer (None: no such peer).
    openvino: OpenVINO precision hints, one peer each on the first .onnx engine.
    video: also run every engine end to end through the streaming pipeline on this file.
    e2e_frames: stop the video after this many frames (None: all).
    realtime: play the video at its frame rate, dropping frames like a camera.
    power: average board power and energy per frame from tegrastats (Jetson).
    power_interval: tegrastats sampling interval in ms.
    quiet: no progress lines.
    command: the command line recorded in the report (None: ["rt-bench"]).
    """

    def __init__(self, backends=None, providers=None, threads=None, verify=True, warmup=None,
                 warmup_s=None, iterations=None, duration=None, rounds=bench.DEFAULT_ROUNDS,
                 cv_warn=bench.DEFAULT_CV_WARN, torch=None, openvino=(), video=None, e2e_frames=None, realtime=False, power=False,
                 power_interval=100, quiet=False, command=None):
        self.backends, self.providers, self.threads, self.verify = backends, providers, threads, verify
        self.warmup, self.warmup_s, self.iterations, self.duration = warmup, warmup_s, iterations, duration
        self.rounds, self.cv_warn = rounds, cv_warn
        self.torch, self.openvino = torch, openvino
        self.video, self.e2e_frames, self.realtime = video, e2e_frames, realtime
        self.power, self.power_interval, self.quiet, self.command = power, power_interval, quiet, command

    def check(self):
        """Values a user can get wrong (rt-bench's flags), one line each, before any measurement."""
        from runtime.cli.common import check_seconds, check_threads
        positive = (("--warmup", self.warmup), ("--iterations", self.iterations), ("--rounds", self.rounds),
                    ("--e2e-frames", self.e2e_frames),
                    ("--power-interval", self.power_interval))
        for flag, value in positive:
            if value is not None and value < 1:
                raise UserError("{} must be at least 1".format(flag))
        for flag, value in (("--warmup-s", self.warmup_s), ("--duration", self.duration)):
            check_seconds(value, flag)
        if isinstance(self.cv_warn, bool) or not isinstance(self.cv_warn, (int, float)) \
                or not 0 < self.cv_warn < float("inf"):
            raise UserError("--cv-warn must be a positive number")
        check_threads(self.threads)
        if self.video is not None and not os.path.isfile(self.video):
            raise UserError("video not found: {}".format(self.video))
        if self.torch is not None and not self.torch.split(":", 1)[0]:
            raise UserError("--torch needs an architecture, e.g. --torch swiftnet-rn18[:checkpoint.pt]")
        if (self.e2e_frames is not None or self.realtime) and self.video is None:
            raise UserError("--e2e-frames and --realtime need --video")
        if self.power:
            from runtime.tegrastats import available
            if available() is None:
                raise UserError("--power reads tegrastats, which is not here (it comes with JetPack)")


def run(paths, options=None):
    """Measure ``paths`` (and the peers) as rt-bench does, with ``options`` (a
    :class:`BenchOptions`; None: its defaults); returns (report dict, {runner name: samples})."""
    options = options or BenchOptions()
    options.check()
    cv_warn = options.cv_warn
    quiet, video, command = options.quiet, options.video, options.command
    threads = options.threads or bench.default_threads()
    load_start = bench.load_average()
    notes = []
    backends = engine_backends(options.backends, len(paths))  # one per engine, or one for all
    engines, runners = open_runners(paths, backends=backends, providers=options.providers,
                                    threads=threads, verify=options.verify, torch=options.torch,
                                    openvino=options.openvino, notes=notes)
    reader = None
    try:
        if options.power:
            from runtime.tegrastats import TegrastatsReader
            try:
                reader = TegrastatsReader(interval_ms=options.power_interval).start()
            except OSError as exc:
                raise UserError("--power: cannot run tegrastats: {}".format(exc))
        if not quiet:
            log.info("measuring %s", ", ".join(r.name for r in runners))
        m = bench.measure(runners, warmup_iters=options.warmup, warmup_s=options.warmup_s,
                          iterations=options.iterations, duration=options.duration, rounds=options.rounds)
        entries, warnings = bench.results(m, cv_warn=cv_warn)
        if reader is not None:
            bench.attach_power(entries, m, reader)
            if any(e["power"]["samples"] == 0 for e in entries):
                warnings.append("some runners got no tegrastats sample: measure longer "
                                "(--duration) or sample faster (--power-interval)")
            if min(e["timed_s"] for e in entries) < 30:
                notes.append("energy per frame is most reliable over >= 30 s per runner "
                             "(--duration 30)")
        runs, ratios = None, None
        if video:
            runs = []
            for index, (engine, runner) in enumerate(zip(engines, runners)):
                if index:
                    time.sleep(bench.DEFAULT_SETTLE_S)  # as between runners: let pools go idle
                if not quiet:
                    log.info("end to end: %s through %s", video, runner.name)
                runs.append(bench.end_to_end(engine, video, max_frames=options.e2e_frames,
                                             realtime=options.realtime, reader=reader, name=runner.name))
            ratios = bench.stream_ratios(runs)
    finally:
        if reader is not None:
            reader.stop()
        for runner in runners:
            runner.close()
        for engine in engines:
            engine.close()
    settings = dict(m.settings, threads=threads, cv_warn=cv_warn)
    env = bench.environment(threads, entries, load_start=load_start)
    warnings = bench.environment_warnings(env) + warnings
    rep = bench.build_report(entries, settings, env, warnings=warnings, notes=notes,
                             end_to_end_runs=runs, forecast_stream_ratio=ratios,
                             command=list(command) if command else ["rt-bench"])
    samples = dict((rec.runner.name, rec.samples) for rec in m.records)
    return rep, samples
