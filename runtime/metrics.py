"""Segmentation metrics from a confusion matrix (numpy only: used by rt-eval and the trainer).

Definitions follow the Cityscapes benchmark: IoU_c = TP / (TP + FP + FN) over all
pixels of the data set (not averaged per image); pixels labelled ``ignore_id``
are not counted; mIoU averages the classes that occur in the ground truth or the
predictions (a class absent from both is NaN and left out).
"""
import numpy as np

from runtime.errors import UserError


def _flat_pair(a, b, what):
    """Two per-pixel arrays flattened; a ValueError naming ``what`` when their sizes differ."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape:
        raise ValueError("{} differ in size: {} vs {}".format(what, a.shape, b.shape))
    return a, b


def check_label_ids(label, ignore_id, count, label_path):
    """A label id beyond the engine's ``count`` classes means its manifest and the data set
    disagree: ConfusionMatrix would leave those pixels out (a manifest cut to 3 classes
    scored 69.7 % instead of 39.9 %), so it is refused in one line instead."""
    known = label[label != ignore_id]
    if known.size and int(known.max()) >= count:
        raise UserError("{} has class id {} but the engine's manifest names {} classes: the "
                        "manifest and the data set disagree".format(label_path, int(known.max()), count))


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
        prediction, label = _flat_pair(prediction, label, "prediction and label")
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


# -- dense outlier detection ---------------------------------------------------------------
#
# Pixel-level metrics of an outlier score (higher = more likely an outlier) against an
# outlier mask (1 outlier, 0 inlier, 255 void: not counted):
#
# - AP: average precision, sum_k (R_k - R_{k-1}) * P_k over the thresholds in decreasing
#   order, pixels of equal score entering together (step interpolation, as scikit-learn's
#   average_precision_score).
# - AUROC: area under the ROC curve with the trapezoidal rule (ties count one half).
# - FPR at 95 % TPR: the false-positive rate at the highest threshold whose TPR >= 0.95.
#
# OutlierHistogram keeps memory bounded for any amount of data: scores are counted in
# ``bins`` equal bins over [0, 1] (10 000 by default: 2 x 80 kB), and the metrics are
# computed exactly for the *binned* scores. Binning error: it is exactly as if every score
# were rounded down to a multiple of 1/bins; only the order of an outlier and an inlier
# pixel whose scores fall in the same bin is lost (they count as a tie). So AUROC is off
# by at most half the fraction of (outlier, inlier) pairs that share a bin; FPR at 95 % TPR
# can only be read at bin edges and is high by at most the fraction of inlier pixels in the
# bin holding the exact threshold; AP changes only through the precision within such
# shared bins. With 1e-4-wide bins these are far below the differences that matter
# (tests/test_outlier.py checks < 1e-3 on 20 000 random pixels, and exact equality when
# the scores already lie on the bin grid).


def _curve(pos, neg):
    """(AP, AUROC, FPR at 95 % TPR) from positive / negative counts per score level,
    levels ordered from the highest score to the lowest (equal scores = one level)."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan"), float("nan")
    keep = (pos + neg) > 0
    tps, fps = np.cumsum(pos[keep]), np.cumsum(neg[keep])
    precision = tps / (tps + fps)
    recall = tps / n_pos
    ap = float(np.sum(np.diff(np.concatenate(([0.0], recall))) * precision))
    tpr = np.concatenate(([0.0], recall))
    fpr = np.concatenate(([0.0], fps / n_neg))
    auroc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    reach = np.nonzero(tpr >= 0.95)[0]
    fpr95 = float(fpr[reach[0]])
    return ap, auroc, fpr95


def outlier_metrics_exact(scores, labels):
    """Exact {'ap', 'auroc', 'fpr_at_95_tpr'} of ``scores`` for binary ``labels`` (1 outlier,
    0 inlier; other values ignored). Sorts all pixels: for small data and for checking."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    valid = (labels == 0) | (labels == 1)
    scores, labels = scores[valid], labels[valid]
    levels, inverse = np.unique(-scores, return_inverse=True)  # ascending -score = descending
    pos = np.bincount(inverse, weights=(labels == 1).astype(np.float64), minlength=len(levels))
    neg = np.bincount(inverse, weights=(labels == 0).astype(np.float64), minlength=len(levels))
    ap, auroc, fpr95 = _curve(pos, neg)
    return {"ap": ap, "auroc": auroc, "fpr_at_95_tpr": fpr95}


class OutlierHistogram(object):
    """Accumulates outlier / inlier score histograms; metrics of the binned scores (see above)."""

    def __init__(self, bins=10000, void_id=255):
        self.bins = int(bins)
        self.void_id = void_id
        self.pos = np.zeros(self.bins, dtype=np.int64)
        self.neg = np.zeros(self.bins, dtype=np.int64)

    def bin_of(self, scores):
        """Bin index of each score: floor(score * bins), scores clipped to [0, 1]."""
        scores = np.clip(np.nan_to_num(np.asarray(scores, dtype=np.float64)), 0.0, 1.0)
        return np.minimum((scores * self.bins).astype(np.int64), self.bins - 1)

    def update(self, scores, mask):
        """Add one image: ``scores`` floats, ``mask`` 1 outlier / 0 inlier / void (same shape)."""
        scores, mask = _flat_pair(scores, mask, "scores and outlier mask")
        index = self.bin_of(scores)
        self.pos += np.bincount(index[mask == 1], minlength=self.bins)
        self.neg += np.bincount(index[mask == 0], minlength=self.bins)

    def merge(self, other):
        self.pos += other.pos
        self.neg += other.neg
        return self

    def metrics(self):
        """{'ap', 'auroc', 'fpr_at_95_tpr'} (NaN without outlier or inlier pixels)."""
        ap, auroc, fpr95 = _curve(self.pos[::-1], self.neg[::-1])
        return {"ap": ap, "auroc": auroc, "fpr_at_95_tpr": fpr95}

    def summary(self):
        """A JSON-ready dict: the metrics (None for NaN), pixel counts and the binning."""
        out = {}
        for key, value in self.metrics().items():
            out[key] = None if np.isnan(value) else value
        out.update({"outlier_pixels": int(self.pos.sum()), "inlier_pixels": int(self.neg.sum()),
                    "bins": self.bins})
        return out
