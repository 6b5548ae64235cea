"""Reading and writing folders in the Cityscapes layout (numpy + OpenCV only).

    ROOT/leftImg8bit/{split}/{city}/{city}_{seq:06d}_{frame:06d}_leftImg8bit.png
    ROOT/gtFine/{split}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_labelTrainIds.png
    ROOT/gtFine/{split}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_labelIds.png
    ROOT/gtFine/{split}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_color.png         (optional)
    ROOT/gtFine/{split}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_outlierMask.png   (optional)
ROOT/gtFine/{split}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_outlierInstanceIds.png (optional)
ROOT/gtFine/{split}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_outlierObjects.json    (optional)

The outlier mask is uint8: 1 outlier, 0 inlier, 255 void (label ignored for another reason).
The generator's two sidecars describe its outlier objects without changing the mask: the
instance map (uint8, object id where the mask is 1, 0 elsewhere) and a JSON
``{"objects": [{"id", "shape", "texture", "pixels", "distance_m", ...}], "image": {...}}``
(see export.scenes.render_scene_details); rt-eval breaks outlier AP down by them.
The generator also writes ROOT/synth_{split}.json (frame rate, seed, ...): see read_split_info.
"""
import collections
import glob
import json
import os

import cv2
import numpy as np

from runtime.data import classes
from runtime.errors import UserError

IMAGE_SUFFIX = "_leftImg8bit.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
COLOR_SUFFIX = "_gtFine_color.png"
OUTLIER_SUFFIX = "_gtFine_outlierMask.png"
INSTANCE_SUFFIX = "_gtFine_outlierInstanceIds.png"
OBJECTS_SUFFIX = "_gtFine_outlierObjects.json"
_LABEL_SUFFIXES = (TRAIN_IDS_SUFFIX, LABEL_IDS_SUFFIX, COLOR_SUFFIX, OUTLIER_SUFFIX, INSTANCE_SUFFIX,
                   OBJECTS_SUFFIX)

OUTLIER = 1
INLIER = 0
VOID = 255


def stem(city, seq, frame):
    """'{city}_{seq:06d}_{frame:06d}'."""
    return "{}_{:06d}_{:06d}".format(city, int(seq), int(frame))


def image_path(root, split, city, seq, frame):
    return os.path.join(root, "leftImg8bit", split, city, stem(city, seq, frame) + IMAGE_SUFFIX)


def label_path(root, split, city, seq, frame, suffix=TRAIN_IDS_SUFFIX):
    return os.path.join(root, "gtFine", split, city, stem(city, seq, frame) + suffix)


def parse_name(path):
    """(city, seq, frame) of a Cityscapes file name; seq and frame as ints when numeric."""
    name = os.path.basename(path)
    for suffix in (IMAGE_SUFFIX,) + _LABEL_SUFFIXES:
        if name.endswith(suffix):
            name = name[:-len(suffix)]
            break
    else:
        name = os.path.splitext(name)[0]
    parts = name.rsplit("_", 2)
    if len(parts) != 3:
        raise UserError("not a Cityscapes file name: {}".format(path))
    city, seq, frame = parts
    return city, _int_or_str(seq), _int_or_str(frame)


def _int_or_str(text):
    return int(text) if text.isdigit() else text


def outlier_mask_path(label_file):
    """The outlier-mask path that belongs to a label (labelTrainIds / labelIds / color) path."""
    for suffix in _LABEL_SUFFIXES:
        if label_file.endswith(suffix):
            return label_file[:-len(suffix)] + OUTLIER_SUFFIX
    raise UserError("not a gtFine label file name: {}".format(label_file))


def outlier_details_paths(label_file):
    """(instance map path, objects JSON path) that belong to a label path."""
    base = outlier_mask_path(label_file)[:-len(OUTLIER_SUFFIX)]
    return base + INSTANCE_SUFFIX, base + OBJECTS_SUFFIX


def read_outlier_details(label_file):
    """(instance map uint8 HxW, {"objects": [...], "image": {...}}) of a label, or None when
    the sidecars are absent (e.g. masks from elsewhere); UserError when one is unreadable."""
    inst_path, json_path = outlier_details_paths(label_file)
    if not (os.path.isfile(inst_path) and os.path.isfile(json_path)):
        return None
    instances = cv2.imread(inst_path, cv2.IMREAD_UNCHANGED)
    if instances is None or instances.ndim != 2:
        raise UserError("cannot read outlier instance map {}".format(inst_path))
    try:
        with open(json_path) as handle:
            info = json.load(handle)
    except (OSError, IOError, ValueError) as exc:
        raise UserError("cannot read {}: {}".format(json_path, exc))
    if not isinstance(info, dict) or not isinstance(info.get("objects"), list):
        raise UserError("{} has no 'objects' list".format(json_path))
    return instances, info


def write_outlier_details(root, split, city, seq, frame, details):
    """Write the instance map and the objects JSON of one sample (details as the generator's)."""
    label_file = label_path(root, split, city, seq, frame)
    inst_path, json_path = outlier_details_paths(label_file)
    _write_png(inst_path, details["instances"])
    try:
        with open(json_path, "w") as handle:
            json.dump({"objects": details["objects"], "image": details["image"]}, handle, indent=1,
                      sort_keys=True)
    except (OSError, IOError) as exc:
        raise UserError("cannot write {}: {}".format(json_path, exc))


