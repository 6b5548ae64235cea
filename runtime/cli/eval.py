"""rt-eval: accuracy of an engine on a Cityscapes-format folder (mIoU, per-class IoU, pixel accuracy).

    rt-eval --engine engines/swiftnet.onnx --data data/synthetic --split val [--reference E2]

Predictions are made by the same Engine the streaming runtime uses (same
preprocessing) and compared at the label's full resolution (class maps resized
with nearest neighbour). ``--reference`` adds the pixel agreement with a second
engine (e.g. INT8 against FP32).

Forecast bundles (``--engine .../forecast.json``) are evaluated on a *sequence* folder
(``rt-synth sequences``): forecast mIoU and moving-object mIoU at t + horizon next to
copy-last and the oracle (see runtime/forecast_eval.py).

Outlier engines (manifest task ``outlier``) on data with outlier masks
(``*_gtFine_outlierMask.png``: 1 outlier, 0 inlier, 255 void) also get pixel-level
outlier AP, AUROC and FPR at 95 % TPR (void ignored; scores resized bilinearly to the
mask's resolution and binned, see runtime.metrics.OutlierHistogram), and the mIoU is
then the inlier mIoU (outlier pixels ignored). Where the generator wrote its sidecars
(``*_gtFine_outlierInstanceIds.png`` + ``*_gtFine_outlierObjects.json``) the JSON also has
``outlier.breakdown``: AP / AUROC / FPR95 per outlier kind, texture, size bucket, distance,
position, contrast, lighting and exposure (runtime/outlier_eval.py); ``--plot FILE``
draws the inlier and outlier score distributions.
"""
import sys

import cv2
import numpy as np

from runtime.backends import BACKENDS
from runtime.cli.common import (OneLineParser, add_common_args, add_verify_arg, check_threads,
                                engine_inputs, run_cli)
from runtime.errors import UserError
from runtime.jsonfile import Inputs, check_output, write_atomic


