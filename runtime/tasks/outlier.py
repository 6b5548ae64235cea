"""Dense outlier detection as a composition of manifest outputs (task ``outlier``).

An outlier engine has, besides its class map (or logits), an output with meaning
``outlier_score``: float (1, H, W), 1 - P(inlier) per pixel. Its manifest says how to
read it::

    "outlier": {"default_threshold": 0.5, "score": "1 - P(inlier)", ...}

A pixel is an outlier when its score is above the threshold. libswiftrt computes the score map
and the mask (runtime/backends/native.py); this module holds what the Python side asks of the
manifest (the output, the default threshold), the report's per-frame counts and the family's
hooks (OutlierTask: the score on each frame's result, drawn by the visualizer, counted in the
report's ``outliers`` block).
"""
import cv2
import numpy as np

from runtime.errors import UserError
from runtime.eval_common import segmentation_lines
from runtime.tasks.base import Task
from runtime.visualize import Visualizer, find_contours

MEANING = "outlier_score"
DEFAULT_THRESHOLD = 0.5
VIEWS = ("mask", "heatmap")
OUTLIER_COLOR = (255, 0, 255)  # BGR magenta: no Cityscapes class uses it
_HATCH = 6                     # px: period of the diagonal hatching of outlier pixels


def score_output(manifest):
    """The Manifest's output with meaning ``outlier_score`` (a runtime.manifest.Tensor), or None."""
    return manifest.output(MEANING)


def default_threshold(manifest):
    """The manifest's default decision threshold (0.5 when it does not say)."""
    return check_threshold(manifest.outlier.get("default_threshold", DEFAULT_THRESHOLD))


def check_threshold(value, flag="--outlier-threshold"):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UserError("{} must be a number between 0 and 1, got {!r}".format(flag, value))
    if not 0.0 <= value <= 1.0:
        raise UserError("{} must be between 0 and 1, got {}".format(flag, value))
    return value


class OutlierCounter(object):
    """Outlier pixels per frame (score > threshold): mean and max per frame, frames with any."""

    def __init__(self, threshold):
        self.threshold = check_threshold(threshold)
        self.frames = 0
        self.frames_with_outliers = 0
        self.pixels_total = 0
        self.pixels_max = 0
        self.fraction_sum = 0.0
        self.fraction_max = 0.0
        self.score_max = 0.0

    def add(self, result):
        """Count one frame's result (its ``outlier_score``); sets its ``outlier_pixels``."""
        if result.outlier_score is not None:
            result.outlier_pixels = self.update(result.outlier_score)

    def update(self, score):
        """Count one frame's score map; returns its number of outlier pixels."""
        count = int(np.count_nonzero(score > self.threshold))
        fraction = count / float(max(1, score.size))
        self.frames += 1
        self.frames_with_outliers += int(count > 0)
        self.pixels_total += count
        self.pixels_max = max(self.pixels_max, count)
        self.fraction_sum += fraction
        self.fraction_max = max(self.fraction_max, fraction)
        if score.size:
            self.score_max = max(self.score_max, float(score.max()))
        return count

    def summary(self):
        """A JSON-ready dict for the run report (see docs/report-schema.md)."""
        frames = self.frames
        return {
            "threshold": self.threshold,
            "frames": frames,
            "frames_with_outliers": self.frames_with_outliers,
            "pixels_per_frame": {"mean": self.pixels_total / float(frames) if frames else None,
                                 "max": self.pixels_max if frames else None},
            "fraction_per_frame": {"mean": self.fraction_sum / frames if frames else None,
                                   "max": self.fraction_max if frames else None},
            "max_score": self.score_max if frames else None,
        }


def check_view(view):
    if view not in VIEWS:
        raise UserError("unknown --outlier-view {!r}; use one of {}".format(view, ", ".join(VIEWS)))
    return view


