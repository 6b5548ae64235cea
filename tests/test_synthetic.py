"""The procedural scene generator, its Cityscapes-layout files and rt-synth (fast: a few seconds)."""
import importlib
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from export import scenes as synthetic
from runtime.data import cityscapes, classes
from runtime.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = (128, 256)


def _has(module):
    try:
        importlib.import_module(module)
        return True
    except Exception:
        return False


# ----------------------------------------------------------------------------- determinism

def test_same_seed_and_index_give_identical_arrays_whatever_else_is_generated():
    a = synthetic.render_scene(5, 3, outliers=True)
    synthetic.render_scene(5, 4)                       # other work in between (fills caches)
    list(synthetic.render_sequence(9, 0, length=3, size=SMALL))
    synthetic.render_scene(7, 3, size=(512, 1024))
    b = synthetic.render_scene(5, 3, outliers=True)
    for x, y in zip(a, b):
        assert x.dtype == np.uint8 and np.array_equal(x, y)


def test_different_seeds_indices_and_splits_differ():
    base = synthetic.render_scene(1, 0)[0]
    assert not np.array_equal(base, synthetic.render_scene(2, 0)[0])
    assert not np.array_equal(base, synthetic.render_scene(1, 1)[0])
    assert not np.array_equal(base, synthetic.render_scene(1, 0, split="val")[0])


def test_sequences_are_deterministic():
    a = list(synthetic.render_sequence(3, 2, length=4, size=SMALL))
    b = list(synthetic.render_sequence(3, 2, length=4, size=SMALL))
    for fa, fb in zip(a, b):
        assert np.array_equal(fa[0], fb[0]) and np.array_equal(fa[1], fb[1])
        assert fa[2] is None


# ----------------------------------------------------------------------------- labels

def test_labels_are_valid_and_every_class_appears():
    seen = np.zeros(256, bool)
    for index in range(40):
        image, label, mask = synthetic.render_scene(0, index)
        assert image.shape == (256, 512, 3) and image.dtype == np.uint8
        assert label.shape == (256, 512) and label.dtype == np.uint8
        assert mask is None
        values = np.unique(label)
        assert np.all((values < classes.NUM_CLASSES) | (values == classes.IGNORE_ID)), values
        seen[values] = True
    missing = [c.name for c in classes.CLASSES if not seen[c.train_id]]
    assert not missing, "classes never generated: {}".format(missing)


@pytest.mark.parametrize("size", [(200, 400), (96, 320), (512, 1024)])
def test_requested_size_is_honoured(size):
    image, label, _ = synthetic.render_scene(4, 1, size=size)
    assert image.shape == size + (3,) and label.shape == size


def test_parse_size():
    assert synthetic.parse_size("256x512") == (256, 512)
    assert synthetic.parse_size("512X1024") == (512, 1024)
    for bad in ("256", "x512", "256x", "axb", "0x512", "16x16", "256x512x3"):
        with pytest.raises(UserError):
            synthetic.parse_size(bad)


