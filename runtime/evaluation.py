"""rt-eval as a library: accuracy of an engine (or a forecast bundle) on a Cityscapes-format folder.

Plain arguments, no argparse: rt-eval (runtime/cli/eval.py) only parses, prints and writes the
JSON; benchmarks/ and tests call these functions. Predictions are made by the same Engine the
streaming runtime uses (same preprocessing) and compared at the label's full resolution (class
maps resized with nearest neighbour, outlier scores bilinearly). See rt-eval's help for what
each result holds.
"""
import cv2

from runtime import compare, open_engine, tasks
from runtime import manifest as manifest_mod
from runtime.data.cityscapes import find_pairs, read_label
from runtime.errors import UserError
from runtime.eval_common import check_limit, progress_printer
from runtime.metrics import ConfusionMatrix, check_label_ids


def predict(engine, image):
    """Class map of ``image`` (BGR) at the image's own resolution."""
    return _at(engine.segment(image).class_map, image.shape[:2])


def _at(class_map, shape):
    """``class_map`` resized (nearest neighbour) to ``shape`` = (height, width)."""
    if class_map.shape != tuple(shape):
        class_map = cv2.resize(class_map, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return class_map


def evaluate(engine, pairs, reference=None, progress=None, metric=None):
    """Confusion matrix of ``engine`` on ``pairs``; with ``reference`` also the agreement.

    ``metric``: the engine family's extra score (runtime.tasks.Task.eval_metric, e.g. the
    outlier AP), given each image's Result and label; it returns the label the confusion
    matrix should use (an outlier metric ignores the outlier pixels: inlier mIoU).
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
        result = engine.segment(image)
        prediction = _at(result.class_map, image.shape[:2])
        if metric is not None:
            label = metric.add(result, label, label_path, ignore_id)
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


def evaluate_engine(engine_path, data, split="val", options=None, **common):
    """rt-eval on any engine: its family's evaluation (runtime.tasks.Task.evaluate, e.g. a
    forecast bundle's on sequences), else ``evaluate_segmentation``. ``options``: the
    family options (e.g. ``outlier_bins``, ``plot``); ``common``: reference, limit,
    backend, threads, verify, quiet."""
    task = tasks.for_name(manifest_mod.peek_task(engine_path))
    result = task.evaluate(engine_path, data, split, options or {}, **common)
    if result is None:
        result = evaluate_segmentation(engine_path, data, split, options=options, **common)
    return result


def evaluate_segmentation(engine_path, data, split="val", reference=None, limit=None, backend=None,
                          threads=None, verify=True, quiet=False, options=None):
    """rt-eval on an engine scored image by image: the result dict rt-eval prints and writes.

    ``reference``: a second engine (pixel agreement, mIoU drop); ``options``: its family's
    (runtime/tasks/: e.g. an outlier engine's ``outlier_bins`` and ``plot``).
    """
    check_limit(limit)
    options = options or {}
    engine = _open(engine_path, backend, threads, verify)
    tasks.check_engine_options(options, engine)
    metric = tasks.for_engine(engine).eval_metric(engine, options)
    ref_engine = _open(reference, None, threads, verify) if reference else None
    pairs = find_pairs(data, split)
    if not pairs:
        raise UserError("no images with labels under {} (split {!r})".format(data, split))
    if limit:
        pairs = pairs[:limit]
    names = [c["name"] for c in engine.classes]
    bar = progress_printer(len(pairs), quiet)
    matrix, ref_matrix, agreement = evaluate(engine, pairs, ref_engine, bar, metric=metric)
    result = {"engine": engine_path, "data": data, "split": split, "images": len(pairs)}
    result.update(matrix.summary(names))
    if metric is not None:
        metric.summarize(result)
    if ref_engine is not None:
        ref = ref_matrix.summary(names)
        result["reference"] = {"engine": reference, "miou": ref["miou"],
                               "pixel_accuracy": ref["pixel_accuracy"],
                               "miou_drop_pp": 100.0 * (ref["miou"] - result["miou"]),
                               "agreement": agreement}
    return result
