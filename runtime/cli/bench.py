"""rt-bench: trtexec-grade latency reports for engines, side by side with their peers.

    rt-bench --engine engines/swiftnet-rn18_fp32.onnx
    rt-bench --engine a.onnx --engine b.onnx --iterations 200 --json bench.json
    rt-bench --engine engines/x.onnx --torch swiftnet-rn18 --openvino --markdown bench.md
    rt-bench --engine engines/x.plan --cuda-graph --power --video drive.mp4 --plot bench.png
    rt-bench --engine engines/swiftnet-rn18_fp32.onnx --engine engines/f2f-mid_fp32 --video drive.mp4

Per runner: latency min/mean/median/p90/p95/p99/max, standard deviation and
coefficient of variation (warned when unstable), throughput and the ratio to the
first engine; on TensorRT also H2D, GPU compute, D2H and enqueue times (CUDA events).
A forecast bundle (forecast.json or its folder) is timed per streamed frame once warmed
up (features + f2f + decoder), with each stage's time. Runners are timed interleaved in
rounds; warm-up never counts. ``--video`` runs every engine through the streaming pipeline,
one after the other (with a bundle: the forecast / plain stream FPS ratio). The environment
block says what machine, clocks and versions produced the numbers.
"""
import argparse
import importlib.util
import json
import logging
import os
import sys
import time

from runtime import bench
from runtime.backends import BACKENDS
from runtime.cli.common import (add_common_args, add_verify_arg, check_seconds, check_threads,
                                engine_inputs, run_cli)
from runtime.errors import UserError
from runtime.jsonfile import Inputs, check_output, write_text_atomic, write_bytes_atomic

log = logging.getLogger("rt-bench")

