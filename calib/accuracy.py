"""What INT8 / FP16 costs: accuracy against the FP32 model, and which layers to keep in FP32.

* :class:`Measure` compares a candidate ONNX with the FP32 reference, either as the mIoU
  drop (percentage points) on a held-out Cityscapes-format set (same predictions and
  metric as rt-eval), or, without one, as the argmax agreement on generated road scenes
  (the drop is then 100 x the fraction of pixels whose class differs).
* :func:`search_keep_fp32` quantizes everything, ranks the weighted layers by how much
  leaving each one in FP32 reduces the logits' error (one pass per layer on a few images,
  on a copy of the QDQ model where only that layer reads FP32 inputs), then leaves the
  top-ranked layers in FP32 (1, 2, 4, ... then bisection) until the drop is at most
  ``max_drop``. Bounded: one probe per layer and at most about 2*log2(layers) quantizations.
* :func:`latency_ratio`: FP32 and INT8 timed in the same run, interleaved.
"""
import copy
import os
import time

import cv2
import numpy as np

from runtime import compare
from runtime.errors import UserError

GENERATED_SEED = 7777
PROBE_IMAGES = 2


def _cpu_engine(path, manifest=None):
    """``path`` on ONNX Runtime's CPU provider (calib.ort_session.CpuSegmenter). ``manifest``: a
    staged candidate's Manifest (it has no manifest file; its hash was just computed)."""
    from calib.ort_session import CpuSegmenter
    return CpuSegmenter(path, manifest)


