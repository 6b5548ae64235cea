"""rt-eval as a library: accuracy of an engine (or a forecast bundle) on a Cityscapes-format folder.

Plain arguments, no argparse: rt-eval (runtime/cli/eval.py) only parses, prints and writes the
JSON; benchmarks/ and tests call these functions. Predictions are made by the same Engine the
streaming runtime uses (same preprocessing) and compared at the label's full resolution (class
maps resized with nearest neighbour, outlier scores bilinearly). See rt-eval's help for what
each result holds.
"""
import sys

import cv2
import numpy as np

from runtime import compare, forecast_eval, open_engine
from runtime import manifest as manifest_mod
from runtime.data.cityscapes import (OUTLIER, find_pairs, group_sequences, outlier_mask_path, read_label,
                                     read_outlier_details, read_outlier_mask, read_split_info)
from runtime.errors import UserError
from runtime.metrics import ConfusionMatrix, OutlierHistogram, check_label_ids
from runtime.tasks.outlier import default_threshold
from runtime.outlier_eval import OutlierBreakdown, plot_scores


def predict(engine, image):
    """Class map of ``image`` (BGR) at the image's own resolution."""
    class_map = engine.segment(image).class_map
    if class_map.shape != image.shape[:2]:
        class_map = cv2.resize(class_map, (image.shape[1], image.shape[0]),
                               interpolation=cv2.INTER_NEAREST)
    return class_map


def predict_with_score(engine, image):
    """(class map, outlier score or None) of ``image`` at the image's own resolution."""
    result = engine.segment(image)
    class_map, score = result.class_map, result.outlier_score
    height, width = image.shape[:2]
    if class_map.shape != (height, width):
        class_map = cv2.resize(class_map, (width, height), interpolation=cv2.INTER_NEAREST)
    if score is not None and score.shape != (height, width):
        score = cv2.resize(score, (width, height), interpolation=cv2.INTER_LINEAR)
    return class_map, score