STAT_COLUMNS = ("min", "mean", "p50", "p90", "p95", "p99", "max")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (UserError), like every other user error."""

    def error(self, message):
        raise UserError(message)


def build_parser():
    parser = _Parser(prog="rt-bench", description="Latency and throughput of segmentation "
                     "engines, with the PyTorch / OpenVINO peers and the streaming pipeline.")
    parser.add_argument("--engine", "-e", action="append", required=True, metavar="ENGINE",
                        help="engine (.onnx or .plan with its manifest, or a forecast bundle's "
                             "forecast.json or folder); repeat to compare, ratios are to the first")
    warm = parser.add_mutually_exclusive_group()
    warm.add_argument("--warmup", type=int, metavar="N", help="warm-up calls per runner")
    warm.add_argument("--warmup-s", type=float, metavar="S",
                      help="warm-up seconds per runner (default {:g})".format(bench.DEFAULT_WARMUP_S))
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--iterations", "-n", type=int, metavar="N", help="timed calls per runner")
    amount.add_argument("--duration", type=float, metavar="S",
                        help="timed seconds per runner (default {:g})".format(bench.DEFAULT_DURATION_S))
    parser.add_argument("--rounds", type=int, default=bench.DEFAULT_ROUNDS, metavar="R",
                        help="interleaved rounds (default {})".format(bench.DEFAULT_ROUNDS))
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for every CPU runner alike (default: usable cores)")
    parser.add_argument("--backend", action="append", metavar="NAME",
                        help="force a backend ({}): once for every engine, or once per --engine "
                             "in the same order (the same file on two backends compares them)"
                             .format("|".join(BACKENDS)))
    parser.add_argument("--providers", help="ONNX Runtime providers, comma-separated")
    add_verify_arg(parser)
    parser.add_argument("--cv-warn", type=float, default=bench.DEFAULT_CV_WARN, metavar="X",
                        help="warn when std/mean exceeds X (default {:g})".format(bench.DEFAULT_CV_WARN))
    trt = parser.add_argument_group("TensorRT only")
    trt.add_argument("--cuda-graph", action="store_true", help="launch the enqueue as a CUDA graph")
    trt.add_argument("--no-transfers", action="store_true",
                     help="time enqueue + compute without host/device copies")
    peers = parser.add_argument_group("peers (same input, same threads, same run)")
    peers.add_argument("--torch", metavar="ARCH[:CHECKPOINT]",
                       help="PyTorch eager FP32 (imports torch; untrained weights without CHECKPOINT)")
    peers.add_argument("--openvino", action="store_true",
                       help="OpenVINO CPU on the first .onnx engine (where installed)")
    peers.add_argument("--openvino-precision", default="f32", metavar="P",
                       help="OpenVINO INFERENCE_PRECISION_HINT (default f32; bf16, f16)")
    e2e = parser.add_argument_group("end to end")
    e2e.add_argument("--video", metavar="FILE",
                     help="also run the rt-segment pipeline headless on FILE, every engine "
                          "in turn (forecast bundles as rt-segment streams them)")
    e2e.add_argument("--e2e-frames", type=int, metavar="N", help="stop the video after N frames")
    e2e.add_argument("--realtime", action="store_true",
                     help="play the video at its frame rate, dropping frames like a camera "
                          "(capture-to-result as a camera user sees it)")
    parser.add_argument("--power", action="store_true",
                        help="average board power and energy per frame from tegrastats (Jetson)")
    parser.add_argument("--power-interval", type=int, default=100, metavar="MS",
                        help="tegrastats sampling interval (default 100 ms)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the report as JSON")
    out.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    out.add_argument("--plot", metavar="PNG", help="latency distributions and stage bars (matplotlib)")
    add_common_args(parser)
    return parser


def _check_args(args):
    for path in args.engine:
        if not os.path.exists(path):
            raise UserError("engine not found: {}".format(path))
    positive = (("--warmup", args.warmup, 1), ("--iterations", args.iterations, 1),
                ("--rounds", args.rounds, 1), ("--threads", args.threads, 1),
                ("--e2e-frames", args.e2e_frames, 1), ("--power-interval", args.power_interval, 1))
    for flag, value, low in positive:
        if value is not None and value < low:
            raise UserError("{} must be at least {}".format(flag, low))
    for flag, value in (("--warmup-s", args.warmup_s), ("--duration", args.duration)):
        check_seconds(value, flag)
    if not 0 < args.cv_warn < float("inf"):
        raise UserError("--cv-warn must be a positive number")
    check_threads(args.threads)
    engine_backends(args)
    if args.video is not None and not os.path.isfile(args.video):
        raise UserError("video not found: {}".format(args.video))
    check_outputs(args)
    if args.torch is not None and not args.torch.split(":", 1)[0]:
        raise UserError("--torch needs an architecture, e.g. --torch swiftnet-rn18[:checkpoint.pt]")
    if (args.e2e_frames is not None or args.realtime) and args.video is None:
        raise UserError("--e2e-frames and --realtime need --video")
    if args.plot and _missing("matplotlib"):
        raise UserError("--plot needs matplotlib: pip install matplotlib")
    if args.power:
        from runtime.tegrastats import available
        if available() is None:
            raise UserError("--power reads tegrastats, which is not here (it comes with JetPack)")


def check_outputs(args):
    """Refuse, before any measurement, output paths that would replace an input or a device."""
    inputs = Inputs()
    for path in args.engine:
        engine_inputs(inputs, path)
    inputs.add(args.video, "--video")
    if args.torch and ":" in args.torch:
        inputs.add(args.torch.split(":", 1)[1], "--torch checkpoint")
    given = [("--json", args.json), ("--markdown", args.markdown), ("--plot", args.plot)]
    for flag, path in given:
        if path:
            check_output(path, flag, inputs, others=[g for g in given if g[0] != flag])


def engine_backends(args):
    """The --backend of each --engine (None: chosen by file), checked."""
    given = args.backend or []
    for name in given:
        if name not in BACKENDS:
            raise UserError("unknown --backend {!r}; use one of {}".format(name, ", ".join(BACKENDS)))
    if len(given) > 1 and len(given) != len(args.engine):
        raise UserError("--backend: give it once for every engine or once per --engine "
                        "({} given for {} engines)".format(len(given), len(args.engine)))
    return given * len(args.engine) if len(given) == 1 else (given or [None] * len(args.engine))


def _missing(module):
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


# -- runners ------------------------------------------------------------------------------

def make_runners(args, threads, notes):
    """Engines first (the first is the reference), then the peers that can run here.

    Engines are opened with runtime.open_engine: a forecast bundle becomes a ForecastEngine
    timed by a ForecastRunner, anything else an Engine timed by an EngineRunner.
    """
    from runtime import open_engine
    providers = [p.strip() for p in args.providers.split(",") if p.strip()] if args.providers else None
    engines, runners = [], []
    backends = engine_backends(args)
    names = _unique_names(args.engine, backends if len(set(backends)) > 1 else None)
    flags = [f for f, on in (("--cuda-graph", args.cuda_graph),
                             ("--no-transfers", args.no_transfers)) if on]
    try:
        for path, name, backend in zip(args.engine, names, backends):
            engine = open_engine(path, backend=backend, providers=providers, threads=threads,
                                 verify=not args.no_verify)
            engines.append(engine)
            if hasattr(engine, "infer_at"):  # a forecast bundle
                if flags:
                    _note(notes, "{} {} not supported for forecast bundles: ignored for {}".format(
                        " and ".join(flags), "are" if len(flags) > 1 else "is", name))
                runners.append(bench.ForecastRunner(engine, name=name))
                continue
            backend = engine.backend.name
            if flags and backend != "tensorrt":
                _note(notes, "{} only {} to TensorRT engines: ignored for {} ({})".format(
                    " and ".join(flags), "apply" if len(flags) > 1 else "applies", name, backend))
                runners.append(bench.EngineRunner(engine, name=name))
            else:
                runners.append(bench.EngineRunner(engine, name=name,
                                                  transfers=not args.no_transfers,
                                                  cuda_graph=args.cuda_graph))
    except BaseException:
        for runner in runners:
            runner.close()
        for engine in engines:
            engine.close()
        raise
    first = runners[0]
    if args.torch:
        runners.append(_torch_runner(args.torch, first, threads, notes))
    if args.openvino:
        onnx = [r for r in runners if isinstance(r, bench.EngineRunner)
                and r.engine.artifact.endswith(".onnx")]
        try:
            if not onnx:
                raise bench.Unavailable("needs an .onnx engine")
            runners.append(bench.OpenVinoRunner(onnx[0].engine.artifact, onnx[0].feeds,
                                                threads=threads, precision=args.openvino_precision))
        except bench.Unavailable as exc:
            note = "openvino: {}".format(exc)
            log.warning("note: %s", note)
            notes.append(note)
    return engines, runners


def _note(notes, note):
    log.warning("note: %s", note)
    notes.append(note)


def _unique_names(paths, backends=None):
    """Runner names: file (or bundle) names, with the backend when engines use different ones."""
    names = [bench.bundle_name(p) if bench.is_bundle(p) else os.path.basename(p) for p in paths]
    if backends:
        names = ["{} [{}]".format(n, b or "auto") for n, b in zip(names, backends)]
    return [n if names.count(n) == 1 else "{}#{}".format(n, i + 1) for i, n in enumerate(names)]


def _torch_runner(spec, first, threads, notes):
    """The PyTorch peer; torch is imported here and only here."""
    arch, _, checkpoint = spec.partition(":")
    engine_arch = first.engine.manifest.arch
    if engine_arch and engine_arch != arch:
        note = ("--torch {} is not the engine's architecture ({}): the ratio compares different "
                "networks".format(arch, engine_arch))
        log.warning("note: %s", note)
        notes.append(note)
    try:
        from export.torch_runner import TorchRunner
    except ImportError as exc:
        raise UserError("--torch needs PyTorch and the export package (workstation side): {}"
                        .format(exc))
    return TorchRunner(arch, first.tensor, first.engine.manifest.input,
                       checkpoint=checkpoint or None, threads=threads)


# -- formatting ---------------------------------------------------------------------------

def _num(value, digits=2):
    return "-" if value is None else "{:.{}f}".format(value, digits)


def format_console(rep):
    """The human report: latency table, stages, what each call includes, environment."""
    s = rep["settings"]
    amount = ("{} calls".format(s["iterations"]) if s.get("iterations")
              else "{:g} s".format(s["duration_s"]))
    warm = ("{} call(s)".format(s["warmup_iters"]) if s.get("warmup_iters")
            else "{:g} s".format(s["warmup_s"]))
    lines = ["rt-bench: {} runner(s), {} per runner in {} interleaved rounds, after {} warm-up; "
             "{} CPU threads".format(len(rep["runners"]), amount, s["rounds"], warm, s.get("threads"))]
    width = max([len(e["name"]) for e in rep["runners"]] + [16])
    header = "{:<{w}} {:>6} ".format("latency ms", "calls", w=width) + " ".join(
        "{:>8}".format(c) for c in STAT_COLUMNS) + " {:>7} {:>6} {:>8} {:>8}".format(
        "std", "cv", "FPS", "x first")
    lines += ["", header]
    for e in rep["runners"]:
        st = e["latency_ms"]
        lines.append("{:<{w}} {:>6} ".format(e["name"], st["count"], w=width) + " ".join(
            "{:>8}".format(_num(st[c])) for c in STAT_COLUMNS) + " {:>7} {:>6} {:>8} {:>8}".format(
            _num(st["std"]), _pct(st["cv"]), _num(e["throughput_fps"], 1),
            _num(e["ratio_to_first"]) + "x" if e["ratio_to_first"] else "-"))
    subs = stage_rows(rep["runners"])
    if subs:
        kw = max([len(k) for _, k, _ in subs] + [8])
        lines += ["", "{:<{w}} {:>{kw}} ".format("stages ms", "stage", w=width, kw=kw) + " ".join(
            "{:>8}".format(c) for c in STAT_COLUMNS)]
        for name, key, st in subs:
            lines.append("{:<{w}} {:>{kw}} ".format(name, key, w=width, kw=kw) + " ".join(
                "{:>8}".format(_num(st.get(c), 3)) for c in STAT_COLUMNS))
        lines += ["  " + l for l in stage_notes(rep["runners"])]
    powered = [e for e in rep["runners"] if e.get("power")]
    if powered:
        lines += ["", "power (tegrastats, {}):".format(powered[0]["power"].get("source"))]
        for e in powered:
            p = e["power"]
            lines.append("  {}: {} mW average over {} samples, {} mJ per frame".format(
                e["name"], _num(p["average_mw"], 0), p["samples"], _num(p["energy_per_frame_mj"], 1)))
    lines += ["", "each timed call includes:"]
    lines += ["  {}: {}".format(e["name"], e["includes"]) for e in rep["runners"]]
    for run in e2e_runs(rep):
        lines += [""] + format_e2e(run)
    lines += format_stream_ratio(rep)
    lines += ["", "environment:"] + ["  " + l for l in environment_lines(rep["environment"])]
    for note in rep.get("notes") or []:
        lines.append("note: " + note)
    for warning in rep.get("warnings") or []:
        lines.append("WARNING: " + warning)
    return "\n".join(lines)


def _pct(value):
    return "-" if value is None else "{:.1%}".format(value)


def stage_rows(entries):
    """(runner, stage, statistics) rows: a bundle's stages and 'other', then sub-timings."""
    rows = []
    for e in entries:
        stages = e.get("stages")
        if stages:
            for key in stages["order"]:
                rows.append((e["name"], key, stages["latency_ms"][key]))
            if stages.get("other_mean_ms") is not None:
                rows.append((e["name"], "other", {"mean": stages["other_mean_ms"]}))
        for key, st in e["sub_timings_ms"].items():
            rows.append((e["name"], key, st))
    return rows


