"""Accuracy of a forecast bundle on a sequence folder: forecast vs copy-last vs oracle.

For every sequence and every frame t whose past frames (t + past offsets) and target frame
t + horizon lie inside the sequence:

- forecast: the bundle's class map for t + horizon from the features of the past frames;
- copy-last: the segmentation of frame t (the decoder on t's own features, the core's current
  segmentation), the baseline a forecaster must beat;
- oracle: the segmentation of frame t + horizon itself (the upper bound of this decoder),

each compared with the ground truth of frame t + horizon at the label's full resolution
(class maps resized with nearest neighbour). mIoU over all classes and over the moving
classes (person ... bicycle), as in the DeformF2F paper. Each sequence streams once through
libswiftrt, which keeps the ring of past features and decodes the current frame too.

When the sequences were recorded at another frame rate than the bundle was trained at,
offsets and horizon are converted by time (nearest frame; the core picks past frames by time
as well) and the result says so.
"""
import sys

import cv2
import numpy as np

from runtime import compare, open_engine
from runtime import manifest as manifest_mod
from runtime.data.cityscapes import find_pairs, group_sequences, read_split_info
from runtime.errors import UserError
from runtime.eval_common import check_limit, pct, progress_printer
from runtime.metrics import ConfusionMatrix, check_label_ids

MOVING_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
METHODS = ("forecast", "copy_last", "oracle")


def frame_offsets(bundle, sequence_fps):
    """(past offsets, horizon) in frames of the sequences, and whether they were converted."""
    rate = float(bundle.frame_rate)
    if not sequence_fps or abs(float(sequence_fps) - rate) < 1e-6:
        return list(bundle.past_offsets), int(bundle.horizon), False
    scale = float(sequence_fps) / rate
    offsets = [int(round(o * scale)) for o in bundle.past_offsets]
    return offsets, max(1, int(round(bundle.horizon * scale))), True


