"""Outlier AP broken down by what the outlier objects are (rt-eval; numpy only, no torch).

A single pixel-level AP over a split hides *which* outliers a detector misses. The
generator (``rt-synth split --outliers``) writes, beside every outlier mask, an instance
map and a JSON describing each object (shape, texture, size, distance, position, contrast
with its surroundings) and the image's lighting (runtime/data/cityscapes.py). This module
turns them into per-group AP / AUROC / FPR at 95 % TPR:

- object groups (``kind``, ``texture``, ``size``, ``distance``, ``position``, ``contrast``):
  the positives are the outlier pixels of the objects in the group, the negatives are
  *all* inlier pixels of the split: "how well are these objects separated from the road
  scene", the question a user of the detector asks. The groups of one attribute
  partition the outlier pixels, so their pixel counts add up to the split's.
- image groups (``lighting``, ``exposure``): positives and negatives both come from the
  images of the group (a dark image's inliers are what a dark outlier competes with).

OutlierMetric is the outlier family's part of rt-eval (runtime.tasks.outlier.OutlierTask.eval_metric):
the split's AP / AUROC / FPR95, this breakdown and the score plot.

Every group keeps one histogram of the same bins as runtime.metrics.OutlierHistogram, so
memory is bounded and the metrics are those of the binned scores, like the split's.
"""
import sys

import cv2
import numpy as np

from runtime.data.cityscapes import OUTLIER, outlier_mask_path, read_outlier_details, read_outlier_mask
from runtime.errors import UserError
from runtime.eval_common import pct
from runtime.metrics import OutlierHistogram, _curve

# Size buckets: fraction of the image covered by the object's visible pixels (so the
# buckets mean the same at any resolution; at 256x512 0.05 % is 66 pixels, 1 % 1311).
SIZE_BUCKETS = ((0.0005, "tiny (<0.05 %)"), (0.002, "small (0.05-0.2 %)"), (0.01, "medium (0.2-1 %)"),
                (None, "large (>=1 %)"))
DISTANCE_BUCKETS = ((12.0, "near (<12 m)"), (24.0, "mid (12-24 m)"), (None, "far (>=24 m)"))
# contrast: mean colour distance to the ring of inlier pixels around the object (0-255 scale)
CONTRAST_BUCKETS = ((40.0, "low (<40)"), (80.0, "mid (40-80)"), (None, "high (>=80)"))
EXPOSURE_BUCKETS = ((80.0, "dark (mean luma <80)"), (120.0, "normal (80-120)"), (None, "bright (>=120)"))
UNKNOWN = "unknown"

OBJECT_GROUPS = ("kind", "texture", "size", "distance", "position", "contrast")
IMAGE_GROUPS = ("lighting", "exposure")


def _bucket(value, buckets):
    if value is None:
        return UNKNOWN
    for limit, name in buckets:
        if limit is None or value < limit:
            return name
    return UNKNOWN


def object_groups(obj):
    """{attribute: group name} of one object record of the generator's JSON."""
    position = obj.get("on_road")
    return {"kind": str(obj.get("shape", UNKNOWN)), "texture": str(obj.get("texture", UNKNOWN)),
            "size": _bucket(obj.get("fraction"), SIZE_BUCKETS),
            "distance": _bucket(obj.get("distance_m"), DISTANCE_BUCKETS),
            "position": UNKNOWN if position is None else ("road" if position else "roadside"),
            "contrast": _bucket(obj.get("contrast"), CONTRAST_BUCKETS)}


def image_groups(image_info):
    """{attribute: group name} of an image's lighting record."""
    sunny = image_info.get("sunny")
    return {"lighting": UNKNOWN if sunny is None else ("sunny" if sunny else "overcast"),
            "exposure": _bucket(image_info.get("mean_luma"), EXPOSURE_BUCKETS)}