def stage_notes(entries):
    """One line per forecast bundle: its stages' share of a streamed frame."""
    out = []
    for e in entries:
        stages = e.get("stages")
        mean = e["latency_ms"]["mean"]
        if not stages or not mean:
            continue
        shares = ", ".join("{} {}".format(k, _pct((stages["latency_ms"][k]["mean"] or 0) / mean))
                           for k in stages["order"])
        out.append("{}: {} of a streamed frame; 'other' = ring buffer, concatenation, casts, "
                   "Python between the stages".format(e["name"], shares))
    return out


def e2e_runs(rep):
    """The end-to-end runs of a report (older reports: just ``end_to_end``)."""
    runs = rep.get("end_to_end_runs")
    if runs is None:
        runs = [rep["end_to_end"]] if rep.get("end_to_end") else []
    return runs


def format_stream_ratio(rep):
    """The forecast / plain stream FPS lines (issue 8's target metric)."""
    lines = []
    for pair in rep.get("forecast_stream_ratio") or []:
        lines += ["", "forecast stream FPS / plain stream FPS: {}x ({} {} FPS vs {} {} FPS; "
                  "steady state {}x)".format(
                      _num(pair["fps_ratio"]), pair["forecast"], _num(pair["fps_forecast"], 1),
                      pair["plain"], _num(pair["fps_plain"], 1), _num(pair["fps_steady_ratio"]))]
    return lines