def evaluate(engine, pairs, reference=None, progress=None, outliers=None, breakdown=None):
    """Confusion matrix of ``engine`` on ``pairs``; with ``reference`` also the agreement.

    ``outliers``: a runtime.metrics.OutlierHistogram filled with the engine's outlier
    scores on the images that have an outlier mask (their outlier pixels are ignored by
    the confusion matrix: it measures the inlier mIoU). ``breakdown``: a
    runtime.outlier_eval.OutlierBreakdown filled from the images that also have the
    generator's sidecars.
    """
    ignore_id = engine.manifest.ignore_id
    matrix = ConfusionMatrix(len(engine.classes), ignore_id)
    ref_matrix = ConfusionMatrix(len(engine.classes), ignore_id) if reference else None
    agreement = compare.Agreement()
    for image_path, label_path in pairs:
        image = cv2.imread(image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise UserError("cannot read image {}".format(image_path))
        label = read_label(label_path)
        check_label_ids(label, ignore_id, len(engine.classes), label_path)
        prediction, score = predict_with_score(engine, image)
        mask = read_outlier_mask(outlier_mask_path(label_path)) if outliers is not None else None
        if mask is not None:
            if mask.shape != label.shape:
                raise UserError("outlier mask of {} has size {}, its label {}".format(
                    label_path, mask.shape, label.shape))
            label = np.where(mask == OUTLIER, np.uint8(ignore_id), label).astype(np.uint8)
            if score is not None:
                outliers.update(score, mask)
                details = read_outlier_details(label_path) if breakdown is not None else None
                if details is not None:
                    if details[0].shape != mask.shape:
                        raise UserError("outlier instance map of {} has size {}, its mask {}".format(
                            label_path, details[0].shape, mask.shape))
                    breakdown.update(outliers.bin_of(score), mask, details[0], details[1])
        matrix.update(prediction, label)
        if reference is not None:
            ref_prediction = predict(reference, image)
            ref_matrix.update(ref_prediction, label)
            agreement.add(prediction, ref_prediction)
        if progress:
            progress()
    return matrix, ref_matrix, agreement.value


def _open(path, backend, threads, verify, current=False):
    """The engine rt-eval measures, run by libswiftrt (runtime.open_engine)."""
    return open_engine(path, backend=backend, threads=threads, verify=verify, current=current)


def check_limit(limit):
    """``limit`` (first N images or sequences) is None or a positive count: 0 and -1 would
    silently score every image or all but the last."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UserError("--limit must be a positive number of images (got {})".format(limit))


def evaluate_segmentation(engine_path, data, split="val", reference=None, limit=None, backend=None,
                          threads=None, verify=True, outlier_bins=10000, plot=None, quiet=False):
    """rt-eval on a segmentation (or outlier) engine: the result dict rt-eval prints and writes.

    ``reference``: a second engine (pixel agreement, mIoU drop); ``plot``: a PNG of the inlier /
    outlier score distributions (outlier engines only).
    """
    check_limit(limit)
    engine = _open(engine_path, backend, threads, verify)
    ref_engine = _open(reference, None, threads, verify) if reference else None
    pairs = find_pairs(data, split)
    if not pairs:
        raise UserError("no images with labels under {} (split {!r})".format(data, split))
    if limit:
        pairs = pairs[:limit]
    names = [c["name"] for c in engine.classes]
    bar = progress_printer(len(pairs), quiet)
    outliers = breakdown = None
    if engine.outlier_output is not None:
        outliers = OutlierHistogram(bins=outlier_bins)
        breakdown = OutlierBreakdown(bins=outlier_bins)
    elif plot:
        raise UserError("--plot draws outlier scores: {} has no outlier_score output".format(engine_path))
    matrix, ref_matrix, agreement = evaluate(engine, pairs, ref_engine, bar, outliers=outliers,
                                             breakdown=breakdown)
    result = {"engine": engine_path, "data": data, "split": split, "images": len(pairs)}
    result.update(matrix.summary(names))
    if outliers is not None:
        if outliers.pos.sum() + outliers.neg.sum() == 0:
            sys.stderr.write("note: no *_gtFine_outlierMask.png under {}: no outlier metrics\n"
                             .format(data))
        else:
            result["inlier_miou"] = result["miou"]
            result["outlier"] = outliers.summary()
            parts = breakdown.summary(outliers.neg)
            if parts:
                result["outlier"]["breakdown"] = parts
            if plot:
                plot_scores(plot, outliers.pos, outliers.neg, threshold=default_threshold(engine.manifest),
                            title="{} on {} ({}, {} images): AP {}".format(
                                engine_path, data, split, len(pairs), pct(result["outlier"]["ap"])))
    if ref_engine is not None:
        ref = ref_matrix.summary(names)
        result["reference"] = {"engine": reference, "miou": ref["miou"],
                               "pixel_accuracy": ref["pixel_accuracy"],
                               "miou_drop_pp": 100.0 * (ref["miou"] - result["miou"]),
                               "agreement": agreement}
    return result


def evaluate_forecast_bundle(bundle_path, data, split="val", reference=None, limit=None, backend=None,
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
    bundle = _open(bundle_path, backend, threads, verify, current=True)
    ref_bundle = None
    try:
        ref_bundle = _open(reference, None, threads, verify, current=True) if reference else None
        offsets, horizon, converted = forecast_eval.frame_offsets(bundle, fps)
        if converted:
            sys.stderr.write("note: sequences at {:g} fps, bundle trained at {:g} fps: past offsets {} and "
                             "horizon {} frames, picked by time\n".format(fps, bundle.frame_rate, offsets,
                                                                           horizon))
        bar = progress_printer(forecast_eval.count_samples(sequences, offsets, horizon), quiet)
        scores, ref_scores, agreement = forecast_eval.evaluate_sequences(
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


def progress_printer(total, quiet):
    """A callable that counts evaluated samples on stderr ("evaluated N/TOTAL"), silent if ``quiet``."""
    state = {"done": 0}

    def tick():
        state["done"] += 1
        if not quiet and (state["done"] == total or state["done"] % max(1, total // 20) == 0):
            sys.stderr.write("\revaluated {}/{}".format(state["done"], total))
            if state["done"] == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
    return tick


def pct(value):
    return "n/a" if value is None else "{:.2f} %".format(100 * value)