def _at_label_size(class_map, shape):
    """rt-eval's rule: class maps are compared at the label's resolution (nearest)."""
    if class_map.shape != tuple(shape[:2]):
        class_map = cv2.resize(class_map, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return class_map


class Measure(object):
    """Accuracy of candidate ONNX models against the FP32 model ``fp32_onnx``.

    With ``eval_data`` (a Cityscapes-format root): mIoU drop in percentage points on its
    ``split``. Without: argmax agreement on ``images`` generated scenes. Calling it with a
    candidate path returns a JSON-ready dict whose ``drop`` is what --max-drop bounds.
    """

    def __init__(self, fp32_onnx, eval_data=None, split="val", images=8, seed=GENERATED_SEED,
                 limit=None, progress=False):
        self.fp32_onnx = str(fp32_onnx)
        self.reference = _cpu_engine(self.fp32_onnx)
        self.manifest = self.reference.manifest
        self.names = [c["name"] for c in self.reference.classes]
        self.eval_data = eval_data
        self.progress = progress
        if eval_data:
            self.pairs = _pairs(eval_data, split)
            if limit:
                self.pairs = self.pairs[:int(limit)]
            self.split = split
            self.ref_maps, matrix = self._run(self.reference)
            self.ref_summary = matrix.summary(self.names)
        else:
            if images < 1:
                raise UserError("at least one generated image is needed to measure agreement")
            from export.scenes import render_scene
            size = self.reference.size
            self.seed = int(seed)
            self.frames = [render_scene(self.seed, i, size=size)[0] for i in range(int(images))]
            self.ref_maps = [self.reference.class_map(f).copy() for f in self.frames]

    def _run(self, engine, desc="evaluating FP32"):
        from calib.ranges import make_progress
        from runtime.data.cityscapes import read_image, read_label
        from runtime.metrics import ConfusionMatrix
        matrix = ConfusionMatrix(len(engine.classes), engine.manifest.ignore_id)
        maps = []
        bar = make_progress(len(self.pairs), desc, self.progress)
        try:
            for image_path, label_path in self.pairs:
                image = read_image(image_path)
                label = read_label(label_path)
                class_map = engine.class_map(image)
                maps.append(class_map.copy())
                matrix.update(_at_label_size(class_map, label.shape), label)
                bar.update(1)
        finally:
            bar.close()
        return maps, matrix

    def frames_for_probe(self, count=PROBE_IMAGES):
        """A few BGR frames to rank layers on."""
        if self.eval_data:
            from runtime.data.cityscapes import read_image
            return [read_image(p[0]) for p in self.pairs[:count]]
        return self.frames[:count]

    def __call__(self, candidate):
        from runtime.manifest import sha256_file
        candidate = str(candidate)
        engine = _cpu_engine(candidate, self.manifest.derive(artifact={
            "file": os.path.basename(candidate), "format": "onnx", "sha256": sha256_file(candidate)}))
        try:
            if self.eval_data:
                maps, matrix = self._run(engine, "evaluating {}".format(
                    os.path.basename(str(candidate))))
                summary = matrix.summary(self.names)
                agree = compare.Agreement().extend(maps, self.ref_maps).value
                drop = 100.0 * (self.ref_summary["miou"] - summary["miou"])
                return {"reference": "fp32",
                        "reference_sha256": self.manifest.sha256,
                        "metric": "miou", "data": os.path.abspath(self.eval_data),
                        "split": self.split, "images": len(self.pairs),
                        "miou": summary["miou"], "fp32_miou": self.ref_summary["miou"],
                        "miou_drop_pp": drop, "pixel_accuracy": summary["pixel_accuracy"],
                        "fp32_pixel_accuracy": self.ref_summary["pixel_accuracy"],
                        "agreement": agree, "drop": drop}
            maps = [engine.class_map(f) for f in self.frames]
            agree = compare.Agreement().extend(maps, self.ref_maps).value
            return {"reference": "fp32", "reference_sha256": self.manifest.sha256,
                    "metric": "agreement", "data": "generated", "seed": self.seed,
                    "images": len(self.frames), "size": list(self.reference.size),
                    "agreement": agree, "disagreement_pp": 100.0 * (1.0 - agree),
                    "drop": 100.0 * (1.0 - agree),
                    "note": "no held-out set given: argmax agreement with FP32 on generated "
                            "scenes; measure the mIoU drop with --eval-data"}
        finally:
            engine.close()


def _pairs(root, split):
    from runtime.data.cityscapes import find_pairs
    if not os.path.isdir(str(root)):
        raise UserError("--eval-data {} is not a folder".format(root))
    split_dir = os.path.join(str(root), "leftImg8bit", split)
    pairs = find_pairs(str(root), split if os.path.isdir(split_dir) else None)
    if not pairs:
        raise UserError("no images with labels under {} (Cityscapes layout: leftImg8bit/ and "
                        "gtFine/ *_labelTrainIds.png or *_labelIds.png)".format(root))
    return pairs


def describe(result):
    """One line for the log."""
    if result["metric"] == "miou":
        return ("mIoU {:.2f} % vs FP32 {:.2f} % (drop {:+.2f} pp), agreement {:.3f} % on {} "
                "held-out images".format(100 * result["miou"], 100 * result["fp32_miou"],
                                         result["miou_drop_pp"], 100 * result["agreement"],
                                         result["images"]))
    return "argmax agreement with FP32 {:.3f} % on {} generated scenes".format(
        100 * result["agreement"], result["images"])


# -- keep-fp32 search ---------------------------------------------------------------------------

def _logits_name(model):
    """The tensor the postprocessing reads (the logits), or the first graph output.

    In a QDQ model that is the logits after their Q/DQ pair (and the Slice that drops the
    CPU flavor's padded channels, calib.cpu_graph.pad_conv_outputs): the class count of FP32.
    """
    from calib.qdq import network_bounds
    _, post = network_bounds(model)
    by_name = dict((n.name, n) for n in model.graph.node)
    for name in post:
        node = by_name[name]
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear", "Slice"):
            return node.input[0]
    return model.graph.output[0].name


def _with_output(model, name):
    from onnx import TensorProto, helper
    model = copy.deepcopy(model)
    if name not in [o.name for o in model.graph.output]:
        model.graph.output.extend([helper.make_tensor_value_info(name, TensorProto.FLOAT, None)])
    return model


def _session(model):
    from calib.ort_session import cpu_session
    return cpu_session(model)


def _bypass(qdq_model, fp32, node_name):
    """A copy of the QDQ model where only ``node_name`` (and its activation) reads FP32
    inputs and weights: nearly what leaving it out of quantization gives."""
    from calib.qdq import expand_units, float_inputs
    model = copy.deepcopy(qdq_model)
    float_inputs(model, fp32, set(expand_units(fp32, [node_name])), suffix="__fp32_probe")
    return model


def rank_layers(prepared_model, ranges, flavor, frames, keep_fp32=(), workdir=None,
                progress=True):
    """[(layer name, benefit)] sorted by how much leaving the layer in FP32 lowers the logits'
    mean squared error against FP32 on ``frames`` (relative to the logits' variance)."""
    from calib import qdq
    from calib.ranges import make_progress
    fp32 = qdq.flavor_model(prepared_model, flavor)
    candidates = qdq.search_candidates(fp32, flavor, skip=keep_fp32 or ())
    probe_path = os.path.join(workdir, "probe.onnx") if workdir else None
    if probe_path is None:
        import tempfile
        probe_path = os.path.join(tempfile.mkdtemp(prefix="calib-probe-"), "probe.onnx")
    qdq.quantize(prepared_model, probe_path, ranges, flavor, keep_fp32, workdir=workdir)
    probe = qdq.load(probe_path)
    input_name = fp32.graph.input[0].name
    feeds = [{input_name: f} for f in frames]
    logits_fp32 = _logits_name(fp32)
    logits_qdq = _logits_name(probe)
    reference = _session(_with_output(fp32, logits_fp32))
    ref = [reference.run([logits_fp32], feed)[0].astype(np.float64) for feed in feeds]
    scale = float(np.mean([np.var(r) for r in ref])) or 1.0

    def error(model):
        session = _session(_with_output(model, logits_qdq))
        out = [session.run([logits_qdq], feed)[0].astype(np.float64) for feed in feeds]
        return float(np.mean([np.mean((o - r) ** 2) for o, r in zip(out, ref)])) / scale

    base = error(probe)
    bar = make_progress(len(candidates), "ranking layers", progress)
    benefits = []
    try:
        for name in candidates:
            benefits.append((name, base - error(_bypass(probe, fp32, name))))
            bar.update(1)
    finally:
        bar.close()
    benefits.sort(key=lambda item: -item[1])
    return benefits, base


def search_keep_fp32(prepared_model, ranges, flavor, measure, max_drop, keep_fp32=(), first=None,
                     staged=None, workdir=None, progress=True, log=None, max_trials=None):
    """Leave the most costly layers in FP32 until ``measure(model)['drop'] <= max_drop``.

    Writes the chosen model to ``staged``; returns {'keep_fp32', 'info', 'result', 'ranking',
    'trials', ...}. Raises UserError when even every layer in FP32 does not get there.
    """
    from calib import qdq
    from calib.ranges import make_progress
    log = log or (lambda message: None)
    keep_fp32 = list(keep_fp32 or ())
    frames = measure.frames_for_probe()
    pre = _preprocessor(measure)
    tensors = [pre(f)[0] for f in frames]
    t0 = time.time()
    ranking, base_error = rank_layers(prepared_model, ranges, flavor, tensors, keep_fp32,
                                      workdir=workdir, progress=progress)
    order = [name for name, _ in ranking]
    log("ranked {} layers in {:.0f} s; costliest: {}".format(
        len(order), time.time() - t0, ", ".join(order[:3])))
    trials = []
    results = {}
    if first is not None:
        results[0] = first
        trials.append({"kept": 0, "drop": first["drop"]})
    folder = workdir or os.path.dirname(os.path.abspath(staged))
    steps = max_trials or (2 * max(1, int(np.ceil(np.log2(max(2, len(order)))))) + 2)
    bar = make_progress(steps, "keep-fp32 search", progress)

    def attempt(k):
        if k in results:
            return results[k]
        path = os.path.join(folder, "search_{}.onnx".format(k))
        info = qdq.quantize(prepared_model, path, ranges, flavor, keep_fp32 + order[:k],
                            workdir=workdir)
        result = measure(path)
        results[k] = result
        trials.append({"kept": k, "drop": result["drop"]})
        bar.update(1)
        log("  {} layer(s) in FP32: drop {:.3f}".format(k, result["drop"]))
        attempt.info[k] = (info, path)
        return result
    attempt.info = {}
    try:
        low, high = 0, None  # low: largest k known to fail; high: smallest k known to pass
        k = 1
        while k <= len(order):
            if attempt(k)["drop"] <= max_drop:
                high = k
                break
            low = k
            if k == len(order):
                break
            k = min(len(order), k * 2)
        if high is None:
            raise UserError("even with all {} layers in FP32 the drop is {:.3f} > --max-drop "
                            "{:.3f}: raise --max-drop or check the calibration images".format(
                                len(order), results[max(results)]["drop"], max_drop))
        while high - low > 1:
            middle = (low + high) // 2
            if attempt(middle)["drop"] <= max_drop:
                high = middle
            else:
                low = middle
    finally:
        bar.close()
    info, path = attempt.info[high]
    os.replace(path, staged)
    chosen = keep_fp32 + order[:high]
    return {"keep_fp32": chosen, "info": info, "result": results[high],
            "max_drop": max_drop, "layers": len(order),
            "ranking": [{"layer": name, "benefit": round(value, 6)} for name, value in ranking],
            "base_relative_logit_error": base_error,
            "trials": sorted(trials, key=lambda t: t["kept"])}


def _load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _preprocessor(measure):
    from runtime.core_preprocess import Preprocessor
    return Preprocessor(measure.manifest.input)


# -- latency ---------------------------------------------------------------------------------------

def latency_ratio(fp32_onnx, candidate, runs=12, warmup=2, threads=None, spinning=True):
    """Median latency of FP32 and candidate with ONNX Runtime CPU, runs interleaved so that
    load on the machine hits both alike. Returns {fp32_ms, int8_ms, ratio, runs, threads}.

    ``spinning``: ONNX Runtime's default (worker threads spin while waiting); on a machine
    where other processes compete for the cores, spinning slows both models, the INT8 one
    more (it has more, shorter parallel sections): compare with ``spinning=False``.
    """
    import onnxruntime as ort
    from calib.ort_session import cpu_session
    threads = int(threads or os.cpu_count() or 1)
    sessions = [cpu_session(str(path), threads, spinning) for path in (fp32_onnx, candidate)]
    meta = sessions[0].get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in meta.shape]
    rng = np.random.RandomState(0)
    if "uint8" in meta.type:
        data = rng.randint(0, 256, size=shape).astype(np.uint8)
    else:
        data = rng.randn(*shape).astype(np.float32)
    feed = {meta.name: data}
    for session in sessions:
        for _ in range(warmup):
            session.run(None, feed)
    times = [[], []]
    for _ in range(runs):
        for i, session in enumerate(sessions):
            start = time.perf_counter()
            session.run(None, feed)
            times[i].append((time.perf_counter() - start) * 1e3)
    fp32_ms, int8_ms = float(np.median(times[0])), float(np.median(times[1]))
    import platform
    return {"fp32_ms": round(fp32_ms, 2), "int8_ms": round(int8_ms, 2),
            "ratio": round(int8_ms / fp32_ms, 3), "runs": runs, "threads": threads,
            "spinning": bool(spinning), "load_average": _load_average(),
            "machine": platform.machine(), "processor": platform.processor() or None,
            "onnxruntime": ort.__version__}