class OutlierBreakdown(object):
    """Per-group score histograms of a split; ``summary(neg)`` gives each group's metrics.

    ``bins`` must equal the split histogram's (its inlier histogram is the negative set
    of the object groups).
    """

    def __init__(self, bins=10000):
        self.bins = int(bins)
        self.pos = {}      # (attribute, group) -> outlier-pixel histogram
        self.neg = {}      # (attribute, group) -> inlier-pixel histogram (image groups only)
        self.objects = {}  # (attribute, group) -> number of objects (object groups)
        self.images = {}   # (attribute, group) -> number of images (image groups)

    def _hist(self, table, key):
        hist = table.get(key)
        if hist is None:
            hist = table[key] = np.zeros(self.bins, dtype=np.int64)
        return hist

    def update(self, index, mask, instances, info):
        """Add one image: ``index`` the score bins per pixel (OutlierHistogram.bin_of), ``mask``
        1 outlier / 0 inlier / void, ``instances`` the object id per pixel, ``info`` the JSON."""
        index, mask, instances = np.ravel(index), np.ravel(mask), np.ravel(instances)
        if not (index.shape == mask.shape == instances.shape):
            raise ValueError("scores, outlier mask and instance map differ in size")
        outlier = mask == 1
        assigned = np.zeros(index.shape, dtype=bool)
        for obj in info.get("objects") or []:
            pixels = outlier & (instances == int(obj.get("id", -1)))
            if not pixels.any():
                continue
            assigned |= pixels
            counts = np.bincount(index[pixels], minlength=self.bins)
            for attribute, group in object_groups(obj).items():
                self._hist(self.pos, (attribute, group)).__iadd__(counts)
                self.objects[(attribute, group)] = self.objects.get((attribute, group), 0) + 1
        rest = outlier & ~assigned   # outlier pixels no object claims (masks from elsewhere)
        if rest.any():
            counts = np.bincount(index[rest], minlength=self.bins)
            for attribute in OBJECT_GROUPS:
                self._hist(self.pos, (attribute, UNKNOWN)).__iadd__(counts)
        pos = np.bincount(index[outlier], minlength=self.bins)
        neg = np.bincount(index[mask == 0], minlength=self.bins)
        for attribute, group in image_groups(info.get("image") or {}).items():
            self._hist(self.pos, (attribute, group)).__iadd__(pos)
            self._hist(self.neg, (attribute, group)).__iadd__(neg)
            self.images[(attribute, group)] = self.images.get((attribute, group), 0) + 1

    def summary(self, split_neg):
        """{attribute: {group: {ap, auroc, fpr_at_95_tpr, outlier_pixels, ...}}} (None for NaN).

        ``split_neg``: the split's inlier histogram, the negatives of the object groups."""
        out = {}
        for attribute in OBJECT_GROUPS + IMAGE_GROUPS:
            groups = {}
            for (name, group), pos in sorted(self.pos.items()):
                if name != attribute:
                    continue
                neg = self.neg[(name, group)] if attribute in IMAGE_GROUPS else split_neg
                ap, auroc, fpr95 = _curve(pos[::-1], neg[::-1])
                entry = {"ap": _none(ap), "auroc": _none(auroc), "fpr_at_95_tpr": _none(fpr95),
                         "outlier_pixels": int(pos.sum())}
                if attribute in IMAGE_GROUPS:
                    entry.update({"inlier_pixels": int(neg.sum()), "images": self.images[(name, group)]})
                else:
                    entry["objects"] = self.objects.get((name, group), 0)
                groups[group] = entry
            if groups:
                out[attribute] = groups
        return out


def _none(value):
    return None if np.isnan(value) else float(value)