def format_e2e(e2e):
    frames = e2e["frames"]
    lines = ["end to end: {}{} ({} mode, frames {}): {} processed, {} dropped, {} FPS "
             "({} steady)".format(
                 "{} on ".format(e2e["name"]) if e2e.get("name") else "",
                 e2e["video"], e2e.get("mode"),
                 "x".join(str(v) for v in e2e["frame_size"] or []) or "?",
                 frames["processed"], frames["dropped"], _num(e2e["fps"], 1),
                 _num(e2e.get("fps_steady"), 1)),
             "  " + e2e["includes"],
        "  {:<18} {:>8} {:>8} {:>8} {:>8} {:>8}".format("stage ms", "mean", "p50", "p90", "p99", "max")]
    for stage, st in e2e["latency_ms"].items():
        if st.get("count"):
            lines.append("  {:<18} {:>8} {:>8} {:>8} {:>8} {:>8}".format(
                stage, _num(st["mean"]), _num(st["p50"]), _num(st["p90"]), _num(st["p99"]),
                _num(st["max"])))
    forecast = e2e.get("forecast")
    if forecast:
        lat = forecast.get("latency_ms") or {}
        lines.append("  forecast: {} frames forecast, {} warm-up; f2f + decoder {} ms mean; "
                     "frame selection {}".format(
                         forecast["frames_forecast"], forecast["frames_warmup"],
                         _num(lat.get("mean")), forecast.get("frame_selection")))
    power = e2e.get("power")
    if power:
        lines.append("  power: {} mW average, {} mJ per frame".format(
            _num(power["average_mw"], 0), _num(power["energy_per_frame_mj"], 1)))
    return lines


