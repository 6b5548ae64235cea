"""rt-eval: mIoU, per-class IoU and pixel accuracy on a Cityscapes-format folder, the same
numbers as the official cityscapesscripts evaluation, and agreement with a reference engine."""
import copy
import json
import os

import cv2
import numpy as np
import pytest

from runtime.data import cityscapes as cs
from runtime.data import classes as K

SIZE = (160, 320)  # labels at another resolution than the 128x256 engine: maps are resized


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three generated road scenes in the Cityscapes layout (labelTrainIds and labelIds)."""
    from export.scenes import render_scene
    root = str(tmp_path_factory.mktemp("cityscapes"))
    for index in range(3):
        image, label, _ = render_scene(seed=21, index=index, size=SIZE, split="val")
        cs.write_sample(root, "val", "eastwick", 0, index, image, label)
    return root


def official(predictions, ground_truth):
    """cityscapesscripts' evalPixelLevelSemanticLabeling on labelId PNG lists (pure Python
    path, quiet, no JSON file): (mIoU, {class name: IoU})."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official_eval
    official_eval.CSUPPORT = False  # the numpy path, whether or not the C extension is built
    args = copy.copy(official_eval.args)
    args.quiet = True
    args.JSONOutput = False
    args.evalInstLevelScore = False  # needs *_instanceIds.png, which we do not have
    args.evalPixelAccuracy = False
    args.colorized = False
    args.bold = args.nocol = ""
    result = official_eval.evaluateImgLists(list(predictions), list(ground_truth), args)
    return result["averageScoreClasses"], result["classScores"]


def write_label_ids(path, train_ids):
    assert cv2.imwrite(path, K.train_ids_to_label_ids(train_ids))
    return path


def assert_same_as_official(matrix, predictions, ground_truth):
    miou, per_class = official(predictions, ground_truth)
    assert abs(matrix.miou() - miou) < 1e-6, (matrix.miou(), miou)
    ours = matrix.summary(list(K.NAMES))["per_class_iou"]
    for name in K.NAMES:
        theirs = per_class[name]
        if np.isnan(theirs):
            assert ours[name] is None, name
        else:
            assert abs(ours[name] - theirs) < 1e-9, name


def test_miou_equals_cityscapesscripts_on_engine_predictions(rn18_engine, dataset, tmp_path):
    from runtime.evaluation import evaluate, predict
    from runtime import open_engine
    engine = open_engine(rn18_engine)
    pairs = cs.find_pairs(dataset, "val")
    assert len(pairs) == 3 and all(p[1].endswith(cs.TRAIN_IDS_SUFFIX) for p in pairs)
    matrix, _, _ = evaluate(engine, pairs)
    predictions, ground_truth = [], []
    for i, (image_path, label_path) in enumerate(pairs):
        prediction = predict(engine, cv2.imread(image_path))
        assert prediction.shape == SIZE
        predictions.append(write_label_ids(str(tmp_path / "pred_{}.png".format(i)), prediction))
        ground_truth.append(label_path.replace(cs.TRAIN_IDS_SUFFIX, cs.LABEL_IDS_SUFFIX))
    assert_same_as_official(matrix, predictions, ground_truth)


def test_miou_equals_cityscapesscripts_on_good_predictions(dataset, tmp_path):
    """A substantive mIoU (untrained engines score near zero): ground truth with noise."""
    from runtime.metrics import ConfusionMatrix
    matrix = ConfusionMatrix(K.NUM_CLASSES, K.IGNORE_ID)
    rng = np.random.RandomState(0)
    predictions, ground_truth = [], []
    for i, (_, label_path) in enumerate(cs.find_pairs(dataset, "val")):
        label = cs.read_label(label_path)
        prediction = label.copy()
        noisy = rng.rand(*label.shape) < 0.25
        prediction[noisy] = rng.randint(0, K.NUM_CLASSES, size=int(noisy.sum()))
        prediction[label == K.IGNORE_ID] = rng.randint(0, K.NUM_CLASSES, size=int(
            (label == K.IGNORE_ID).sum()))
        matrix.update(prediction, label)
        predictions.append(write_label_ids(str(tmp_path / "p{}.png".format(i)), prediction))
        ground_truth.append(label_path.replace(cs.TRAIN_IDS_SUFFIX, cs.LABEL_IDS_SUFFIX))
    assert 0.3 < matrix.miou() < 0.95
    assert_same_as_official(matrix, predictions, ground_truth)