def plot_scores(path, pos, neg, title="", threshold=None, coarse=100):
    """Write a PNG of the inlier and outlier score distributions (share of pixels per bin,
    log scale) from two histograms; ``threshold`` draws the decision threshold.

    matplotlib is imported here, not at module import: the device runtime does not need it.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from runtime.errors import UserError
        raise UserError("--plot needs matplotlib (pip install matplotlib)")
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    bins = len(pos)
    coarse = max(1, min(int(coarse), bins))
    edges = np.linspace(0.0, 1.0, coarse + 1)
    group = (np.arange(bins) * coarse) // bins
    fig, ax = plt.subplots(figsize=(7, 4))
    for hist, name, color in ((neg, "inlier pixels", "tab:blue"), (pos, "outlier pixels", "tab:red")):
        total = hist.sum()
        if total == 0:
            continue
        share = np.bincount(group, weights=hist, minlength=coarse) / total
        ax.step(edges[:-1], np.maximum(share, 1e-9), where="post", color=color,
                label="{} ({:,})".format(name, int(total)))
    if threshold is not None:
        ax.axvline(threshold, color="grey", linestyle="--", label="threshold {:g}".format(threshold))
    ax.set_yscale("log")
    ax.set_ylim(1e-7, 1.5)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("outlier score (1 - P(inlier))")
    ax.set_ylabel("share of pixels per bin")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper center")
    fig.tight_layout()
    import io
    from runtime.jsonfile import write_bytes_atomic
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=100, format="png")
    finally:
        plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())  # beside the target, renamed: never half a PNG


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


class OutlierMetric(object):
    """rt-eval's outlier scores (runtime.evaluation.evaluate's ``metric``): the engine's scores
    on the images that have an outlier mask, in a runtime.metrics.OutlierHistogram and an
    OutlierBreakdown (images that also have the generator's sidecars); the outlier pixels are
    ignored by the confusion matrix, which then measures the inlier mIoU.

    ``breakdown`` False: the histogram only; ``plot``: a PNG of the inlier / outlier score
    distributions, ``threshold`` marked on it.
    """

    def __init__(self, bins=10000, breakdown=True, plot=None, threshold=None):
        self.histogram = OutlierHistogram(bins=bins)
        self.breakdown = OutlierBreakdown(bins=bins) if breakdown else None
        self.plot, self.threshold = plot, threshold

    def add(self, result, label, label_path, ignore_id):
        """Count one image's Result; its label with the outlier pixels set to ``ignore_id``."""
        mask = read_outlier_mask(outlier_mask_path(label_path))
        if mask is None:
            return label
        if mask.shape != label.shape:
            raise UserError("outlier mask of {} has size {}, its label {}".format(
                label_path, mask.shape, label.shape))
        label = np.where(mask == OUTLIER, np.uint8(ignore_id), label).astype(np.uint8)
        score = result.outlier_score
        if score is None:
            return label
        if score.shape != mask.shape:
            score = cv2.resize(score, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_LINEAR)
        self.histogram.update(score, mask)
        details = read_outlier_details(label_path) if self.breakdown is not None else None
        if details is not None:
            if details[0].shape != mask.shape:
                raise UserError("outlier instance map of {} has size {}, its mask {}".format(
                    label_path, details[0].shape, mask.shape))
            self.breakdown.update(self.histogram.bin_of(score), mask, details[0], details[1])
        return label

    def summarize(self, result):
        """Add ``inlier_miou`` and ``outlier`` to rt-eval's ``result`` (and draw the plot)."""
        hist = self.histogram
        if hist.pos.sum() + hist.neg.sum() == 0:
            sys.stderr.write("note: no *_gtFine_outlierMask.png under {}: no outlier metrics\n"
                             .format(result["data"]))
            return
        result["inlier_miou"] = result["miou"]
        result["outlier"] = hist.summary()
        parts = self.breakdown.summary(hist.neg) if self.breakdown is not None else None
        if parts:
            result["outlier"]["breakdown"] = parts
        if self.plot:
            plot_scores(self.plot, hist.pos, hist.neg, threshold=self.threshold,
                        title="{} on {} ({}, {} images): AP {}".format(
                            result["engine"], result["data"], result["split"], result["images"],
                            pct(result["outlier"]["ap"])))


def result_lines(result):
    """rt-eval's printed lines for the ``outlier`` block of a result (none without one)."""
    if "outlier" not in result:
        return []
    out = result["outlier"]
    lines = ["outliers: AP {}   AUROC {}   FPR@95%TPR {}   ({} outlier / {} inlier pixels, "
             "inlier mIoU {:.2f} %)".format(pct(out["ap"]), pct(out["auroc"]), pct(out["fpr_at_95_tpr"]),
                                            out["outlier_pixels"], out["inlier_pixels"],
                                            100 * result["inlier_miou"])]
    for attribute, groups in sorted((out.get("breakdown") or {}).items()):
        lines.append("  by {}: {}".format(attribute, ";  ".join(
            "{} AP {} FPR95 {}".format(group, pct(v["ap"]), pct(v["fpr_at_95_tpr"]))
            for group, v in sorted(groups.items()))))
    return lines