def find_pairs(root, split=None):
    """Sorted list of (image_path, label_path) under ROOT (one split, or all when None).

    The label is ``*_gtFine_labelTrainIds.png`` or, when that is absent,
    ``*_gtFine_labelIds.png`` (read_label maps it to train ids). Images without
    either are skipped.
    """
    image_root = os.path.join(root, "leftImg8bit")
    if not os.path.isdir(image_root):
        raise UserError("{} is not a Cityscapes-format folder (no leftImg8bit/)".format(root))
    if split is not None and not os.path.isdir(os.path.join(image_root, split)):
        raise UserError("no split {!r} under {}".format(split, image_root))
    pattern = os.path.join(image_root, split or "*", "*", "*" + IMAGE_SUFFIX)
    pairs = []
    for image_file in sorted(glob.glob(pattern)):
        city_dir = os.path.dirname(image_file)
        city = os.path.basename(city_dir)
        split_name = os.path.basename(os.path.dirname(city_dir))
        base = os.path.basename(image_file)[:-len(IMAGE_SUFFIX)]
        label_dir = os.path.join(root, "gtFine", split_name, city)
        for suffix in (TRAIN_IDS_SUFFIX, LABEL_IDS_SUFFIX):
            candidate = os.path.join(label_dir, base + suffix)
            if os.path.isfile(candidate):
                pairs.append((image_file, candidate))
                break
    return pairs


def read_image(path):
    """BGR uint8 image; UserError when unreadable."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise UserError("cannot read image {}".format(path))
    return image


def read_label(path):
    """uint8 train-id map of a labelTrainIds or labelIds PNG (labelIds are mapped)."""
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if label is None:
        raise UserError("cannot read label {}".format(path))
    if label.ndim != 2:
        raise UserError("label {} is not a single-channel image".format(path))
    if label.dtype != np.uint8:
        label = np.clip(label, 0, 255).astype(np.uint8)
    if path.endswith(LABEL_IDS_SUFFIX):
        label = classes.label_ids_to_train_ids(label)
    return label


def read_outlier_mask(path):
    """uint8 outlier mask (1 outlier, 0 inlier, 255 void) or None when the file is absent."""
    if not os.path.isfile(path):
        return None
    mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2:
        raise UserError("cannot read outlier mask {}".format(path))
    return mask


def group_sequences(pairs):
    """OrderedDict (city, seq) -> list of pairs sorted by frame number (keys sorted)."""
    groups = collections.defaultdict(list)
    for pair in pairs:
        city, seq, frame = parse_name(pair[0])
        groups[(city, seq)].append((frame, pair))
    ordered = collections.OrderedDict()
    for key in sorted(groups, key=lambda k: (k[0], str(k[1]).zfill(12))):
        ordered[key] = [pair for _, pair in sorted(groups[key], key=lambda fp: str(fp[0]).zfill(12))]
    return ordered


def _write_png(path, array):
    directory = os.path.dirname(path)
    try:
        if directory and not os.path.isdir(directory):
            os.makedirs(directory)
    except OSError as exc:
        if not os.path.isdir(directory):  # another worker may have made it meanwhile
            raise UserError("cannot create {}: {}".format(directory, exc.strerror or exc))
    if not cv2.imwrite(path, array):
        raise UserError("cannot write {}".format(path))


def write_sample(root, split, city, seq, frame, image, label, outlier_mask=None, color=False):
    """Write one image with its labelTrainIds, labelIds (and color / outlier mask) PNGs."""
    _write_png(image_path(root, split, city, seq, frame), image)
    _write_png(label_path(root, split, city, seq, frame, TRAIN_IDS_SUFFIX), label)
    _write_png(label_path(root, split, city, seq, frame, LABEL_IDS_SUFFIX),
               classes.train_ids_to_label_ids(label))
    if color:
        _write_png(label_path(root, split, city, seq, frame, COLOR_SUFFIX), classes.colorize(label))
    if outlier_mask is not None:
        _write_png(label_path(root, split, city, seq, frame, OUTLIER_SUFFIX), outlier_mask)


def split_info_path(root, split):
    return os.path.join(root, "synth_{}.json".format(split))


def read_split_info(root, split):
    """The generator's JSON for a split (e.g. {'sequences': {'fps': 15, ...}}), or None."""
    path = split_info_path(root, split)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, IOError, ValueError) as exc:
        raise UserError("cannot read {}: {}".format(path, exc))


def write_split_info(root, split, key, info):
    """Merge ``{key: info}`` into ROOT/synth_{split}.json (images and sequences can share a split)."""
    data = read_split_info(root, split) or {}
    data[key] = info
    if "fps" in info:
        data["fps"] = info["fps"]
    path = split_info_path(root, split)
    try:
        with open(path, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
    except (OSError, IOError) as exc:
        raise UserError("cannot write {}: {}".format(path, exc))
    return path