def _resized(class_map, shape):
    if class_map.shape != shape:
        class_map = cv2.resize(class_map, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return class_map


class ForecastScores(object):
    """Confusion matrices of the three methods (and agreement with a reference forecast)."""

    def __init__(self, classes, ignore_id):
        self.names = [c["name"] for c in classes]
        self.moving = [i for i, name in enumerate(self.names) if name in MOVING_CLASSES]
        self.matrices = dict((m, ConfusionMatrix(len(classes), ignore_id)) for m in METHODS)
        self.samples = 0

    def summary(self):
        out = {"samples": self.samples}
        for method, matrix in self.matrices.items():
            iou = matrix.iou()
            moving = [iou[i] for i in self.moving if not np.isnan(iou[i])]
            block = matrix.summary(self.names)
            block["moving_miou"] = float(np.mean(moving)) if moving else None
            out[method] = block
        out["gain_over_copy_last_pp"] = 100.0 * (out["forecast"]["miou"] - out["copy_last"]["miou"])
        return out


def evaluate_sequences(bundle, sequences, offsets, horizon, reference=None, progress=None,
                       sequence_fps=None):
    """Scores of ``bundle`` (an engine runtime.open_engine opened on a bundle with
    ``current=True``) on ``sequences``.

    ``sequences``: lists of (image path, label path) in frame order, streamed through the core
    at ``sequence_fps`` (None: the bundle's rate), so the core's ring picks the past frames by
    time as on a vehicle. ``reference``: a second bundle (e.g. FP32 for an INT8 one) whose
    forecasts are scored too and compared pixelwise. Returns (scores, reference scores or None,
    forecast agreement or None).
    """
    from runtime.data.cityscapes import read_label
    first = -min(offsets)
    rate = float(sequence_fps or bundle.frame_rate)
    scores = ForecastScores(bundle.classes, bundle.manifest.ignore_id)
    ref_scores = ForecastScores(bundle.classes, bundle.manifest.ignore_id) if reference else None
    agreement = compare.Agreement()
    for frames in sequences:
        if len(frames) <= first + horizon:
            raise UserError("sequence of {} frames is too short for past offsets {} and horizon {} (frames)".format(
                len(frames), offsets, horizon))
        runs = [(bundle, scores)] + ([(reference, ref_scores)] if reference else [])
        forecasts = []
        for engine, target in runs:
            current, predicted = _stream(engine, frames, rate)
            maps = []
            for t in range(first, len(frames) - horizon):
                if t not in predicted:
                    raise UserError("{}: no forecast at frame {} of the sequence of {} (its past frames "
                                    "were not found by time)".format(engine.path, t, frames[t][0]))
                label = read_label(frames[t + horizon][1])
                check_label_ids(label, bundle.manifest.ignore_id, len(bundle.classes), frames[t + horizon][1])
                forecast = _resized(predicted[t], label.shape)
                target.matrices["forecast"].update(forecast, label)
                target.matrices["copy_last"].update(_resized(current[t], label.shape), label)
                target.matrices["oracle"].update(_resized(current[t + horizon], label.shape), label)
                target.samples += 1
                maps.append(forecast)
                if engine is bundle and progress:
                    progress()
            forecasts.append(maps)
        if reference:
            agreement.extend(forecasts[0], forecasts[1])
    return scores, ref_scores, agreement.value


def _stream(engine, frames, rate):
    """One sequence through the core from an empty ring: (current class map per frame,
    {frame index: forecast class map} for the frames that got one)."""
    engine.reset()
    current, predicted = [], {}
    for index, (image_path, _) in enumerate(frames):
        image = cv2.imread(image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise UserError("cannot read image {}".format(image_path))
        step = engine.step(image, index / rate)
        current.append(step.current_map.copy())
        if step.is_forecast:
            predicted[index] = step.class_map.copy()
    return current, predicted


def count_samples(sequences, offsets, horizon):
    first = -min(offsets)
    return sum(max(0, len(frames) - horizon - first) for frames in sequences)


def evaluate_bundle(bundle_path, data, split="val", reference=None, limit=None, backend=None,
                    threads=None, verify=True, quiet=False):
    """rt-eval on a forecast bundle and a sequence folder: the result dict rt-eval prints and writes.
    Each sequence streams through libswiftrt (the ring of past features inside the core)."""
    check_limit(limit)
    if reference and manifest_mod.peek_task(reference) != "forecast":
        raise UserError("--reference {} must be a forecast bundle too".format(reference))
    sequences = [frames for frames in group_sequences(find_pairs(data, split)).values()]
    if not sequences:
        raise UserError("no sequences with labels under {} (split {!r}); write some with "
                        "rt-synth sequences".format(data, split))
    if limit:
        sequences = sequences[:limit]
    info = read_split_info(data, split) or {}
    fps = (info.get("sequences") or {}).get("fps") or info.get("fps")
    bundle = open_engine(bundle_path, backend=backend, threads=threads, verify=verify, current=True)
    ref_bundle = None
    try:
        if reference:
            ref_bundle = open_engine(reference, threads=threads, verify=verify, current=True)
        offsets, horizon, converted = frame_offsets(bundle, fps)
        if converted:
            sys.stderr.write("note: sequences at {:g} fps, bundle trained at {:g} fps: past offsets {} and "
                             "horizon {} frames, picked by time\n".format(fps, bundle.frame_rate,
                                                                          offsets, horizon))
        bar = progress_printer(count_samples(sequences, offsets, horizon), quiet)
        scores, ref_scores, agreement = evaluate_sequences(
            bundle, sequences, offsets, horizon, ref_bundle, bar, sequence_fps=fps)
    finally:
        for engine in (bundle, ref_bundle):
            if engine is not None:
                engine.close()
    rate = float(fps or bundle.frame_rate)
    result = {"engine": bundle_path, "task": "forecast", "data": data, "split": split,
              "sequences": len(sequences), "precision": bundle.manifest.precision,
              "forecaster": bundle.manifest.forecaster,
              "horizon": {"frames": horizon, "s": horizon / rate},
              "past_offsets": {"frames": offsets, "s": [o / rate for o in offsets]},
              "sequence_fps": fps, "trained_fps": bundle.frame_rate, "offsets_converted_by_time": converted}
    result.update(scores.summary())
    if ref_scores is not None:
        ref = ref_scores.summary()
        result["reference"] = {"engine": reference, "forecast_miou": ref["forecast"]["miou"],
                               "forecast_moving_miou": ref["forecast"]["moving_miou"],
                               "miou_drop_pp": 100.0 * (ref["forecast"]["miou"] - result["forecast"]["miou"]),
                               "agreement": agreement}
    return result


def result_lines(result):
    """rt-eval's printed result for a forecast bundle."""
    lines = ["forecast {:+.2f} s ({} frames) on {} sequences, {} samples:".format(
        result["horizon"]["s"], result["horizon"]["frames"], result["sequences"], result["samples"])]
    lines.append("  {:<10} {:>8} {:>14}".format("", "mIoU", "moving mIoU"))
    for method in METHODS:
        block = result[method]
        lines.append("  {:<10} {:>7.2f} % {:>12}".format(
            method.replace("_", "-"), 100 * block["miou"], pct(block["moving_miou"])))
    lines.append("forecast vs copy-last: {:+.2f} pp mIoU".format(result["gain_over_copy_last_pp"]))
    if "reference" in result:
        ref = result["reference"]
        lines.append("reference {}: forecast mIoU {:.2f} %, agreement {:.3f} %, drop {:+.2f} pp".format(
            ref["engine"], 100 * ref["forecast_miou"], 100 * ref["agreement"], ref["miou_drop_pp"]))
    return lines
