"""Pictures of a class map: overlay, colour mask or side by side, with a legend and a HUD.

Colours and names come from the manifest (``runtime.manifest.Manifest.palette``), never from a
hard-coded class list. Images are drawn at the resolution the network saw (the
fitted frame), so an output video has one fixed size whatever the camera gives.
Only called when an output needs a picture: the hot path never pays for it otherwise.

A model family draws what it has beyond a class map by subclassing Visualizer
(runtime/tasks/: the outlier score over the segmentation, a forecast beside the current frame);
``runtime.tasks.visualizer`` picks the one of an engine's manifest.
"""
import math

import cv2
import numpy as np

from runtime.errors import UserError

MODES = ("overlay", "mask", "side-by-side")
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class Visualizer(object):
    """Renders (fitted BGR frame, class map) into one BGR image (colours and names from the
    engine's runtime.manifest.Manifest)."""

    def __init__(self, manifest, mode="overlay", alpha=0.5, legend=True, hud=True):
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

    def render(self, frame, class_map, hud_text=None, **extras):
        """One BGR image: the chosen view, the legend on the right, the HUD on top.

        ``class_map`` None (no result for this frame yet) draws the frame itself.
        ``extras``: what the engine's family gives beyond the class map
        (runtime.tasks.Task.visual_extras), drawn by ``decorate`` over the segmentation
        (over the colour half in side-by-side mode).
        """
        height, width = frame.shape[:2]
        color = self.class_colors(class_map, (height, width), frame)
        if self.mode == "overlay":
            view = cv2.addWeighted(frame, 1.0 - self.alpha, color, self.alpha, 0.0)
        elif self.mode == "mask":
            view = color
        else:
            view = None
        if view is None:
            color = self.decorate(color, extras)
        else:
            view = self.decorate(view, extras)
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

    def decorate(self, image, extras):
        """``image`` with a family's ``extras`` drawn on it; a plain segmentation has none."""
        return image

    def legend_panel(self, height):
        """The class legend for a frame of this height (drawn once per height, then reused)."""
        panel = self._panels.get(height)
        if panel is None:
            panel = _legend_panel(self.classes, self.lut, height)
            self._panels[height] = panel
        return panel


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


def find_contours(mask):
    """cv2.findContours as (contours, hierarchy) on OpenCV 3 and 4 alike."""
    found = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return found[-2], found[-1]


def panel_label(image, text, x, width):
    """A caption at the bottom left of the panel of ``width`` px starting at column ``x``."""
    scale = max(0.35, min(1.0, width / 1000.0))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    bottom = image.shape[0]
    cv2.rectangle(image, (x, bottom - th - base - 8), (x + tw + 8, bottom), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 4, bottom - base - 4), _FONT, scale, (255, 255, 255), 1,
                cv2.LINE_AA)


def draw_hud(image, text):
    """A line of text (e.g. FPS and latency) on a dark box at the top left, in place."""
    scale = max(0.35, min(1.0, image.shape[1] / 1000.0))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    cv2.rectangle(image, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
    cv2.putText(image, text, (4, th + 4), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image