def test_classes_table():
    assert classes.NUM_CLASSES == len(classes.CLASSES) == 19
    assert [c.train_id for c in classes.CLASSES] == list(range(19))
    assert classes.TRAIN_ID_TO_LABEL_ID == (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
    ids = np.arange(256, dtype=np.uint8)
    train = classes.label_ids_to_train_ids(ids)
    for label_id in range(256):
        expected = classes.LABEL_ID_TO_TRAIN_ID.get(label_id, classes.IGNORE_ID)
        assert train[label_id] == expected
    assert np.array_equal(classes.label_ids_to_train_ids(classes.train_ids_to_label_ids(np.arange(19))),
                          np.arange(19))
    assert classes.train_ids_to_label_ids(np.array([255], np.uint8))[0] == 0
    assert tuple(classes.colorize(np.array([[0]]), bgr=False)[0, 0]) == (128, 64, 128)
    assert tuple(classes.colorize(np.array([[0]]))[0, 0]) == (128, 64, 128)[::-1]


@pytest.mark.skipif(not _has("cityscapesscripts.helpers.labels"), reason="cityscapesscripts not installed")
def test_classes_match_cityscapesscripts():
    from cityscapesscripts.helpers.labels import labels
    train = sorted((l for l in labels if 0 <= l.trainId < 255), key=lambda l: l.trainId)
    assert [(l.trainId, l.name, tuple(l.color), l.id) for l in train] == \
        [(c.train_id, c.name, c.color, c.label_id) for c in classes.CLASSES]
    for l in labels:
        if l.id >= 0:
            expected = l.trainId if 0 <= l.trainId < 255 else classes.IGNORE_ID
            assert classes.label_ids_to_train_ids(np.array([l.id], np.uint8))[0] == expected, l.name


def test_manifest_class_lists_come_from_the_one_table():
    from export.classes import cityscapes_classes
    assert cityscapes_classes() == [{"id": c.train_id, "name": c.name, "color": list(c.color)}
                                    for c in classes.CLASSES]
    assert len(cityscapes_classes()) == classes.NUM_CLASSES


# ----------------------------------------------------------------------------- outliers

def test_outlier_pixels_are_ignored_in_the_label_and_marked_in_the_mask():
    total = 0
    for index in range(4):
        image, label, mask = synthetic.render_scene(11, index, outliers=True)
        assert mask is not None and mask.shape == label.shape and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1, 255}
        out = mask == cityscapes.OUTLIER
        total += int(out.sum())
        assert np.all(label[out] == classes.IGNORE_ID)
        assert np.all(mask[(label == classes.IGNORE_ID) & ~out] == cityscapes.VOID)
        assert np.all(mask[label != classes.IGNORE_ID] == cityscapes.INLIER)
        # the scene around the outliers is the same world as without them
        clean = synthetic.render_scene(11, index)[1]
        assert np.array_equal(label[~out], clean[~out])
    assert total > 0


