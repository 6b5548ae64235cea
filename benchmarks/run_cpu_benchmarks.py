#!/usr/bin/env python
"""Regenerate BENCHMARKS.md on the machine at hand (the CPU tables; Jetson rows stay empty).

    python benchmarks/run_cpu_benchmarks.py                 # writes BENCHMARKS.md
    python benchmarks/run_cpu_benchmarks.py --quick         # fewer iterations (a smoke run)

For every architecture at 256x512 it exports the FP32 ONNX engine (untrained seeded
weights are fine for latency; the demo checkpoint is used where it exists), then times,
interleaved in one run with the same input and the same threads: ONNX Runtime on every
engine variant (FP32; INT8 where its engine exists; our INT8 engine on the OpenVINO backend
where OpenVINO is installed), PyTorch eager FP32 and OpenVINO as a peer on the FP32 ONNX.
Then the rt-segment pipeline end to end on a generated drive video; the
outlier model and the forecast bundle next to the plain model (engine level and streams) and
the outlier model's accuracy (rt-eval, FP32 and INT8) on the declared test splits of docs/evaluation.md
(via benchmarks/accuracy_tables.py); rt-ros2 next to rt-segment where the ROS 2 wheels are installed
(benchmarks/ros2_bench.py); and
the timing loop's own overhead with a no-op runner. Everything goes through
runtime.bench and runtime.bench_run, the same code as rt-bench.
"""
import argparse
import datetime
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime import bench, bench_run  # noqa: E402
from runtime.cli.common import run_cli  # noqa: E402
from runtime.jsonfile import check_output, write_atomic, write_text_atomic  # noqa: E402
from runtime.bench_format import environment_lines  # noqa: E402

ARCHS = ("swiftnet-rn18", "swiftnet-pyr-rn18", "swiftnet-mn2")
SIZE = (256, 512)
HEADLINE = "swiftnet-rn18"
ENGINE_DIR = os.path.join(REPO, "engines", "bench")
DEMO_CHECKPOINTS = {"swiftnet-rn18": os.path.join(REPO, "checkpoints", "swiftnet-rn18_synthetic.pt")}
TARGET_SPEEDUP = 5.0      # best CPU engine (INT8) vs PyTorch eager FP32, swiftnet-rn18 256x512
TARGET_OVERHEAD_MS = 0.2  # timing loop cost per iteration
CALLS_PER_ROUND = 2       # fine interleaving: a shared machine's drift hits every runner alike


def fp32_engine(arch, fp32_path):
    return fp32_path


def calibrated_int8(arch, fp32_path, flavor, suffix):
    """engines/bench/<arch>_<suffix>.onnx: INT8 of ``flavor``, calibrated on 64 generated scenes
    (percentile); rebuilt when its FP32 source changed or, for the cpu flavor, when it predates
    the current CPU graph rewrites."""
    from calib.int8 import Int8Options, export_int8
    from runtime import manifest as manifest_mod
    path = os.path.join(ENGINE_DIR, "{}_{}.onnx".format(arch, suffix))
    if os.path.exists(path + ".json"):
        made = manifest_mod.Manifest.load(path)
        current = flavor != "cpu" or "pad_conv_outputs" in made.quantization.get("graph_rewrites", {})
        if current and made.accuracy.get("reference_sha256") == manifest_mod.sha256_file(fp32_path):
            return path
    log("calibrating {} INT8 ({} flavor, 64 generated scenes, percentile)".format(arch, flavor))
    export_int8(fp32_path, path, "synthetic", Int8Options(count=64, seed=0, method="percentile",
                flavor=flavor, check_latency=False, progress=False))
    return path


def int8_engine(arch, fp32_path):
    """The CPU-flavor INT8 model (U8S8 QDQ, rewritten for ONNX Runtime's kernels)."""
    return calibrated_int8(arch, fp32_path, "cpu", "int8_cpu")


