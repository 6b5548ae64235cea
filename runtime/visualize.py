"""Pictures of a class map: overlay, colour mask or side by side, with a legend and a HUD.

Colours and names come from the manifest (``runtime.manifest.Manifest.palette``), never from a
hard-coded class list. Images are drawn at the resolution the network saw (the
fitted frame), so an output video has one fixed size whatever the camera gives.
Only called when an output needs a picture: the hot path never pays for it otherwise.

Engines with an outlier score (manifest task ``outlier``) get it drawn on top of the
segmentation: ``outlier_view="mask"`` hatches the pixels above the threshold in magenta
with an outline, ``"heatmap"`` blends a colour map of the score in (stronger where the
score is higher) and outlines the thresholded region.

Forecast bundles (manifest task ``forecast``) get ``ForecastVisualizer``: ``overlay``
blends the forecast class map over the current frame, ``side-by-side`` puts the current
segmentation left of the forecast. Warm-up frames (no forecast yet) show the plain frame
and say so. ``make_visualizer`` picks the right one from the manifest.
"""
import math

import cv2
import numpy as np

from runtime.errors import UserError
from runtime.tasks import outlier as outlier_mod

MODES = ("overlay", "mask", "side-by-side")
FORECAST_VIEWS = ("overlay", "side-by-side")
_FONT = cv2.FONT_HERSHEY_SIMPLEX
OUTLIER_COLOR = (255, 0, 255)  # BGR magenta: no Cityscapes class uses it
_HATCH = 6                     # px: period of the diagonal hatching of outlier pixels


class Visualizer(object):
    """Renders (fitted BGR frame, class map) into one BGR image (colours and names from the
    engine's runtime.manifest.Manifest)."""

    def __init__(self, manifest, mode="overlay", alpha=0.5, legend=True, hud=True,
                 outlier_threshold=None, outlier_view="mask"):
        if outlier_view not in outlier_mod.VIEWS:
            raise UserError("unknown --outlier-view {!r}; use one of {}".format(
                outlier_view, ", ".join(outlier_mod.VIEWS)))
        self.outlier_view = outlier_view
        self.outlier_threshold = (outlier_mod.default_threshold(manifest) if outlier_threshold is None
                                  else outlier_mod.check_threshold(outlier_threshold))
        if mode not in MODES:
            raise UserError("unknown --visualize {!r}; use one of {}".format(mode, ", ".join(MODES)))
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise UserError("--alpha must be between 0 and 1, got {}".format(alpha))
        self.mode, self.alpha, self.legend, self.hud = mode, alpha, bool(legend), bool(hud)
        self.lut = np.ascontiguousarray(manifest.palette()[:, ::-1])  # manifest colours are RGB
        self.classes = sorted(manifest.classes, key=lambda c: int(c["id"]))
        self._panels = {}

    def colorize(self, class_map):
        """(H, W) class ids -> (H, W, 3) BGR colours."""
        return np.take(self.lut, class_map, axis=0)

    def class_colors(self, class_map, size, frame):
        """Colours of ``class_map`` at ``size`` = (h, w); the frame itself when there is none."""
        if class_map is None:
            return frame.copy()
        if class_map.shape[:2] != tuple(size):
            class_map = cv2.resize(class_map, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        return self.colorize(class_map)

    def blend(self, frame, class_map):
        """``frame`` with the colours of ``class_map`` blended in (a copy of it when None)."""
        if class_map is None:
            return frame.copy()
        color = self.class_colors(class_map, frame.shape[:2], frame)
        return cv2.addWeighted(frame, 1.0 - self.alpha, color, self.alpha, 0.0)

    def output_size(self, frame_hw):
        """(height, width) of the rendered image for a fitted frame of ``frame_hw``."""
        height, width = frame_hw
        if self.mode == "side-by-side":
            width *= 2
        if self.legend:
            width += self.legend_panel(height).shape[1]
        return height, width

    def render(self, frame, class_map, hud_text=None, outlier_score=None, details=None):
        """One BGR image: the chosen view, the legend on the right, the HUD on top.

        ``outlier_score`` (H, W floats in [0, 1]), when given, is drawn over the
        segmentation (over the colour half in side-by-side mode). ``class_map`` None
        (no result for this frame yet) draws the frame itself. ``details`` is for
        engine-specific views (subclasses); ignored here.
        """
        height, width = frame.shape[:2]
        color = self.class_colors(class_map, (height, width), frame)
        if self.mode == "overlay":
            view = cv2.addWeighted(frame, 1.0 - self.alpha, color, self.alpha, 0.0)
        elif self.mode == "mask":
            view = color
        else:
            view = None
        if outlier_score is not None:
            if view is None:
                color = self.draw_outliers(color, outlier_score)
            else:
                view = self.draw_outliers(view, outlier_score)
        if self.mode != "side-by-side" and not self.legend:
            image = view
        else:
            out_h, out_w = self.output_size((height, width))
            image = np.empty((out_h, out_w, 3), dtype=np.uint8)
            if view is None:
                image[:, :width] = frame
                image[:, width:2 * width] = color
                right = 2 * width
            else:
                image[:, :width] = view
                right = width
            if self.legend:
                image[:, right:] = self.legend_panel(height)
        if self.hud and hud_text:
            draw_hud(image, hud_text)
        return image

    def draw_outliers(self, image, score):
        """``image`` (BGR) with the outliers of ``score`` drawn on it (a new array)."""
        height, width = image.shape[:2]
        score = np.asarray(score, dtype=np.float32)
        if score.shape[:2] != (height, width):
            score = cv2.resize(score, (width, height), interpolation=cv2.INTER_LINEAR)
        mask = score > self.outlier_threshold
        out = image.copy()
        if self.outlier_view == "heatmap":
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
            contours, _ = _find_contours(mask.astype(np.uint8))
            cv2.drawContours(out, contours, -1, OUTLIER_COLOR if self.outlier_view == "heatmap"
                             else (255, 255, 255), 1)
        return out

    def legend_panel(self, height):
        """The class legend for a frame of this height (drawn once per height, then reused)."""
        panel = self._panels.get(height)
        if panel is None:
            panel = _legend_panel(self.classes, self.lut, height)
            self._panels[height] = panel
        return panel


class ForecastVisualizer(Visualizer):
    """Pictures of a forecast stream: the forecast over the current frame, or now | forecast.

    ``view``: ``overlay`` (the forecast class map blended over the current frame) or
    ``side-by-side`` (the current segmentation left, the forecast right; the engine must
    decode the current frame: runtime.open_engine(bundle, current=True)). Warm-up frames show the
    plain frame. The HUD (overlay) or the panel captions (side-by-side) say
    ``forecast +0.60 s`` or ``warm-up 3/9``.
    """

    def __init__(self, manifest, view="overlay", alpha=0.5, legend=True, hud=True):
        if view not in FORECAST_VIEWS:
            raise UserError("unknown --forecast-view {!r}; use one of {}".format(
                view, ", ".join(FORECAST_VIEWS)))
        Visualizer.__init__(self, manifest, mode="side-by-side" if view == "side-by-side"
                            else "overlay", alpha=alpha, legend=legend, hud=hud)
        self.view = view

    def render(self, frame, class_map, hud_text=None, outlier_score=None, details=None):
        """``details``: the frame's ForecastFrame (None: drawn as a warm-up frame)."""
        height, width = frame.shape[:2]
        forecasting = details is not None and details.is_forecast
        label = _forecast_label(details)
        forecast = self.blend(frame, class_map if forecasting else None)
        out_h, out_w = self.output_size((height, width))
        image = np.empty((out_h, out_w, 3), dtype=np.uint8)
        if self.view == "side-by-side":
            image[:, :width] = self.blend(frame, details.current_map if details else None)
            image[:, width:2 * width] = forecast
            right = 2 * width
            if self.hud:
                _panel_label(image, "now", 0, width)
                _panel_label(image, label, width, width)
        else:
            image[:, :width] = forecast
            right = width
        if self.legend:
            image[:, right:] = self.legend_panel(height)
        if self.hud:
            if self.view == "overlay":
                hud_text = label + ("  " + hud_text if hud_text else "")
            if hud_text:
                draw_hud(image, hud_text)
        return image


def _forecast_label(details):
    if details is None:
        return "warm-up"
    if details.is_forecast:
        return "forecast {:+.2f} s".format(details.horizon_s)
    if details.warmup:
        return "warm-up {}/{}".format(*details.warmup)
    return "warm-up"


def _panel_label(image, text, x, width):
    """A caption at the bottom left of one panel."""
    scale = max(0.35, min(1.0, width / 1000.0))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    bottom = image.shape[0]
    cv2.rectangle(image, (x, bottom - th - base - 8), (x + tw + 8, bottom), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 4, bottom - base - 4), _FONT, scale, (255, 255, 255), 1,
                cv2.LINE_AA)