def build_parser():
    parser = OneLineParser(prog="rt-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True, help="engine (.onnx / .plan) with its manifest, or a "
                                                        "forecast bundle (forecast.json or its folder)")
    parser.add_argument("--data", required=True, help="Cityscapes-format root (leftImg8bit/, gtFine/)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--reference", help="a second engine: report pixel agreement with it")
    parser.add_argument("--limit", type=int, help="evaluate the first N images (bundles: sequences) only")
    parser.add_argument("--backend", help="override the backend ({})".format(", ".join(BACKENDS)))
    parser.add_argument("--threads", type=int, help="inference threads (ONNX Runtime, OpenVINO)")
    parser.add_argument("--json", dest="json_path", help="write the results as JSON here")
    parser.add_argument("--outlier-bins", type=int, default=10000,
                        help="outlier engines: score histogram bins over [0, 1] (default 10000)")
    parser.add_argument("--plot", metavar="FILE",
                        help="outlier engines: write a PNG of the inlier / outlier score distributions "
                             "(needs matplotlib)")
    add_verify_arg(parser)
    add_common_args(parser)
    return parser


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
    class_map, score = result.class_map, getattr(result, "outlier_score", None)
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
    from runtime.data.cityscapes import (OUTLIER, outlier_mask_path, read_label, read_outlier_details,
                                         read_outlier_mask)
    from runtime.metrics import ConfusionMatrix
    ignore_id = engine.manifest.ignore_id
    matrix = ConfusionMatrix(len(engine.classes), ignore_id)
    ref_matrix = ConfusionMatrix(len(engine.classes), ignore_id) if reference else None
    agree = total = 0
    for image_path, label_path in pairs:
        image = cv2.imread(image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise UserError("cannot read image {}".format(image_path))
        label = read_label(label_path)
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
            agree += int(np.count_nonzero(prediction == ref_prediction))
            total += prediction.size
        if progress:
            progress()
    agreement = agree / float(total) if total else None
    return matrix, ref_matrix, agreement


def check_json_path(args):
    """Refuse, before any work, a --json or --plot path that would replace an input, an engine
    or a device (or each other)."""
    if args.json_path or args.plot:
        inputs = engine_inputs(Inputs(), args.engine).add(args.data, "--data")
        if args.reference:
            engine_inputs(inputs, args.reference, "--reference")
        if args.json_path:
            check_output(args.json_path, "--json", inputs)
        if args.plot:
            others = [("--json", args.json_path)] if args.json_path else []
            check_output(args.plot, "--plot", inputs, others=others)


def main(argv):
    from runtime.data.cityscapes import find_pairs
    from runtime.engine import Engine
    from runtime import manifest as manifest_mod
    args = build_parser().parse_args(argv)
    check_threads(args.threads)
    check_json_path(args)
    if args.outlier_bins < 2:
        raise UserError("--outlier-bins must be at least 2")
    if manifest_mod.peek_task(args.engine) == "forecast":
        return main_forecast(args)
    verify = not args.no_verify
    if args.backend == "native":  # libswiftrt runs the whole engine (runtime/backends/native.py)
        from runtime.backends.native import NativeEngine
        engine = NativeEngine(args.engine, threads=args.threads)
    else:
        engine = Engine(args.engine, backend=args.backend, threads=args.threads, verify=verify)
    reference = Engine(args.reference, threads=args.threads, verify=verify) if args.reference else None
    pairs = find_pairs(args.data, args.split)
    if not pairs:
        raise UserError("no images with labels under {} (split {!r})".format(args.data, args.split))
    if args.limit:
        pairs = pairs[:args.limit]
    names = [c["name"] for c in engine.classes]
    bar = _progress(len(pairs), args.quiet)
    outliers = breakdown = None
    if engine.outlier_output is not None:
        from runtime.metrics import OutlierHistogram
        from runtime.outlier_eval import OutlierBreakdown
        outliers = OutlierHistogram(bins=args.outlier_bins)
        breakdown = OutlierBreakdown(bins=args.outlier_bins)
    elif args.plot:
        raise UserError("--plot draws outlier scores: {} has no outlier_score output".format(args.engine))
    matrix, ref_matrix, agreement = evaluate(engine, pairs, reference, bar, outliers=outliers,
                                             breakdown=breakdown)
    result = {"engine": args.engine, "data": args.data, "split": args.split, "images": len(pairs)}
    result.update(matrix.summary(names))
    if outliers is not None:
        if outliers.pos.sum() + outliers.neg.sum() == 0:
            sys.stderr.write("note: no *_gtFine_outlierMask.png under {}: no outlier metrics\n"
                             .format(args.data))
        else:
            result["inlier_miou"] = result["miou"]
            result["outlier"] = outliers.summary()
            parts = breakdown.summary(outliers.neg)
            if parts:
                result["outlier"]["breakdown"] = parts
            if args.plot:
                from runtime.outlier import default_threshold
                from runtime.outlier_eval import plot_scores
                plot_scores(args.plot, outliers.pos, outliers.neg, threshold=default_threshold(engine.manifest),
                            title="{} on {} ({}, {} images): AP {}".format(
                                args.engine, args.data, args.split, len(pairs), _pct(result["outlier"]["ap"])))
    if reference is not None:
        ref = ref_matrix.summary(names)
        result["reference"] = {"engine": args.reference, "miou": ref["miou"],
                               "pixel_accuracy": ref["pixel_accuracy"],
                               "miou_drop_pp": 100.0 * (ref["miou"] - result["miou"]),
                               "agreement": agreement}
    _print(result, names)
    if args.json_path:
        write_atomic(args.json_path, result)
    return 0


def main_forecast(args):
    """rt-eval for a forecast bundle on a sequence folder."""
    from runtime import forecast_eval
    from runtime.data.cityscapes import find_pairs, group_sequences, read_split_info
    from runtime.forecast import ForecastBundle
    if args.backend == "native":
        raise UserError("rt-eval runs a bundle's stages one by one; the native core runs bundles "
                        "as streams: use rt-segment or rt-bench --backend native for bundles")
    verify = not args.no_verify
    bundle = ForecastBundle(args.engine, backend=args.backend, threads=args.threads, verify=verify)
    reference = (ForecastBundle(args.reference, threads=args.threads, verify=verify)
                 if args.reference else None)
    if args.reference and reference.manifest.task != "forecast":
        raise UserError("--reference {} must be a forecast bundle too".format(args.reference))
    sequences = [frames for frames in group_sequences(find_pairs(args.data, args.split)).values()]
    if not sequences:
        raise UserError("no sequences with labels under {} (split {!r}); write some with "
                        "rt-synth sequences".format(args.data, args.split))
    if args.limit:
        sequences = sequences[:args.limit]
    info = read_split_info(args.data, args.split) or {}
    fps = (info.get("sequences") or {}).get("fps") or info.get("fps")
    offsets, horizon, converted = forecast_eval.frame_offsets(bundle, fps)
    if converted:
        sys.stderr.write("note: sequences at {:g} fps, bundle trained at {:g} fps: past offsets {} and horizon {} "
                         "frames, picked by time\n".format(fps, bundle.frame_rate, offsets, horizon))
    bar = _progress(forecast_eval.count_samples(sequences, offsets, horizon), args.quiet)
    scores, ref_scores, agreement = forecast_eval.evaluate_sequences(bundle, sequences, offsets, horizon,
                                                                     reference, bar)
    rate = float(fps or bundle.frame_rate)
    result = {"engine": args.engine, "task": "forecast", "data": args.data, "split": args.split,
              "sequences": len(sequences), "precision": bundle.manifest.precision,
              "forecaster": bundle.manifest.forecaster,
              "horizon": {"frames": horizon, "s": horizon / rate},
              "past_offsets": {"frames": offsets, "s": [o / rate for o in offsets]},
              "sequence_fps": fps, "trained_fps": bundle.frame_rate, "offsets_converted_by_time": converted}
    result.update(scores.summary())
    if ref_scores is not None:
        ref = ref_scores.summary()
        result["reference"] = {"engine": args.reference, "forecast_miou": ref["forecast"]["miou"],
                               "forecast_moving_miou": ref["forecast"]["moving_miou"],
                               "miou_drop_pp": 100.0 * (ref["forecast"]["miou"] - result["forecast"]["miou"]),
                               "agreement": agreement}
    _print_forecast(result)
    if args.json_path:
        write_atomic(args.json_path, result)
    return 0


def _print_forecast(result):
    print("forecast {:+.2f} s ({} frames) on {} sequences, {} samples:".format(
        result["horizon"]["s"], result["horizon"]["frames"], result["sequences"], result["samples"]))
    print("  {:<10} {:>8} {:>14}".format("", "mIoU", "moving mIoU"))
    for method in ("forecast", "copy_last", "oracle"):
        block = result[method]
        print("  {:<10} {:>7.2f} % {:>12}".format(method.replace("_", "-"), 100 * block["miou"],
                                                   _pct(block["moving_miou"])))
    print("forecast vs copy-last: {:+.2f} pp mIoU".format(result["gain_over_copy_last_pp"]))
    if "reference" in result:
        ref = result["reference"]
        print("reference {}: forecast mIoU {:.2f} %, agreement {:.3f} %, drop {:+.2f} pp".format(
            ref["engine"], 100 * ref["forecast_miou"], 100 * ref["agreement"], ref["miou_drop_pp"]))


def _progress(total, quiet):
    state = {"done": 0}

    def tick():
        state["done"] += 1
        if not quiet and (state["done"] == total or state["done"] % max(1, total // 20) == 0):
            sys.stderr.write("\revaluated {}/{}".format(state["done"], total))
            if state["done"] == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
    return tick


def _print(result, names):
    print("mIoU {:.2f} %   pixel accuracy {:.2f} %   ({} images)".format(
        100 * result["miou"], 100 * result["pixel_accuracy"], result["images"]))
    for name in names:
        value = result["per_class_iou"][name]
        print("  {:<14} {}".format(name, "  n/a" if value is None else "{:6.2f}".format(100 * value)))
    if "outlier" in result:
        out = result["outlier"]
        print("outliers: AP {}   AUROC {}   FPR@95%TPR {}   ({} outlier / {} inlier pixels, "
              "inlier mIoU {:.2f} %)".format(_pct(out["ap"]), _pct(out["auroc"]),
                                             _pct(out["fpr_at_95_tpr"]), out["outlier_pixels"],
                                             out["inlier_pixels"], 100 * result["inlier_miou"]))
        for attribute, groups in sorted((out.get("breakdown") or {}).items()):
            print("  by {}: {}".format(attribute, ";  ".join(
                "{} AP {} FPR95 {}".format(group, _pct(v["ap"]), _pct(v["fpr_at_95_tpr"]))
                for group, v in sorted(groups.items()))))
    if "reference" in result:
        ref = result["reference"]
        print("reference {}: mIoU {:.2f} %, agreement {:.3f} %, drop {:+.2f} pp".format(
            ref["engine"], 100 * ref["miou"], 100 * ref["agreement"], ref["miou_drop_pp"]))


def _pct(value):
    return "n/a" if value is None else "{:.2f} %".format(100 * value)


def entry():
    sys.exit(run_cli(main, prog="rt-eval"))


if __name__ == "__main__":
    entry()