def int8_plain_engine(arch, fp32_path):
    """The plain symmetric INT8 QDQ model (rt-export --flavor trt: the explicit-quantization form
    TensorRT and OpenVINO both read) for the OpenVINO backend; None where OpenVINO is missing."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return None
    return calibrated_int8(arch, fp32_path, "trt", "int8_qdq")


# Engine columns: (label, function(arch, fp32 ONNX path) -> engine path or None, backend).
VARIANTS = [
    ("FP32", fp32_engine, "onnxruntime"),
    ("INT8", int8_engine, "onnxruntime"),
    ("INT8 OpenVINO", int8_plain_engine, "openvino"),
]
# OpenVINO as a peer on the FP32 ONNX: its f32 hint (what the issue asks), and on the headline
# its bf16 hint (OpenVINO's own default on CPUs with AMX / AVX512-BF16).
PEER_HINTS = ("f32", "bf16")


def runner_name(label, backend):
    return "{}-{}".format(backend, label.split()[0].lower())


def title(label):
    """Column / row title of an engine variant."""
    backend = dict((l, b) for l, _, b in VARIANTS)[label]
    if backend == "openvino":
        return "our {} engine on OpenVINO (`--backend openvino`)".format(label.split()[0])
    return "ONNX Runtime CPU " + label


def log(message):
    sys.stderr.write("[{}] {}\n".format(time.strftime("%H:%M:%S"), message))
    sys.stderr.flush()


# -- engines and inputs -------------------------------------------------------------------

def export_fp32(arch, re_export=False):
    """engines/bench/<arch>_fp32.onnx at SIZE, reused when its manifest matches (arch, size and the
    checkpoint's path and sha256)."""
    from export.api import export
    path = os.path.join(ENGINE_DIR, "{}_fp32.onnx".format(arch))
    checkpoint = DEMO_CHECKPOINTS.get(arch)
    checkpoint = checkpoint if checkpoint and os.path.exists(checkpoint) else None
    if not re_export and os.path.exists(path) and os.path.exists(path + ".json"):
        from runtime.errors import ManifestError
        from runtime.manifest import Manifest, sha256_file
        try:
            made = Manifest.load(path)
        except ManifestError:  # an export of an older release: made again
            made = None
        source = made.source_checkpoint if made is not None else {}
        wanted = (os.path.abspath(checkpoint), sha256_file(checkpoint)) if checkpoint else (None, None)
        if (made is not None and made.arch == arch and made.input.size == tuple(SIZE)
                and (source.get("path"), source.get("sha256")) == wanted):
            return path, checkpoint
    if not os.path.isdir(ENGINE_DIR):
        os.makedirs(ENGINE_DIR)
    log("exporting {} {}x{}{}".format(arch, SIZE[0], SIZE[1],
                                      " from " + checkpoint if checkpoint else " (untrained weights)"))
    export(arch, checkpoint, SIZE, path, parity_images=1, log=lambda message: None)
    return path, checkpoint


def drive_video(path, frames):
    """A generated drive at 512x1024 (the synthetic renderer; random frames if it is unavailable)."""
    if os.path.exists(path):
        return path
    size = (SIZE[0] * 2, SIZE[1] * 2)
    try:
        from export.scenes import write_video
        write_video(path, frames=frames, fps=30.0, seed=7, size=size)
        return path
    except Exception as exc:  # the renderer is optional here: any frames time the pipeline
        log("synthetic video unavailable ({}): writing random frames".format(exc))
    import cv2
    import numpy as np
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (size[1], size[0]))
    rng = np.random.RandomState(7)
    for _ in range(frames):
        writer.write(rng.randint(0, 256, size=size + (3,)).astype(np.uint8))
    writer.release()
    return path


# -- measurements -------------------------------------------------------------------------

