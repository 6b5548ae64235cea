"""Cityscapes' 19 train classes as plain data (numpy only).

The table mirrors cityscapesscripts/helpers/labels.py (the entries whose trainId is
not 255: name, RGB colour, label id, train id) so the device side needs no extra
package. Every other Cityscapes label id (unlabeled, ego vehicle, parking, rail
track, guard rail, caravan, ...) maps to IGNORE_ID.
"""
import collections

import numpy as np

Class = collections.namedtuple("Class", ["train_id", "name", "color", "label_id"])

IGNORE_ID = 255
NUM_CLASSES = 19

# (trainId, name, RGB colour, Cityscapes labelId)
CLASSES = (
    Class(0, "road", (128, 64, 128), 7),
    Class(1, "sidewalk", (244, 35, 232), 8),
    Class(2, "building", (70, 70, 70), 11),
    Class(3, "wall", (102, 102, 156), 12),
    Class(4, "fence", (190, 153, 153), 13),
    Class(5, "pole", (153, 153, 153), 17),
    Class(6, "traffic light", (250, 170, 30), 19),
    Class(7, "traffic sign", (220, 220, 0), 20),
    Class(8, "vegetation", (107, 142, 35), 21),
    Class(9, "terrain", (152, 251, 152), 22),
    Class(10, "sky", (70, 130, 180), 23),
    Class(11, "person", (220, 20, 60), 24),
    Class(12, "rider", (255, 0, 0), 25),
    Class(13, "car", (0, 0, 142), 26),
    Class(14, "truck", (0, 0, 70), 27),
    Class(15, "bus", (0, 60, 100), 28),
    Class(16, "train", (0, 80, 100), 31),
    Class(17, "motorcycle", (0, 0, 230), 32),
    Class(18, "bicycle", (119, 11, 32), 33),
)

NAMES = tuple(c.name for c in CLASSES)
COLORS_RGB = tuple(c.color for c in CLASSES)
TRAIN_ID_TO_LABEL_ID = tuple(c.label_id for c in CLASSES)
LABEL_ID_TO_TRAIN_ID = dict((c.label_id, c.train_id) for c in CLASSES)
# label id written for ignored pixels when converting train ids back to label ids
UNLABELED_LABEL_ID = 0

# train id name constants (used by the generator)
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, \
    TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(19)


def _lut(pairs, default):
    table = np.full(256, default, np.uint8)
    for src, dst in pairs:
        table[src] = dst
    return table


# uint8 lookup tables: labelId -> trainId and trainId -> labelId
LABEL_TO_TRAIN_LUT = _lut(LABEL_ID_TO_TRAIN_ID.items(), IGNORE_ID)
TRAIN_TO_LABEL_LUT = _lut(enumerate(TRAIN_ID_TO_LABEL_ID), UNLABELED_LABEL_ID)


def label_ids_to_train_ids(label_ids):
    """Map a uint8 Cityscapes labelIds map to train ids (others -> IGNORE_ID)."""
    return LABEL_TO_TRAIN_LUT[np.asarray(label_ids, np.uint8)]


def train_ids_to_label_ids(train_ids):
    """Map a train-id map to Cityscapes label ids (IGNORE_ID -> 0, 'unlabeled')."""
    return TRAIN_TO_LABEL_LUT[np.asarray(train_ids, np.uint8)]


def palette(bgr=True):
    """(256, 3) uint8 colour table indexed by train id; black for ignore / unknown."""
    table = np.zeros((256, 3), np.uint8)
    for c in CLASSES:
        table[c.train_id] = c.color[::-1] if bgr else c.color
    return table


def colorize(train_ids, bgr=True):
    """Colour image (H, W, 3) uint8 of a train-id map, BGR by default (for OpenCV)."""
    return palette(bgr)[np.asarray(train_ids, np.uint8)]