def make_visualizer(manifest, forecast_view=None, **options):
    """The visualizer for an engine's Manifest: ForecastVisualizer for forecast bundles.

    ``options`` are Visualizer's; for a bundle only ``alpha``, ``legend`` and ``hud`` apply
    (its views are ``forecast_view``: overlay, the default, or side-by-side).
    """
    if manifest.task == "forecast":
        kept = dict((k, v) for k, v in options.items() if k in ("alpha", "legend", "hud"))
        return ForecastVisualizer(manifest, view=forecast_view or "overlay", **kept)
    return Visualizer(manifest, **options)


def _legend_panel(classes, lut, height):
    """Colour swatches and names in as many columns as the height needs."""
    scale = max(0.3, min(0.8, height / 720.0))
    row_h = max(11, int(round(30 * scale)))
    rows = max(1, height // row_h)
    cols = max(1, int(math.ceil(len(classes) / float(rows))))
    text_w = max([cv2.getTextSize(c["name"], _FONT, scale, 1)[0][0] for c in classes] or [0])
    swatch = max(6, row_h - 4)
    col_w = swatch + 4 + text_w + 6
    panel = np.full((height, 4 + cols * col_w, 3), 32, dtype=np.uint8)
    for i, cls in enumerate(classes):
        col, row = divmod(i, rows)
        x, y = 4 + col * col_w, row * row_h + 2
        if y + swatch > height:
            break
        color = tuple(int(v) for v in lut[int(cls["id"])])
        cv2.rectangle(panel, (x, y), (x + swatch - 1, y + swatch - 1), color, -1)
        cv2.putText(panel, cls["name"], (x + swatch + 3, y + swatch - 2), _FONT, scale,
                    (235, 235, 235), 1, cv2.LINE_AA)
    return panel


def _find_contours(mask):
    """cv2.findContours as (contours, hierarchy) on OpenCV 3 and 4 alike."""
    found = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return found[-2], found[-1]


def draw_hud(image, text):
    """A line of text (e.g. FPS and latency) on a dark box at the top left, in place."""
    scale = max(0.35, min(1.0, image.shape[1] / 1000.0))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    cv2.rectangle(image, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
    cv2.putText(image, text, (4, th + 4), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image