def environment_lines(env):
    """The environment block as lines of text (console and Markdown alike)."""
    host = env.get("host") or {}
    lines = ["CPU: {} ({} cores, {} usable), governor {}, {} threads per CPU runner".format(
        host.get("cpu") or "?", host.get("cores") or "?", host.get("cores_usable") or "?",
        env.get("governor") or "unknown", env.get("threads") or "default")]
    gpus = host.get("gpus") or []
    lines.append("GPU: {}".format(", ".join("{} (driver {})".format(g.get("name"), g.get("driver"))
                                            for g in gpus) if gpus else "none found (nvidia-smi)"))
    ort = env.get("onnxruntime") or {}
    lines.append("ONNX Runtime {} ({}); {}TensorRT {}; CUDA {}".format(
        ort.get("version") or "not installed", ", ".join(ort.get("providers") or []) or "-",
        "OpenVINO {} (engine backend); ".format(env["openvino"]) if env.get("openvino") else "",
        env.get("tensorrt") or "not used", env.get("cuda") or "not found"))
    peers = env.get("peers") or {}
    versions = env.get("versions") or {}
    lines.append("Python {}, numpy {}, OpenCV {}{}".format(
        env.get("python"), versions.get("numpy"), versions.get("opencv"),
        "".join("; {} {}".format(k, v) for k, v in sorted(peers.items()))))
    jetson = host.get("jetson")
    if jetson:
        mode = (jetson.get("nvpmodel") or {}).get("mode")
        lines.append("Jetson: {} ({}), nvpmodel {}, clocks {}".format(
            jetson.get("module") or "?", jetson.get("l4t") or "?", mode or "unknown",
            {True: "locked", False: "NOT locked", None: "unknown"}[jetson.get("clocks_locked")]))
    else:
        lines.append("Jetson: no (module, nvpmodel and clocks apply on a Jetson)")
    for b in env.get("forecast_bundles") or []:
        lines.append("forecast bundle {} ({}, {}): {}".format(
            b.get("name"), b.get("arch"), b.get("precision"), ", ".join(
                "{} {} ({})".format(stage, st.get("precision"), st.get("backend"))
                for stage, st in sorted((b.get("stages") or {}).items(),
                                        key=lambda kv: _stage_index(kv[0])))))
    load = env.get("load_average") or {}
    if load.get("start") or load.get("end"):
        lines.append("load average (1/5/15 min): {} at start, {} at end (> cores: shared, noisy)".format(
            _load(load.get("start")), _load(load.get("end"))))
    lines.append("host: {} ({})".format(host.get("hostname") or "?", host.get("os") or "?"))
    return lines