def measure_arch(arch, engines, checkpoint, threads, iterations, warmup, hints=PEER_HINTS[:1]):
    """One interleaved run: every engine variant, PyTorch eager FP32, OpenVINO on the FP32 ONNX
    (rt-bench's runners: runtime.bench_run.open_runners)."""
    notes = []
    opened, runners = bench_run.open_runners(
        [path for _, path, _ in engines], backends=[backend for _, _, backend in engines],
        names=[runner_name(label, backend) for label, _, backend in engines], threads=threads,
        torch="{}:{}".format(arch, checkpoint) if checkpoint else arch, openvino=hints, notes=notes)
    try:
        rounds = max(1, iterations // CALLS_PER_ROUND)
        log("{}: {} x {} calls, interleaved in {} rounds".format(
            arch, ", ".join(r.name for r in runners), iterations, rounds))
        m = bench.measure(runners, warmup_iters=warmup, iterations=iterations, rounds=rounds)
        entries, warnings = bench.results(m)
    finally:
        for runner in runners:
            runner.close()
        for engine in opened:
            engine.close()
    return {"arch": arch, "runners": entries, "notes": notes, "rounds": rounds,
            "warnings": ["{}: {}".format(arch, w) for w in warnings]}


def measure_e2e(arch, path, video, threads, frames):
    """The pipeline twice: every frame (throughput) and paced like a camera (latency)."""
    from runtime import open_engine
    engine = open_engine(path, threads=threads)
    try:
        log("{}: end to end on {} (every frame, then paced at 30 FPS)".format(
            arch, os.path.basename(video)))
        return {"file": bench.end_to_end(engine, video, max_frames=frames),
                "live": bench.end_to_end(engine, video, realtime=True)}
    finally:
        engine.close()


TASK_CHECKPOINTS = {
    "outlier": os.path.join(REPO, "checkpoints", "swiftnet-rn18-ood_synthetic.pt"),
    "forecast": os.path.join(REPO, "checkpoints", "f2f-8-mid_synthetic.pt"),
}
E2E_REPEATS = 2  # plain / outlier / forecast streams alternate this many times
# The forecast bundle in its default deformable form (bilinear sampling as one MatMul, opset 13), in the
# GridSample form (opset 16) and as the ONNX DeformConv operator (ONNX Runtime >= 1.25, TensorRT >= 10.1).
FORECAST_FORMS = (("forecast", "matmul"), ("forecast-gridsample", "grid_sample"),
                  ("forecast-deformconv", "onnx"))


def task_engines(plain_path):
    """[(label, path)]: the plain swiftnet-rn18 FP32 engine, the outlier model and the forecast bundle in
    each of FORECAST_FORMS that ONNX Runtime runs (FP32, from the committed demo checkpoints; exported
    once, reused while the checkpoint and form are unchanged)."""
    from export.api import export
    from export.forecast_export import BundleOptions, export_bundle
    from runtime import manifest as manifest_mod
    engines = [("plain", plain_path)]
    ood = os.path.join(ENGINE_DIR, "swiftnet-rn18-ood_fp32.onnx")
    if os.path.exists(TASK_CHECKPOINTS["outlier"]):
        sha = manifest_mod.sha256_file(TASK_CHECKPOINTS["outlier"])
        if not (os.path.exists(ood + ".json") and
                manifest_mod.Manifest.load(ood).source_checkpoint.get("sha256") == sha):
            log("exporting swiftnet-rn18-ood")
            export("swiftnet-rn18-ood", TASK_CHECKPOINTS["outlier"], SIZE, ood, parity_images=1,
                   log=lambda message: None)
        engines.append(("outlier", ood))
    if os.path.exists(TASK_CHECKPOINTS["forecast"]):
        sha = manifest_mod.sha256_file(TASK_CHECKPOINTS["forecast"])
        for label, form in _runnable(FORECAST_FORMS):
            bundle = os.path.join(ENGINE_DIR, "f2f-8-mid_fp32_" + form)
            made = None
            if os.path.exists(os.path.join(bundle, "forecast.json")):
                made = manifest_mod.Manifest.load(bundle)
                made = (made.source_checkpoints["f2f"]["sha256"], made.forecaster["deform_form"])
            if made != (sha, form):
                log("exporting the forecast bundle ({} form)".format(form))
                export_bundle(TASK_CHECKPOINTS["forecast"], bundle, BundleOptions(deform_form=form,
                              log=lambda message: None))
            engines.append((label, bundle))
    return engines


def _runnable(forms):
    """The forms this ONNX Runtime has kernels for (DeformConv: 1.25 and later)."""
    import onnxruntime
    version = tuple(int(p) for p in onnxruntime.__version__.split(".")[:2])
    return [(label, form) for label, form in forms if form != "onnx" or version >= (1, 25)]


def measure_tasks(plain_path, video, threads, iterations, warmup, frames):
    """Outlier and forecast models next to the plain model: engine level interleaved, then the
    streams end to end, alternated ``E2E_REPEATS`` times on the same video."""
    from runtime import open_engine
    engines = task_engines(plain_path)
    opened = [(label, open_engine(path, threads=threads)) for label, path in engines]
    try:
        runners = [bench.ForecastRunner(e, name=label) if label.startswith("forecast")
                   else bench.EngineRunner(e, name=label) for label, e in opened]
        log("tasks: {} x {} calls interleaved".format(", ".join(r.name for r in runners), iterations))
        m = bench.measure(runners, warmup_iters=warmup, iterations=iterations,
                          rounds=max(1, iterations // CALLS_PER_ROUND))
        entries, warnings = bench.results(m)
        e2e = dict((label, []) for label, _ in opened)
        for rep in range(E2E_REPEATS):
            for label, engine in opened:
                log("tasks: {} end to end (repeat {})".format(label, rep + 1))
                e2e[label].append(bench.end_to_end(engine, video, max_frames=frames, name=label))
    finally:
        for _, engine in opened:
            engine.close()
    return {"runners": entries, "e2e": e2e, "warnings": ["tasks: {}".format(w) for w in warnings]}


def measure_outlier_accuracy(ood_fp32=None, plain_fp32=None):
    """The accuracy side of the outlier targets under docs/evaluation.md: the committed outlier
    checkpoint (FP32, INT8) and the plain demo checkpoint on the declared test splits, by
    benchmarks/accuracy_tables.py (its cached engines and results are reused). The two engine
    arguments are unused: accuracy_tables exports its own, keyed by the checkpoints' sha256."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("accuracy_tables", os.path.join(REPO, "benchmarks",
                                                                                  "accuracy_tables.py"))
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    work = os.path.join(REPO, "out", "accuracy")
    for sub in ("engines", "results"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    logfile = os.path.join(work, "accuracy.log")
    splits = [tables.image_split(seed, logfile) for seed in tables.TEST_IMAGE_SEEDS]
    results = {"seeds": list(tables.TEST_IMAGE_SEEDS)}
    for name, arch, checkpoint, _, precisions in tables.MODELS:
        if name not in ("seg", "ood"):
            continue
        for precision in precisions:
            if name == "seg" and precision != "fp32":
                continue
            log("outlier accuracy: {} {} on the test splits".format(name, precision))
            path = tables.engine(name, arch, checkpoint, precision, work, logfile)
            results["plain" if name == "seg" else precision] = [
                tables.evaluate(path, d, 1, work, logfile) for d in splits]
    return results


def render_outlier_accuracy(acc):
    if not acc or "seeds" not in acc:
        return []
    import numpy as np
    fp32, int8, plain = acc["fp32"], acc["int8"], acc["plain"]

    def stats(values):
        values = [100.0 * v for v in values]
        return float(np.mean(values)), float(np.std(values, ddof=1)), " / ".join("{:.2f}".format(v) for v in values)

    ap = [r["outlier"]["ap"] for r in fp32]
    ap8 = [r["outlier"]["ap"] for r in int8]
    fpr = [r["outlier"]["fpr_at_95_tpr"] for r in fp32]
    fpr8 = [r["outlier"]["fpr_at_95_tpr"] for r in int8]
    drop = [a - b for a, b in zip(ap, ap8)]
    gap = [p["miou"] - r["inlier_miou"] for p, r in zip(plain, fp32)]
    lines = ["", "## Outlier detection accuracy (declared test splits)", "",
             "`rt-eval` of the committed outlier checkpoint on the test splits of docs/evaluation.md (seeds {}, 200 "
             "generated images each, in-scene outlier objects in half of them; `benchmarks/accuracy_tables.py`); "
             "mean ± sd, then the values per split. INT8: cpu flavor, percentile calibration on 100 val scenes, the "
             "outlier head in FP32.".format(", ".join(str(s) for s in acc["seeds"])), "",
             "| | mean ± sd | per split | target |", "|---|---:|---|---|"]
    m, sd, per = stats(ap)
    lines.append("| FP32 outlier AP | {:.2f} ± {:.2f} % | {} | mean ≥ 80 %, none below 77 %: {} |".format(
        m, sd, per, "met" if m >= 80.0 and min(ap) >= 0.77 else "NOT met"))
    m, sd, per = stats(ap8)
    lines.append("| INT8 outlier AP | {:.2f} ± {:.2f} % | {} | |".format(m, sd, per))
    m, sd, per = stats(drop)
    lines.append("| INT8 AP drop (pp) | {:.2f} ± {:.2f} | {} | ≤ 1 pp: {} |".format(
        m, sd, per, "met" if max(drop) <= 0.01 else "NOT met"))
    for label, values in (("FP32 FPR at 95 % TPR", fpr), ("INT8 FPR at 95 % TPR", fpr8)):
        m, sd, per = stats(values)
        lines.append("| {} | {:.2f} ± {:.2f} % | {} | ≤ 5 % on each: {} |".format(
            label, m, sd, per, "met" if max(values) <= 0.05 else "NOT met"))
    m, sd, per = stats([r["inlier_miou"] for r in fp32])
    lines.append("| FP32 inlier mIoU | {:.2f} ± {:.2f} % | {} | |".format(m, sd, per))
    m, sd, per = stats([r["miou"] for r in plain])
    lines.append("| plain swiftnet-rn18 mIoU, same pixels | {:.2f} ± {:.2f} % | {} | |".format(m, sd, per))
    m, sd, per = stats(gap)
    lines.append("| plain minus outlier model (pp) | {:.2f} ± {:.2f} | {} | ≤ 1 pp: {} |".format(
        m, sd, per, "met" if max(gap) <= 0.01 else "NOT met"))
    return lines


def render_tasks(tasks):
    """The outlier / forecast rows of BENCHMARKS.md (issue targets: FPS within 10 % / >= 0.85 x)."""
    if not tasks:
        return []
    by = dict((e["name"], e) for e in tasks["runners"])
    plain = by.get("plain")
    lines = ["", "## Outlier detection and forecasting next to plain segmentation (FP32, same run)", "",
             "Engine level: one interleaved run (a forecast call = features stage + feature ring + F2F + "
             "decoder of the forecast, once the stream is warm). End to end: the rt-segment pipeline on the "
             "same video, the streams alternated {} times; stream FPS is the steady rate: results per "
             "second from the first to the last result, a forecaster's results only (its warm-up frames run "
             "the features stage alone and are not counted). *forecast*: the DeformF2F-8 mid-term bundle in "
             "its default deformable form (`--deform-form matmul`: bilinear sampling as one MatMul, opset 17); "
             "*forecast-gridsample*: the same checkpoint with `--deform-form grid_sample` (GridSample, opset "
             "17); *forecast-deformconv*: with `--deform-form onnx` (the DeformConv operator, opset 19)."
             .format(E2E_REPEATS), "",
             "| model | engine mean ms | p99 | ratio to plain | stream FPS (each repeat) | mean stream FPS | "
             "stream FPS / plain | target |", "|---|---:|---:|---:|---|---:|---:|---|"]
    fps = dict((label, [r["fps_steady"] for r in runs]) for label, runs in tasks["e2e"].items())
    mean = dict((label, sum(v) / len(v)) for label, v in fps.items() if v)
    targets = {"outlier": ("within 10 %", lambda r: r >= 0.9), "forecast": ("≥ 0.85", lambda r: r >= 0.85)}
    targets["forecast-gridsample"] = targets["forecast-deformconv"] = targets["forecast"]
    for label in ("plain", "outlier") + tuple(label for label, _ in FORECAST_FORMS):
        e = by.get(label)
        if e is None:
            continue
        ratio = mean[label] / mean["plain"] if mean.get("plain") else None
        target = targets.get(label)
        verdict = "–" if target is None or ratio is None else "{}: {}".format(
            target[0], "met" if target[1](ratio) else "NOT met")
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            label, _f(e["latency_ms"]["mean"]), _f(e["latency_ms"]["p99"]),
            _f(e["latency_ms"]["mean"] / plain["latency_ms"]["mean"], 2) if plain else "–",
            " / ".join(_f(v) for v in fps[label]), _f(mean[label]), _f(ratio, 2), verdict))
    forecast_runs = tasks["e2e"].get("forecast") or []
    if forecast_runs and forecast_runs[0].get("forecast"):
        f = forecast_runs[0]["forecast"]
        lines += ["", "Forecast stream: {} frames forecast, {} warm-up (horizon {} s, offsets picked by {}).".format(
            f.get("frames_forecast"), f.get("frames_warmup"), _f((f.get("horizon") or {}).get("s"), 2),
            f.get("frame_selection"))]
    return lines


# -- BENCHMARKS.md ------------------------------------------------------------------------

def measure_ros2(engine, threads, quick):
    """rt-ros2 next to rt-segment on the same engine and frames (benchmarks/ros2_bench.py), where
    the ROS 2 wheels are installed (the 'ros' extra); None elsewhere."""
    import importlib.util
    if importlib.util.find_spec("rclpy") is None:
        log("ROS 2 (rclpy) not installed: no rt-ros2 table")
        return None
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import ros2_bench
    import ros2_transport
    frames, fps, size, rounds = (60, 30.0, (480, 640), 1) if quick else (300, 30.0, (480, 640), 3)
    transport = ros2_transport.table([(480, 640), (1080, 1920)], frames=60 if quick else 150,
                                     fps=fps)
    results, engine_info = ros2_bench.measure(engine, frames, fps, size, threads, rounds)
    return {"table": ros2_bench.table(results, frames, size, fps, rounds, engine_info),
            "per_round": ros2_bench.per_round(results), "results": results,
            "transport": transport}


def measure_triton(engine, threads, quick):
    """Triton serving rt-triton's repository next to rt-segment (benchmarks/triton_bench.py),
    where the tritonserver wheel and .venv-triton are installed (`make venv`); None elsewhere."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import triton_bench
    from runtime.errors import UserError
    try:
        return triton_bench.measure(engine, 30 if quick else 60, threads=threads)
    except UserError as exc:
        log("no Triton table: {}".format(exc))
        return None


def measure_fleet(engine, quick):
    """Drives as Ray tasks, 1 -> 2 workers (benchmarks/fleet_bench.py), where Ray is installed."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import fleet_bench
    from runtime.errors import UserError
    try:
        return fleet_bench.measure(engine, 4, 20 if quick else 40)
    except UserError as exc:
        log("no Ray fleet table: {}".format(exc))
        return None


def render_ros2(ros2):
    if not ros2:
        return []
    return ["", "## ROS 2: rt-ros2 next to rt-segment (same engine and frames, same run)", "",
            "`benchmarks/ros2_bench.py`: a generated drive published on a topic at the camera rate "
            "(sensor-data QoS) through the `rt-ros2` command, next to `rt-segment` on the same "
            "frames from a video, every frame and `--realtime` (the same newest-frame policy). "
            "FPS: results / (last result − first frame); latency: rt-segment capture → result, "
            "rt-ros2 receive → publish inside the node; *publish → back*: the round trip through "
            "both DDS hops, measured by the publisher. The camera's Fast DDS participant uses "
            "runtime/ros2_fastdds.xml, as docs/ros2.md tells camera drivers to; the table below "
            "shows why.", "", ros2["table"], "", ros2["per_round"]] + (
        ["", "### Camera images through Fast DDS: its defaults vs runtime/ros2_fastdds.xml", "",
         "`benchmarks/ros2_transport.py`: a camera process publishing bgr8 images with "
         "sensor-data QoS to a subscriber process, nothing else running.", "",
         ros2["transport"]] if ros2.get("transport") else [])


def _f(value, digits=1):
    return "–" if value is None else "{:.{}f}".format(value, digits)


def _by_kind(run):
    """Entries by key: variant label, 'pytorch', 'openvino' (f32 hint peer), 'openvino-bf16'..."""
    labels = dict((runner_name(l, b), l) for l, _, b in VARIANTS)
    out = {}
    for e in run["runners"]:
        backend = (e["info"] or {}).get("backend")
        if e["kind"] == "engine":
            out[labels.get(e["name"], e["name"])] = e
        elif backend == "pytorch":
            out["pytorch"] = e
        elif backend == "openvino":
            out["openvino" if e["name"] == "openvino-f32" else e["name"]] = e
    return out


def best_int8(by):
    """The fastest INT8 variant of a run (mean latency), or None."""
    found = [(by[l]["latency_ms"]["mean"], l) for l in by if l.startswith("INT8")]
    return min(found)[1] if found else None


def _speedup(slow, fast, key="mean"):
    if not slow or not fast or not fast["latency_ms"][key]:
        return None
    return slow["latency_ms"][key] / fast["latency_ms"][key]


def _paired_speedup(slow, fast):
    """From the per-round paired ratios to the first runner (median over rounds)."""
    if not slow or not fast or not slow.get("ratio_to_first_paired") or not fast.get("ratio_to_first_paired"):
        return None
    return slow["ratio_to_first_paired"] / fast["ratio_to_first_paired"]


def render(data):
    env, runs, labels = data["environment"], data["runs"], data["labels"]
    threads = env["threads"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/run_cpu_benchmarks.py{}` on {} ({:.0f} s). Each table was "
        "measured in one run: the runners of a row are interleaved in rounds ({} calls each per "
        "round after one untimed call that refills the caches the previous runner evicted, order "
        "rotated), with the same input and the same {} CPU threads, after an untimed warm-up. No "
        "number is given for hardware that did not run. Latency in ms per batch-1 call at 256×512; "
        "lower is better.".format(
            data["args"], data["created"], data["wall_s"], CALLS_PER_ROUND, threads),
        "",
        "## Machine",
        "",
    ]
    lines += ["- " + l for l in environment_lines(env)]
    lines.append("- weights: {}".format(data["weights"]))
    load = env.get("load_average") or {}
    busiest = max((load.get("start") or [0])[0], (load.get("end") or [0])[0])
    cores = (env.get("host") or {}).get("cores_usable") or threads
    if busiest > cores:
        lines += ["", "**This machine was shared during the run** (1-min load average up to {:.1f} on {} "
                  "cores): absolute latencies are inflated and noisy (see the CVs). Ratios within a row "
                  "are fairer, since the runners are interleaved, but contention is not neutral either: "
                  "runners whose threads wait on each other (PyTorch's OpenMP pool most) lose more. "
                  "Re-run on a quiet machine for absolute numbers.".format(busiest, cores)]

    head = runs.get(HEADLINE)
    lines += ["", "## Headline: SwiftNet-RN18 256×512, our CPU engines vs PyTorch eager FP32 (same run)", ""]
    if head:
        by = _by_kind(head)
        torch_entry = by.get("pytorch")
        lines += ["| runner | min | mean | p50 | p90 | p99 | CV | FPS | speed-up vs PyTorch: mean / p50 / paired |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        peers = {"pytorch": "PyTorch eager FP32", "openvino": "peer: OpenVINO on the FP32 ONNX, hint f32",
                 "openvino-bf16": "peer: OpenVINO on the FP32 ONNX, hint bf16"}
        for name in labels + ["openvino", "openvino-bf16", "pytorch"]:
            e = by.get(name)
            if e is None:
                continue
            st = e["latency_ms"]
            lines.append("| {} | {} | {} | {} | {} | {} | {:.1%} | {} | {}× / {}× / {}× |".format(
                peers.get(name) or title(name), _f(st["min"]), _f(st["mean"]), _f(st["p50"]),
                _f(st["p90"]), _f(st["p99"]),
                st["cv"], _f(e["throughput_fps"]), _f(_speedup(torch_entry, e), 2),
                _f(_speedup(torch_entry, e, "p50"), 2), _f(_paired_speedup(torch_entry, e), 2)))
        lines += ["", "*paired*: in every round the runners run back to back; the ratio of their round means, "
                  "median over the {} rounds, is the figure least moved by a shared machine's drift "
                  "(relative to ONNX Runtime {} for the other rows).".format(
                      head["rounds"], labels[0])]
        best_label = best_int8(by) or "FP32"
        ratio = _speedup(torch_entry, by.get(best_label))
        paired = _paired_speedup(torch_entry, by.get(best_label))
        others = ["{} {}× (mean; {}× paired)".format(title(l), _f(_speedup(torch_entry, by[l]), 2),
                                                     _f(_paired_speedup(torch_entry, by[l]), 2))
                  for l in labels if l.startswith("INT8") and l != best_label and l in by]
        lines += ["", "Target: the best CPU engine (INT8) at least {:.0f}× faster than PyTorch eager FP32. "
                  "{}".format(TARGET_SPEEDUP, (
                      "INT8 is not available yet (calib/ adds it); in this run ONNX Runtime FP32 is "
                      "{}× faster (mean; {}× paired).".format(_f(ratio, 2), _f(paired, 2))
                      if best_label == "FP32" else
                      "The fastest, {}, is {}× faster (mean; {}× paired): target {}.{}".format(
                          title(best_label), _f(ratio, 2), _f(paired, 2),
                          "met" if ratio and ratio >= TARGET_SPEEDUP else "NOT met",
                          " Also: {}.".format("; ".join(others)) if others else "")))]
        bf16 = by.get("openvino-bf16")
        if bf16 and best_label in by and bf16["latency_ms"]["mean"] < by[best_label]["latency_ms"]["mean"]:
            lines += ["", "OpenVINO's bf16 hint on the FP32 ONNX (its own default on CPUs with AMX / AVX512-BF16, "
                      "changing the numbers slightly) is faster still here ({} vs {} ms): on this CPU the speed "
                      "comes from OpenVINO's AMX kernels more than from INT8. Our OpenVINO backend keeps the "
                      "f32 hint so that an engine runs at the precision its manifest states.".format(
                          _f(bf16["latency_ms"]["mean"]), _f(by[best_label]["latency_ms"]["mean"]))]

    lines += ["", "## All architectures: mean (p99) ms, {} threads, one interleaved run per row".format(threads), ""]
    cols = [title(l) for l in labels] + ["PyTorch eager FP32", "peer: OpenVINO FP32 ONNX (f32)",
                                         "fastest INT8 vs PyTorch: mean / paired"]
    lines += ["| architecture | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for arch in ARCHS:
        run = runs.get(arch)
        if run is None:
            lines.append("| {} | ".format(arch) + " | ".join(["not run"] * len(cols)) + " |")
            continue
        by = _by_kind(run)
        cells = []
        for key in labels + ["pytorch", "openvino"]:
            e = by.get(key)
            cells.append("{} ({})".format(_f(e["latency_ms"]["mean"]), _f(e["latency_ms"]["p99"]))
                         if e else ("not installed" if key == "openvino" else "–"))
        fastest = by.get(best_int8(by) or labels[-1])
        cells.append("{}× / {}×".format(_f(_speedup(by.get("pytorch"), fastest), 2),
                                        _f(_paired_speedup(by.get("pytorch"), fastest), 2)))
        lines.append("| {} | {} |".format(arch, " | ".join(cells)))
    lines += ["", "What one timed call includes:", ""]
    described = head or next(iter(runs.values()), {"runners": []})
    for e in described["runners"]:
        lines.append("- **{}**: {}".format(e["name"], e["includes"]))
    lines.append("- The fair comparison is model-only: PyTorch runs the bare network on the tensor the "
                 "engine's graph computes internally, while the engines also cast/normalize the uint8 "
                 "frame and take the argmax (a few ms that PyTorch is spared).")

    lines += ["", "## End to end: the rt-segment pipeline, headless (ONNX Runtime FP32)", "",
              "Capture (decode of a generated 512×1024, 30 FPS drive video) → preprocess (resize to "
              "256×512, to tensor) → inference → postprocess, in three overlapping threads, nothing "
              "written. *Every frame*: the video is read as fast as the pipeline takes it (throughput; "
              "stage means in ms from this run). *Paced*: the video plays at 30 FPS and the pipeline "
              "takes the newest frame like a camera (drops counted): capture→result is the latency a "
              "camera user sees.", "",
              "| architecture | every frame: frames | FPS | read | preprocess | inference | postprocess "
              "| paced: frames (dropped) | FPS | capture→result p50 | p99 | engine-only mean |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for arch in ARCHS:
        e2e = data["e2e"].get(arch)
        if not e2e:
            continue
        full, live = e2e["file"], e2e["live"]
        lat, age = full["latency_ms"], live["latency_ms"]["capture_to_result"]
        engine_only = _by_kind(runs[arch]).get("FP32") if arch in runs else None
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} |".format(
            arch, full["frames"]["processed"], _f(full["fps"]), _f(lat["read"]["mean"]),
            _f(lat["preprocess"]["mean"]), _f(lat["inference"]["mean"]), _f(lat["postprocess"]["mean"]),
            live["frames"]["processed"], live["frames"]["dropped"], _f(live["fps"]), _f(age["p50"]),
            _f(age["p99"]), _f(engine_only["latency_ms"]["mean"]) if engine_only else "–"))

    lines += render_tasks(data.get("tasks"))
    lines += render_outlier_accuracy(data.get("outlier_accuracy"))
    lines += render_ros2(data.get("ros2"))

    o = data["overhead"]
    lines += ["", "## Measurement overhead", "",
              "The timing loop with a no-op runner ({} calls): what `time.perf_counter` around "
              "`run_once` adds to each sample, and the loop's whole cost per iteration.".format(o["iterations"]),
              "", "| per timed call (mean) | p99 | per loop iteration | target |", "|---:|---:|---:|---|",
              "| {:.4f} ms | {:.4f} ms | {:.4f} ms | < {} ms: {} |".format(
                  o["timed_ms"], o["timed_p99_ms"], o["loop_ms"], TARGET_OVERHEAD_MS,
                  "met" if o["loop_ms"] < TARGET_OVERHEAD_MS else "NOT met")]

    lines += ["", "## Jetson (TensorRT)", "",
              "Not measured yet: no Jetson has run this code. Fill a cell with the mean (p99) of "
              "`rt-bench --engine engines/<arch>_<precision>.plan --power --json out.json` on the device "
              "(MAXN, `sudo jetson_clocks`), swiftnet-rn18 at 256×512.", "",
              "| module | JetPack / TensorRT | FP32 | FP16 | INT8 | board power | energy per frame |",
              "|---|---|---|---|---|---|---|",
              "| TX2 | 4.6.x / 8.2 | not measured | not measured | n/a (no fast INT8 on SM 6.2) | not measured | not measured |",
              "| Xavier (AGX / NX) | 5.1.x / 8.5 | not measured | not measured | not measured | not measured | not measured |",
              "| Orin (AGX / NX / Nano) | 6.x / 8.6 or 10.3 | not measured | not measured | not measured | not measured | not measured |"]

    notes = [w for run in runs.values() for w in run["warnings"]] + \
            ["{}: {}".format(arch, n) for arch, run in runs.items() for n in run["notes"]] + data["notes"]
    if notes:
        lines += ["", "## Warnings and notes from this run", ""] + ["- " + n for n in notes]
    return "\n".join(lines) + "\n"


# -- main ---------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(REPO, "BENCHMARKS.md"))
    parser.add_argument("--json", help="also write the raw results as JSON")
    parser.add_argument("--iterations", type=int, default=20, help="timed calls per runner (headline: x2)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up calls per runner")
    parser.add_argument("--e2e-frames", type=int, default=60,
                        help="video length (30 FPS) and frames of the every-frame run")
    parser.add_argument("--threads", type=int, default=None, help="default: usable cores")
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--re-export", action="store_true", help="export the engines again")
    parser.add_argument("--quick", action="store_true", help="5 calls per runner, 30 frames")
    parser.add_argument("--no-tasks", action="store_true",
                        help="skip the outlier / forecast models next to plain segmentation")
    parser.add_argument("--no-ros2", action="store_true", help="skip rt-ros2 next to rt-segment")
    parser.add_argument("--no-triton", action="store_true", help="skip Triton next to rt-segment")
    parser.add_argument("--no-fleet", action="store_true", help="skip the Ray fleet scaling table")
    args = parser.parse_args(argv)
    args.output = check_output(args.output, "--output")  # before minutes of measuring
    if args.json:
        args.json = check_output(args.json, "--json", others=[("--output", args.output)])
    if args.quick:
        args.iterations, args.warmup, args.e2e_frames = 5, 1, 30
    start = time.time()
    load_start = bench.load_average()
    threads = args.threads or bench.default_threads()
    archs = [a for a in args.archs.split(",") if a]

    log("measurement overhead (no-op runner)")
    overhead = bench.loop_overhead(iterations=20000)

    runs, e2e, labels, weights, notes = {}, {}, [], {}, []
    frames = max(args.e2e_frames, 30)
    video = drive_video(os.path.join(ENGINE_DIR, "drive_512x1024_{}f.mp4".format(frames)), frames)
    for arch in archs:
        fp32, checkpoint = export_fp32(arch, args.re_export)
        weights[arch] = os.path.relpath(checkpoint, REPO) if checkpoint else "untrained (seeded)"
        engines = []
        for label, make, backend in VARIANTS:
            path = make(arch, fp32)
            if path:
                engines.append((label, path, backend))
                if label not in labels:
                    labels.append(label)
        iterations = args.iterations * (2 if arch == HEADLINE else 1)
        runs[arch] = measure_arch(arch, engines, checkpoint, threads, iterations, args.warmup,
                                  hints=PEER_HINTS if arch == HEADLINE else PEER_HINTS[:1])
        e2e[arch] = measure_e2e(arch, fp32, video, threads, args.e2e_frames)
    labels = [label for label, _, _ in VARIANTS if label in labels]
    tasks = None
    if HEADLINE in archs and not args.no_tasks:
        tasks = measure_tasks(export_fp32(HEADLINE)[0], video, threads, args.iterations, args.warmup,
                              args.e2e_frames)
        notes += tasks["warnings"]
    accuracy = None
    if HEADLINE in archs and not args.no_tasks and not args.quick:
        accuracy = measure_outlier_accuracy(os.path.join(ENGINE_DIR, "swiftnet-rn18-ood_fp32.onnx"),
                                            export_fp32(HEADLINE)[0])

    ros2 = None
    if HEADLINE in archs and not args.no_ros2:
        ros2 = measure_ros2(export_fp32(HEADLINE)[0], threads, args.quick)

    triton = None
    if HEADLINE in archs and not args.no_triton:
        triton = measure_triton(export_fp32(HEADLINE)[0], threads, args.quick)
    fleet = None
    if HEADLINE in archs and not args.no_fleet:
        fleet = measure_fleet(export_fp32(HEADLINE)[0], args.quick)

    all_entries = [e for run in runs.values() for e in run["runners"]]
    env = bench.environment(threads, all_entries, load_start=load_start)
    notes += bench.environment_warnings(env)
    data = {"created": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "args": (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
            "wall_s": time.time() - start, "environment": env, "runs": runs, "e2e": e2e,
            "labels": labels, "overhead": overhead, "notes": notes, "tasks": tasks,
            "outlier_accuracy": accuracy, "ros2": ros2, "triton": triton, "fleet": fleet,
            "weights": ", ".join("{}: {}".format(a, w) for a, w in weights.items())}
    native = None  # libswiftrt: overhead over the bare OpenVINO call + rt-bench rows (docs/native.md)
    if HEADLINE in archs:
        from native_overhead import section
        log("native core overhead (benchmarks/native_overhead.py)")
        native = section(export_fp32(HEADLINE)[0], threads or 2, rt_bench_iterations=args.iterations)
        if native is None:
            notes.append("native: libswiftrt is not built (make native-lib): no native rows")
    data["native"] = native[1] if native else None
    import fleet_bench
    import triton_bench
    write_text_atomic(args.output, render(data) + ("\n" + native[0] if native else "")
                      + ("\n" + triton_bench.section(triton) + "\n" if triton else "")
                      + ("\n" + fleet_bench.section(fleet) + "\n" if fleet else ""))
    if args.json:
        write_atomic(args.json, data, indent=2, default=str)
    log("wrote {} in {:.0f} s".format(args.output, time.time() - start))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="run_cpu_benchmarks"))