def test_label_ids_only_folder_gives_the_same_numbers(rn18_engine, dataset, tmp_path):
    import shutil
    from runtime.evaluation import evaluate
    from runtime import open_engine
    copy_root = str(tmp_path / "ids_only")
    shutil.copytree(dataset, copy_root)
    for folder, _, files in os.walk(copy_root):
        for name in files:
            if name.endswith(cs.TRAIN_IDS_SUFFIX):
                os.remove(os.path.join(folder, name))
    engine = open_engine(rn18_engine)
    pairs = cs.find_pairs(copy_root, "val")
    assert len(pairs) == 3 and all(p[1].endswith(cs.LABEL_IDS_SUFFIX) for p in pairs)
    ours = evaluate(engine, pairs)[0].summary()
    reference = evaluate(engine, cs.find_pairs(dataset, "val"))[0].summary()
    assert ours == reference


def test_rt_eval_cli_with_reference(run_cli_subprocess, rn18_engine, dataset, tmp_path):
    from runtime.evaluation import evaluate
    from runtime import open_engine
    out = str(tmp_path / "result.json")
    proc = run_cli_subprocess("runtime.cli.eval", "--engine", rn18_engine, "--data", dataset,
                              "--split", "val", "--reference", rn18_engine, "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert "mIoU" in proc.stdout and "agreement" in proc.stdout
    result = json.load(open(out))
    matrix = evaluate(open_engine(rn18_engine), cs.find_pairs(dataset, "val"))[0]
    assert result["images"] == 3
    assert abs(result["miou"] - matrix.miou()) < 1e-12
    assert abs(result["pixel_accuracy"] - matrix.pixel_accuracy()) < 1e-12
    assert set(result["per_class_iou"]) == set(K.NAMES)
    assert result["reference"]["agreement"] == 1.0
    assert result["reference"]["miou_drop_pp"] == 0.0


def test_rt_eval_int8_against_fp32(run_cli_subprocess, rn18_engine, dataset, tmp_path):
    """The accuracy check of an INT8 export as a user runs it: rt-eval --reference FP32."""
    from calib import accuracy, int8
    out = str(tmp_path / "rn18_int8.onnx")
    data = int8.export_int8(rn18_engine, out, "synthetic", int8.Int8Options(count=4, method="minmax",
                            eval_data=dataset, check_latency=False, progress=False,
                            log=lambda message: None)).to_dict()
    assert data["accuracy"]["metric"] == "miou" and data["accuracy"]["images"] == 3
    assert data["accuracy"]["split"] == "val"
    report = str(tmp_path / "int8.json")
    proc = run_cli_subprocess("runtime.cli.eval", "--engine", out, "--data", dataset,
                              "--reference", rn18_engine, "--json", report)
    assert proc.returncode == 0, proc.stderr
    result = json.load(open(report))
    assert abs(result["miou"] - data["accuracy"]["miou"]) < 1e-9
    assert abs(result["reference"]["miou"] - data["accuracy"]["fp32_miou"]) < 1e-9
    assert abs(result["reference"]["miou_drop_pp"] - data["accuracy"]["miou_drop_pp"]) < 1e-6
    assert result["reference"]["agreement"] >= 0.9
    assert accuracy.describe(data["accuracy"]).startswith("mIoU")


def test_rt_eval_refuses_a_folder_without_images(run_cli_subprocess, rn18_engine, tmp_path):
    proc = run_cli_subprocess("runtime.cli.eval", "--engine", rn18_engine, "--data", tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr and "leftImg8bit" in lines[-1]