def _stage_index(name):
    return bench.FORECAST_STAGES.index(name) if name in bench.FORECAST_STAGES else 99


def _load(values):
    return "/".join("{:.1f}".format(v) for v in values) if values else "?"


def format_markdown(rep):
    """The report as Markdown tables."""
    s = rep["settings"]
    out = ["# rt-bench report", "",
           "`{}`".format(" ".join(rep["command"] or ["rt-bench"])), "",
           "{} per runner in {} interleaved rounds after {} warm-up; created {}.".format(
               "{} calls".format(s["iterations"]) if s.get("iterations") else "{:g} s".format(s["duration_s"]),
               s["rounds"], "{} calls".format(s["warmup_iters"]) if s.get("warmup_iters")
               else "{:g} s".format(s["warmup_s"]), rep["created"]), "",
           "| runner | calls | " + " | ".join(STAT_COLUMNS) + " | std | CV | FPS | × first |",
           "|---|" + "---:|" * (len(STAT_COLUMNS) + 5)]
    for e in rep["runners"]:
        st = e["latency_ms"]
        out.append("| {} | {} | {} | {} | {} | {} | {} |".format(
            e["name"], st["count"], " | ".join(_num(st[c]) for c in STAT_COLUMNS), _num(st["std"]),
            _pct(st["cv"]), _num(e["throughput_fps"], 1), _num(e["ratio_to_first"])))
    subs = stage_rows(rep["runners"])
    if subs:
        out += ["", "| runner | stage | " + " | ".join(STAT_COLUMNS) + " |",
                "|---|---|" + "---:|" * len(STAT_COLUMNS)]
        for name, key, st in subs:
            out.append("| {} | {} | {} |".format(
                name, key, " | ".join(_num(st.get(c), 3) for c in STAT_COLUMNS)))
        out += [""] + stage_notes(rep["runners"])
    out += ["", "Latency in ms. What one timed call includes:", ""]
    out += ["- **{}**: {}".format(e["name"], e["includes"]) for e in rep["runners"]]
    runs = e2e_runs(rep)
    if runs:
        out += ["", "```"]
        for i, run in enumerate(runs):
            out += ([""] if i else []) + format_e2e(run)
        out += format_stream_ratio(rep) + ["```"]
    out += ["", "Environment:", ""] + ["- " + l for l in environment_lines(rep["environment"])]
    for note in rep.get("notes") or []:
        out.append("- note: " + note)
    for warning in rep.get("warnings") or []:
        out.append("- **warning**: " + warning)
    return "\n".join(out) + "\n"


