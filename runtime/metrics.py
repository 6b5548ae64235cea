"""Segmentation metrics from a confusion matrix (numpy only: used by rt-eval and the trainer).

Definitions follow the Cityscapes benchmark: IoU_c = TP / (TP + FP + FN) over all
pixels of the data set (not averaged per image); pixels labelled ``ignore_id``
are not counted; mIoU averages the classes that occur in the ground truth or the
predictions (a class absent from both is NaN and left out).
"""
import numpy as np


class ConfusionMatrix(object):
    """Accumulates a (num_classes x num_classes) matrix: rows ground truth, columns prediction."""

    def __init__(self, num_classes, ignore_id=255):
        self.num_classes = int(num_classes)
        self.ignore_id = ignore_id
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        # ground-truth pixels predicted as an id outside 0..num_classes-1 (always wrong)
        self.missed = np.zeros(self.num_classes, dtype=np.int64)

    def update(self, prediction, label):
        """Add one prediction/label pair (same shape, integer class ids)."""
        prediction = np.asarray(prediction).ravel()
        label = np.asarray(label).ravel()
        if prediction.shape != label.shape:
            raise ValueError("prediction and label differ in size: {} vs {}".format(
                prediction.shape, label.shape))
        valid = (label != self.ignore_id) & (label < self.num_classes)
        # Predictions outside the class range (e.g. an engine's own void id) count as wrong
        # for their ground-truth class: they are mapped to no column.
        pred = prediction[valid].astype(np.int64)
        gt = label[valid].astype(np.int64)
        in_range = pred < self.num_classes
        index = gt[in_range] * self.num_classes + pred[in_range]
        self.matrix += np.bincount(index, minlength=self.num_classes ** 2).reshape(
            self.num_classes, self.num_classes)
        self.missed += np.bincount(gt[~in_range], minlength=self.num_classes)

    def merge(self, other):
        self.matrix += other.matrix
        self.missed += other.missed
        return self

    def iou(self):
        """Per-class IoU (NaN for a class in neither ground truth nor prediction)."""
        tp = np.diag(self.matrix).astype(np.float64)
        fn = self.matrix.sum(axis=1) - tp + self.missed
        fp = self.matrix.sum(axis=0) - tp
        denom = tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)

    def miou(self):
        values = self.iou()
        return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")

    def pixel_accuracy(self):
        total = self.matrix.sum() + int(self.missed.sum())
        return float(np.diag(self.matrix).sum()) / total if total else float("nan")

    def summary(self, class_names=None):
        """A JSON-ready dict: miou, pixel_accuracy, per_class {name: iou or None}."""
        names = class_names or [str(i) for i in range(self.num_classes)]
        per_class = {}
        for name, value in zip(names, self.iou()):
            per_class[name] = None if np.isnan(value) else float(value)
        return {"miou": self.miou(), "pixel_accuracy": self.pixel_accuracy(),
                "per_class_iou": per_class, "pixels": int(self.matrix.sum())}