def test_outlier_object_patch():
    for index in range(6):
        patch, alpha = synthetic.outlier_object(3, index, size=64)
        assert patch.dtype == np.uint8 and patch.ndim == 3 and patch.shape[:2] == alpha.shape
        assert set(np.unique(alpha)) <= {0, 255} and (alpha == 255).any()
        assert max(alpha.shape) <= 64
        assert np.all(patch[alpha == 0] == 0)
    a, b = synthetic.outlier_object(3, 1), synthetic.outlier_object(3, 1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# ----------------------------------------------------------------------------- files

def test_round_trip_through_the_cityscapes_layout(tmp_path):
    root = str(tmp_path / "data")
    synthetic.write_split(root, "train", count=6, seed=3, size=SMALL, outliers=0.5)
    synthetic.write_sequences(root, "val", count=1, length=5, fps=10, seed=4, size=SMALL)
    pairs = cityscapes.find_pairs(root, "train")
    assert len(pairs) == 6
    for index in range(6):
        city, seq = synthetic.sample_name("train", index)
        image_file = cityscapes.image_path(root, "train", city, seq, 0)
        label_file = cityscapes.label_path(root, "train", city, seq, 0)
        assert (image_file, label_file) in pairs
        image, label, mask = synthetic.render_scene(3, index, size=SMALL,
                                                    outliers=synthetic.has_outliers(3, "train", index, 0.5))
        assert np.array_equal(cityscapes.read_image(image_file), image)
        assert np.array_equal(cityscapes.read_label(label_file), label)
        written = cityscapes.read_outlier_mask(cityscapes.outlier_mask_path(label_file))
        assert written is not None
        if mask is not None:
            assert np.array_equal(written, mask)
        else:
            assert not (written == cityscapes.OUTLIER).any()
    # sequences: grouped and sorted by frame, identical to the rendered frames
    groups = cityscapes.group_sequences(cityscapes.find_pairs(root, "val"))
    assert len(groups) == 1
    (city, seq), frames = list(groups.items())[0]
    assert city in synthetic.SEQUENCE_CITIES["val"] and len(frames) == 5
    assert [cityscapes.parse_name(p[0])[2] for p in frames] == list(range(5))
    for (image_file, label_file), (image, label, _) in zip(frames, synthetic.render_sequence(4, 0, 5, SMALL, 10,
                                                                                              "val")):
        assert np.array_equal(cityscapes.read_image(image_file), image)
        assert np.array_equal(cityscapes.read_label(label_file), label)
    assert cityscapes.read_split_info(root, "val")["fps"] == 10
    assert cityscapes.read_split_info(root, "train")["images"]["count"] == 6
    assert len(cityscapes.find_pairs(root)) == 11
    # without labelTrainIds files the labelIds files are found and mapped back to the same train ids
    for path in list(cityscapes.find_pairs(root)):
        os.remove(path[1])
    fallback = cityscapes.find_pairs(root, "train")
    assert len(fallback) == 6 and all(p[1].endswith(cityscapes.LABEL_IDS_SUFFIX) for p in fallback)
    for image_file, label_file in fallback:
        index = cityscapes.parse_name(image_file)[1]
        label = synthetic.render_scene(3, index, size=SMALL,
                                       outliers=synthetic.has_outliers(3, "train", index, 0.5))[1]
        assert np.array_equal(cityscapes.read_label(label_file), label)


def test_find_pairs_errors(tmp_path):
    with pytest.raises(UserError):
        cityscapes.find_pairs(str(tmp_path))
    (tmp_path / "leftImg8bit" / "train").mkdir(parents=True)
    assert cityscapes.find_pairs(str(tmp_path), "train") == []
    with pytest.raises(UserError):
        cityscapes.find_pairs(str(tmp_path), "val")
    assert cityscapes.parse_name("/x/bad_city_000001_000019_leftImg8bit.png") == ("bad_city", 1, 19)
    assert cityscapes.outlier_mask_path("/a/b_000001_000002_gtFine_labelIds.png") == \
        "/a/b_000001_000002_gtFine_outlierMask.png"


def test_video_reads_back_with_the_right_frame_count(tmp_path):
    path = str(tmp_path / "drive.mp4")
    count = synthetic.write_video(path, frames=12, fps=30, seed=2, size=SMALL)
    cap = cv2.VideoCapture(path)
    assert cap.isOpened()
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == SMALL + (3,)
        frames += 1
    cap.release()
    assert frames == 12
    assert count == 12


# ----------------------------------------------------------------------------- motion

def test_sequences_move_smoothly():
    for index in range(2):
        frames = [f[0].astype(np.int16) for f in synthetic.render_sequence(0, index, length=8, size=SMALL)]
        steps = [np.abs(frames[i + 1] - frames[i]).mean() for i in range(len(frames) - 1)]
        other = synthetic.render_scene(0, 100 + index, size=SMALL)[0].astype(np.int16)
        unrelated = np.abs(frames[0] - other).mean()
        assert max(steps) < 0.5 * unrelated, (steps, unrelated)


# ----------------------------------------------------------------------------- CLI

def test_cli_writes_and_reports_errors(tmp_path, capsys):
    from export import synth_cli as synth
    from runtime.cli.common import run_cli
    root = str(tmp_path / "out")
    assert run_cli(synth.main, ["split", root, "--count", "2", "--size", "64x128", "-q", "--color"]) == 0
    assert len(cityscapes.find_pairs(root, "train")) == 2
    assert os.path.isfile(cityscapes.label_path(root, "train", synthetic.sample_name("train", 0)[0], 0, 0,
                                                cityscapes.COLOR_SUFFIX))
    assert run_cli(synth.main, ["sequences", root, "--count", "1", "--length", "2", "--size", "64x128",
                                "--fps", "12", "-q"]) == 0
    with open(os.path.join(root, "synth_val.json")) as handle:
        assert json.load(handle)["fps"] == 12
    capsys.readouterr()
    assert run_cli(synth.main, ["split", root, "--size", "256by512"], prog="rt-synth") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rt-synth: error:")
    blocker = tmp_path / "file"
    blocker.write_text(u"x")
    assert run_cli(synth.main, ["split", str(blocker / "sub"), "--count", "1"], prog="rt-synth") == 2
    assert run_cli(synth.main, ["split", root, "--count", "1", "--outliers", "2"], prog="rt-synth") == 2


# ----------------------------------------------------------------------------- device-side compatibility

def _vermin():
    beside = os.path.join(os.path.dirname(sys.executable), "vermin")
    return beside if os.path.isfile(beside) else shutil.which("vermin")


@pytest.mark.skipif(_vermin() is None, reason="vermin not installed")
def test_device_code_is_python36_compatible():
    paths = [os.path.join(ROOT, "runtime", "data")]  # the class table and Cityscapes I/O; the generator is export/
    proc = subprocess.run([_vermin(), "--target=3.6-", "--no-tips", "--violations"] + paths,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0, proc.stdout


def test_generator_does_not_import_torch():
    code = ("import sys; import export.scenes, runtime.data.cityscapes, export.synth_cli; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.call([sys.executable, "-c", code], cwd=ROOT) == 0