def plot(rep, samples, path):
    """Latency distribution per runner (box: p1..p99) and stage bars (matplotlib, lazily)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = e2e_runs(rep)
    e2e = runs[0] if runs else None
    subs = stage_rows(rep["runners"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 1.5 + 0.6 * max(3, len(samples))))
    names = [e["name"] for e in rep["runners"]]
    data = [samples[n] for n in names]
    style = dict(whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
    try:
        left.boxplot(data, orientation="horizontal", **style)  # matplotlib >= 3.10
    except TypeError:
        left.boxplot(data, vert=False, **style)
    left.set_yticks(range(1, len(names) + 1))
    left.set_yticklabels(names)
    left.set_xlabel("latency per call (ms); box: p25-p75, whiskers: p1-p99")
    left.set_title("latency distribution")
    left.invert_yaxis()  # the first (reference) runner on top
    if e2e:
        stages = [("{} {}".format(run["name"], k) if len(runs) > 1 else k, v["mean"])
                  for run in runs for k, v in run["latency_ms"].items() if v.get("count")]
        right.barh([k for k, _ in stages], [v for _, v in stages])
        right.set_title("end to end: mean ms per stage ({} FPS)".format(_num(e2e["fps"], 1))
                        if len(runs) == 1 else "end to end: mean ms per stage")
    elif subs:
        right.barh(["{} {}".format(name, key) for name, key, _ in subs],
                   [st["mean"] or 0.0 for _, _, st in subs])
        right.set_title("stages: mean ms")
    else:
        right.barh(names, [e["latency_ms"]["mean"] for e in rep["runners"]])
        right.set_title("mean latency (ms)")
    right.invert_yaxis()
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return path


# -- main ---------------------------------------------------------------------------------

def run(args, argv=()):
    """Measure what ``args`` asks for; returns (report dict, {runner name: samples})."""
    threads = args.threads or bench.default_threads()
    load_start = bench.load_average()
    notes = []
    engines, runners = make_runners(args, threads, notes)
    reader = None
    try:
        if args.power:
            from runtime.tegrastats import TegrastatsReader
            try:
                reader = TegrastatsReader(interval_ms=args.power_interval).start()
            except OSError as exc:
                raise UserError("--power: cannot run tegrastats: {}".format(exc))
        if not args.quiet:
            log.info("measuring %s", ", ".join(r.name for r in runners))
        m = bench.measure(runners, warmup_iters=args.warmup, warmup_s=args.warmup_s,
                          iterations=args.iterations, duration=args.duration, rounds=args.rounds)
        entries, warnings = bench.results(m, cv_warn=args.cv_warn)
        if reader is not None:
            bench.attach_power(entries, m, reader)
            if any(e["power"]["samples"] == 0 for e in entries):
                warnings.append("some runners got no tegrastats sample: measure longer "
                                "(--duration) or sample faster (--power-interval)")
            if min(e["timed_s"] for e in entries) < 30:
                notes.append("energy per frame is most reliable over >= 30 s per runner "
                             "(--duration 30)")
        runs, ratios = None, None
        if args.video:
            runs = []
            for index, (engine, runner) in enumerate(zip(engines, runners)):
                if index:
                    time.sleep(bench.DEFAULT_SETTLE_S)  # as between runners: let pools go idle
                if not args.quiet:
                    log.info("end to end: %s through %s", args.video, runner.name)
                runs.append(bench.end_to_end(engine, args.video, max_frames=args.e2e_frames,
                                             realtime=args.realtime, reader=reader,
                                             name=runner.name))
            ratios = bench.stream_ratios(runs)
    finally:
        if reader is not None:
            reader.stop()
        for runner in runners:
            runner.close()
        for engine in engines:
            engine.close()
    settings = dict(m.settings, threads=threads, cv_warn=args.cv_warn,
                    cuda_graph=args.cuda_graph, no_transfers=args.no_transfers)
    env = bench.environment(threads, entries, load_start=load_start)
    warnings = bench.environment_warnings(env) + warnings
    rep = bench.build_report(entries, settings, env, warnings=warnings, notes=notes,
                             end_to_end_runs=runs, forecast_stream_ratio=ratios,
                             command=["rt-bench"] + list(argv))
    samples = dict((rec.runner.name, rec.samples) for rec in m.records)
    return rep, samples


def main(argv):
    args = build_parser().parse_args(argv)
    _check_args(args)
    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    rep, samples = run(args, argv)
    if not args.quiet:
        sys.stdout.write(format_console(rep) + "\n")
    if args.json:
        _write(args.json, json.dumps(rep, indent=2, default=str) + "\n")
    if args.markdown:
        _write(args.markdown, format_markdown(rep))
    if args.plot:
        plot(rep, samples, args.plot)
    for path in (args.json, args.markdown, args.plot):
        if path and not args.quiet:
            sys.stdout.write("wrote {}\n".format(path))
    return 0


def _write(path, text):
    """Atomically (runtime.jsonfile): never half a report, never over a device."""
    write_text_atomic(path, text)


def entry():
    sys.exit(run_cli(main, prog="rt-bench"))


if __name__ == "__main__":
    entry()
