"""rt-eval: accuracy of an engine on a Cityscapes-format folder (mIoU, per-class IoU, pixel accuracy).

    rt-eval --engine engines/swiftnet.onnx --data data/synthetic --split val [--reference E2]

Predictions are made by the same Engine the streaming runtime uses (same
preprocessing) and compared at the label's full resolution (class maps resized
with nearest neighbour). ``--reference`` adds the pixel agreement with a second
engine (e.g. INT8 against FP32).
"""
import argparse
import json
import sys

import cv2
import numpy as np

from runtime.cli.common import add_common_args, run_cli
from runtime.errors import UserError


def build_parser():
    parser = argparse.ArgumentParser(prog="rt-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True, help="engine (.onnx / .plan) with its manifest")
    parser.add_argument("--data", required=True, help="Cityscapes-format root (leftImg8bit/, gtFine/)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--reference", help="a second engine: report pixel agreement with it")
    parser.add_argument("--limit", type=int, help="evaluate the first N images only")
    parser.add_argument("--backend", help="override the backend (onnxruntime, tensorrt)")
    parser.add_argument("--threads", type=int, help="inference threads (ONNX Runtime)")
    parser.add_argument("--json", dest="json_path", help="write the results as JSON here")
    add_common_args(parser)
    return parser


def predict(engine, image):
    """Class map of ``image`` (BGR) at the image's own resolution."""
    class_map = engine.segment(image).class_map
    if class_map.shape != image.shape[:2]:
        class_map = cv2.resize(class_map, (image.shape[1], image.shape[0]),
                               interpolation=cv2.INTER_NEAREST)
    return class_map


def evaluate(engine, pairs, reference=None, progress=None):
    """Confusion matrix of ``engine`` on ``pairs``; with ``reference`` also the agreement."""
    from runtime.data.cityscapes import read_label
    from runtime.metrics import ConfusionMatrix
    matrix = ConfusionMatrix(len(engine.classes), engine.manifest["ignore_id"])
    ref_matrix = ConfusionMatrix(len(engine.classes), engine.manifest["ignore_id"]) if reference else None
    agree = total = 0
    for image_path, label_path in pairs:
        image = cv2.imread(image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise UserError("cannot read image {}".format(image_path))
        label = read_label(label_path)
        prediction = predict(engine, image)
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


def main(argv):
    from runtime.data.cityscapes import find_pairs
    from runtime.engine import Engine
    args = build_parser().parse_args(argv)
    engine = Engine(args.engine, backend=args.backend, threads=args.threads)
    reference = Engine(args.reference, threads=args.threads) if args.reference else None
    pairs = find_pairs(args.data, args.split)
    if not pairs:
        raise UserError("no images with labels under {} (split {!r})".format(args.data, args.split))
    if args.limit:
        pairs = pairs[:args.limit]
    names = [c["name"] for c in engine.classes]
    bar = _progress(len(pairs), args.quiet)
    matrix, ref_matrix, agreement = evaluate(engine, pairs, reference, bar)
    result = {"engine": args.engine, "data": args.data, "split": args.split, "images": len(pairs)}
    result.update(matrix.summary(names))
    if reference is not None:
        ref = ref_matrix.summary(names)
        result["reference"] = {"engine": args.reference, "miou": ref["miou"],
                               "pixel_accuracy": ref["pixel_accuracy"],
                               "miou_drop_pp": 100.0 * (ref["miou"] - result["miou"]),
                               "agreement": agreement}
    _print(result, names)
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


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
    if "reference" in result:
        ref = result["reference"]
        print("reference {}: mIoU {:.2f} %, agreement {:.3f} %, drop {:+.2f} pp".format(
            ref["engine"], 100 * ref["miou"], 100 * ref["agreement"], ref["miou_drop_pp"]))


def entry():
    sys.exit(run_cli(main, prog="rt-eval"))


if __name__ == "__main__":
    entry()