class OutlierVisualizer(Visualizer):
    """The segmentation with the outlier score drawn on top: ``view="mask"`` hatches the pixels
    above the threshold in magenta with an outline, ``"heatmap"`` blends a colour map of the
    score in (stronger where the score is higher) and outlines the thresholded region."""

    def __init__(self, manifest, threshold=None, view="mask", **common):
        self.view = check_view(view)
        self.threshold = (default_threshold(manifest) if threshold is None
                          else check_threshold(threshold))
        Visualizer.__init__(self, manifest, **common)

    def decorate(self, image, extras):
        score = extras.get("outlier_score")
        return image if score is None else self.draw_outliers(image, score)

    def draw_outliers(self, image, score):
        """``image`` (BGR) with the outliers of ``score`` drawn on it (a new array)."""
        height, width = image.shape[:2]
        score = np.asarray(score, dtype=np.float32)
        if score.shape[:2] != (height, width):
            score = cv2.resize(score, (width, height), interpolation=cv2.INTER_LINEAR)
        mask = score > self.threshold
        out = image.copy()
        if self.view == "heatmap":
            heat = cv2.applyColorMap(np.clip(score * 255.0, 0, 255).astype(np.uint8),
                                     cv2.COLORMAP_JET)
            weight = (0.25 + 0.5 * np.clip(score, 0.0, 1.0))[..., None]
            out = (out * (1.0 - weight) + heat * weight).astype(np.uint8)
        elif mask.any():
            yy, xx = np.mgrid[0:height, 0:width]
            stripes = ((yy + xx) // (_HATCH // 2)) % 2 == 0
            out[mask] = (out[mask] * 0.4 + np.array(OUTLIER_COLOR) * 0.6).astype(np.uint8)
            out[mask & stripes] = OUTLIER_COLOR
        if mask.any():
            contours, _ = find_contours(mask.astype(np.uint8))
            cv2.drawContours(out, contours, -1, OUTLIER_COLOR if self.view == "heatmap"
                             else (255, 255, 255), 1)
        return out


class OutlierTask(Task):
    """Segmentation plus a per-pixel outlier score: on the result, in the picture, counted."""

    name = "outlier"
    report_key = "outliers"

    def read_frame(self, engine, result, outputs):
        result.outlier_score = engine.outlier_score(outputs)

    def counter(self, engine, options):
        if engine.outlier_output is None:
            return None
        threshold = (options or {}).get("outlier_threshold")
        return OutlierCounter(engine.outlier_threshold if threshold is None else threshold)

    def visual_extras(self, result):
        extras = Task.visual_extras(self, result)
        if result.outlier_score is not None:
            extras["outlier_score"] = result.outlier_score
        return extras

    def add_arguments(self, group):
        group.add_argument("--outlier-threshold", type=float, metavar="T",
                           help="outlier engines: a pixel is an outlier when its score "
                                "(1 - P(inlier)) is above T (default: the manifest's, 0.5)")
        group.add_argument("--outlier-view", default="mask", metavar="VIEW",
                           help="outlier engines: how outliers are drawn over the segmentation: "
                                "mask (hatched, default) or heatmap")

    def options(self, args):
        return {"outlier_threshold": args.outlier_threshold, "outlier_view": args.outlier_view}

    def check_options(self, options):
        check_view(options.get("outlier_view") or "mask")
        if options.get("outlier_threshold") is not None:
            check_threshold(options["outlier_threshold"])

    def check_engine_options(self, options, engine, task):
        if options.get("outlier_threshold") is not None and engine.outlier_output is None:
            raise UserError("--outlier-threshold: {} has no outlier score (manifest task {!r})"
                            .format(engine.path, task.name))
        if options.get("plot") and engine.outlier_output is None:
            raise UserError("--plot draws outlier scores: {} has no outlier_score output"
                            .format(engine.path))

    def add_eval_arguments(self, parser):
        parser.add_argument("--outlier-bins", type=int, default=10000,
                            help="outlier engines: score histogram bins over [0, 1] (default 10000)")
        parser.add_argument("--plot", metavar="FILE",
                            help="outlier engines: write a PNG of the inlier / outlier score "
                                 "distributions (needs matplotlib)")

    def eval_options(self, args):
        if args.outlier_bins < 2:
            raise UserError("--outlier-bins must be at least 2")
        return {"outlier_bins": args.outlier_bins, "plot": args.plot}

    def eval_metric(self, engine, options):
        """Outlier AP / AUROC / FPR95 and their breakdown (options ``outlier_bins``, ``plot``)."""
        from runtime import outlier_eval  # rt-eval only: not on every engine open
        if engine.outlier_output is None:
            return None
        return outlier_eval.OutlierMetric(bins=options.get("outlier_bins") or 10000,
                                          plot=options.get("plot"),
                                          threshold=default_threshold(engine.manifest))

    def eval_lines(self, result):
        from runtime import outlier_eval  # rt-eval only: not on every engine open
        return segmentation_lines(result, outlier_eval.result_lines(result))

    def visualizer(self, manifest, options, **common):
        return OutlierVisualizer(manifest, threshold=options.get("outlier_threshold"),
                                 view=options.get("outlier_view") or "mask", **common)

    def saved_images(self, result):
        score = result.outlier_score
        if score is None:
            return []
        return [("_outlier.png", (score.clip(0.0, 1.0) * 255.0 + 0.5).astype("uint8"))]

    def ros_topics(self, engine, settings):
        if engine.outlier_output is None or not settings.publish_outlier:
            return []
        return ["outlier_score", "outlier_mask"]

    def ros_threshold(self, engine, settings):
        if engine.outlier_output is None:
            return None
        return engine.outlier_threshold if settings.outlier_threshold is None else settings.outlier_threshold

    def ros_publish(self, publisher, result, header_in, header, sized):
        """~/outlier_score (32FC1) and ~/outlier_mask (mono8, 255 above the threshold)."""
        score = result.outlier_score
        if score is None:
            return
        if publisher._subscribed("outlier_score"):
            publisher._publish("outlier_score", header, sized(score, 0.0, nearest=False), "32FC1")
        if publisher._subscribed("outlier_mask"):
            mask = np.where(score > publisher.threshold, 255, 0).astype(np.uint8)
            publisher._publish("outlier_mask", header, sized(mask, 0), "mono8")

    def report_lines(self, block):
        if not block.get("frames"):
            return []
        return ["outliers (score > {}): {} of {} frames, {:.1f} px/frame mean, {} max "
                "({:.2%} of a frame at most)".format(
                    block["threshold"], block["frames_with_outliers"], block["frames"],
                    block["pixels_per_frame"]["mean"], block["pixels_per_frame"]["max"],
                    block["fraction_per_frame"]["max"])]


TASK = OutlierTask()
