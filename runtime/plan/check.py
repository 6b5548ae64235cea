"""The post-build check of a TensorRT plan, run through libswiftrt: what rt-plan keeps is what the core runs.

The staged plan runs on the core's TensorRT backend and the source ONNX model on the core's ONNX
Runtime backend, on the same camera frames (the shipped road scenes or the user's:
runtime.plan.check_inputs); the core preprocesses both, so the check compares what an application
gets: class maps (share of differing class decisions, the limit per precision in
runtime.plan.build), outlier scores (finite, max abs error recorded) and, for a forecast bundle, the
forecast maps of a stream fed at the bundle's frame rate. runtime.compare is the comparator.

An engine here is anything with libswiftrt's CoreEngine interface (``run(frame, ...)`` -> dict of
arrays, ``last_result``, ``close()``): the tests inject stand-ins of that shape.
"""
from runtime import compare
from runtime.errors import UserError
from runtime.plan.check_inputs import check_frames, describe

CLASS_MAP, OUTLIER_SCORE, FORECAST_MAP = "class_map", "outlier_score", "forecast_map"


def core_backends():
    """The backends this libswiftrt was built with (runtime.backends.capabilities)."""
    from runtime.backends import capabilities
    return [c.name for c in capabilities() if c.available]


def require_core_backends():
    """UserError (before minutes of building) where libswiftrt cannot run the check: it needs the
    TensorRT backend for the plan and a CPU backend (ONNX Runtime, else OpenVINO) for the ONNX model."""
    backends = core_backends()
    have = " ".join(backends) or "none"
    if "tensorrt" not in backends:
        raise UserError("the plan check runs the plan through libswiftrt's TensorRT backend, and this "
                        "libswiftrt was built without it (backends: {}): build it on the device with "
                        "SWIFTRT_CMAKE_ARGS=-DSWIFTRT_WITH_TENSORRT=ON (docs/native.md)".format(have))
    if "onnxruntime" not in backends and "openvino" not in backends:
        raise UserError("the plan check runs the ONNX model through libswiftrt's ONNX Runtime backend, and "
                        "this libswiftrt was built without it (backends: {}): build it with "
                        "-DSWIFTRT_WITH_ONNXRUNTIME=ON against ONNX Runtime 1.10 or newer "
                        "(docs/native.md)".format(have))


def open_plan(path, manifest=None):
    """The staged plan (or a plan bundle's forecast.json) on the core's TensorRT backend."""
    from runtime.backends.native import CoreEngine
    return CoreEngine(path, backend="tensorrt")


def open_reference(path):
    """The source ONNX model (or bundle) on the core's CPU backend: ONNX Runtime's CPU provider,
    OpenVINO where the core has no ONNX Runtime."""
    from runtime.backends.native import CoreEngine
    if "onnxruntime" in core_backends():
        return CoreEngine(path, backend="onnxruntime", providers="cpu")
    return CoreEngine(path, backend="openvino")


def compared(reference):
    """What the check compared, for the plan's manifest."""
    name = getattr(reference, "backend_name", None) or "a stand-in"
    return "tensorrt plan vs {} on the source ONNX, both through libswiftrt".format(name)


def _merge(worst, problems, result):
    problems.extend(result["problems"])
    for out, stats in result["outputs"].items():
        for key, value in stats.items():
            worst.setdefault(out, {})[key] = max(value, worst.get(out, {}).get(key, value))


def _verdict(reference, count, source, max_mismatch, worst, problems):
    return {"images": count, "inputs": describe(source), "max_mismatch": max_mismatch,
            "outputs": worst, "problems": sorted(set(problems)), "ok": not problems,
            "compared": compared(reference)}


def compare_model(plan, reference, count, max_mismatch, outlier=False, source=None, batch=1):
    """A segmentation or outlier model: ``count`` frames through both engines, one by one, and for
    a batch-N model also N of them in one batch call (every batch slot of the plan, not only the
    first); the check's dict. A run the core refuses (NaN or Inf logits: no class map) is a problem."""
    worst, problems = {}, []
    frames = check_frames(count, source)
    wants = []
    for frame in frames:
        wants.append(_picked(reference.run(frame, outlier=outlier), (CLASS_MAP, OUTLIER_SCORE)))
        got = _plan_run(problems, lambda: [plan.run(frame, outlier=outlier)])
        if got:
            _merge(worst, problems, compare.check_outputs(wants[-1], _picked(got[0], (CLASS_MAP, OUTLIER_SCORE)),
                                                          max_mismatch=max_mismatch))
    if batch > 1 and frames:
        slots = [i % len(frames) for i in range(batch)]
        got = _plan_run(problems, lambda: plan.run_batch([frames[i] for i in slots], outlier=outlier))
        for i, outputs in zip(slots, got or []):
            _merge(worst, problems, compare.check_outputs(wants[i], _picked(outputs, (CLASS_MAP, OUTLIER_SCORE)),
                                                          max_mismatch=max_mismatch))
    return _verdict(reference, len(frames), source, max_mismatch, worst, problems)


def _plan_run(problems, run):
    """``run()``'s outputs, or None with the core's refusal recorded as a problem of the plan."""
    try:
        return run()
    except RuntimeError as exc:   # libswiftrt's SRT_ERROR_BACKEND: e.g. NaN or Inf logits
        problems.append("the plan's run failed: {}".format(str(exc).splitlines()[0]))
        return None


def compare_bundle(plan, reference, count, max_mismatch, past_offsets, frame_rate, source=None):
    """A forecast bundle: one stream of frames at the trained rate through both bundles; the
    forecast maps of the last ``count`` frames are compared (the first fill the ring)."""
    worst, problems = {}, []
    warmup = -min(past_offsets) if past_offsets else 0
    frames = check_frames(warmup + count, source)
    done = 0
    for index, frame in enumerate(frames):
        stamp = index / float(frame_rate)
        want, got = (e.run(frame, timestamp=stamp, class_map=False, forecast=True) for e in (reference, plan))
        if not (reference.last_result.is_forecast and plan.last_result.is_forecast):
            continue
        done += 1
        _merge(worst, problems, compare.check_outputs({FORECAST_MAP: want[FORECAST_MAP]},
                                                      {FORECAST_MAP: got[FORECAST_MAP]},
                                                      max_mismatch=max_mismatch))
    if not done:
        problems.append("no forecast from both bundles in {} frames".format(len(frames)))
    return _verdict(reference, done, source, max_mismatch, worst, problems)


def _picked(outputs, names):
    return dict((name, outputs[name]) for name in names if name in outputs)
