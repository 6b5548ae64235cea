"""rt-bench as a library: open the runners of a comparison and run the whole measurement.

Plain arguments, no argparse: rt-bench (runtime/cli/bench.py) only parses and prints, and the
scripts in benchmarks/ call the same functions, so that BENCHMARKS.md and a user's rt-bench
report are made by one piece of code. The timing itself is runtime.bench; the text of the
reports is runtime.bench_format.
"""
import logging
import os
import time

from runtime import bench, open_engine  # open_engine imports the engine code when first called
from runtime.backends import BACKENDS
from runtime.errors import UserError

log = logging.getLogger("rt-bench")


def engine_backends(backend, count):
    """The backend of each of ``count`` engines (None: chosen by file), checked. ``backend``:
    None, one name for every engine, or one name per engine."""
    given = list(backend or [])
    for name in given:
        if name not in BACKENDS:
            raise UserError("unknown --backend {!r}; use one of {}".format(name, ", ".join(BACKENDS)))
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


def run(paths, backends=None, providers=None, threads=None, verify=True, warmup=None,
        warmup_s=None, iterations=None, duration=None, rounds=bench.DEFAULT_ROUNDS,
        cv_warn=bench.DEFAULT_CV_WARN, torch=None, openvino=(), video=None, e2e_frames=None,
        realtime=False, power=False, power_interval=100, quiet=False, command=None):
    """Measure ``paths`` (and the peers) as rt-bench does; returns (report dict, {runner name:
    samples}). The arguments are rt-bench's flags; ``command`` is recorded in the report."""
    threads = threads or bench.default_threads()
    load_start = bench.load_average()
    notes = []
    engines, runners = open_runners(paths, backends=backends, providers=providers, threads=threads,
                                    verify=verify, torch=torch, openvino=openvino, notes=notes)
    reader = None
    try:
        if power:
            from runtime.tegrastats import TegrastatsReader
            try:
                reader = TegrastatsReader(interval_ms=power_interval).start()
            except OSError as exc:
                raise UserError("--power: cannot run tegrastats: {}".format(exc))
        if not quiet:
            log.info("measuring %s", ", ".join(r.name for r in runners))
        m = bench.measure(runners, warmup_iters=warmup, warmup_s=warmup_s,
                          iterations=iterations, duration=duration, rounds=rounds)
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
                runs.append(bench.end_to_end(engine, video, max_frames=e2e_frames,
                                             realtime=realtime, reader=reader, name=runner.name))
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
