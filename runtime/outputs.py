"""Where results go: an annotated video, saved frames, a window.

An output receives each finished result and, when it says it needs one
(``needs_visual``), the rendered picture. ``close()`` must run on every exit path:
that is what makes an .mp4 playable (the pipeline guarantees it).
"""
import logging
import os
import re
import sys

import cv2

from runtime.errors import UserError

log = logging.getLogger(__name__)

_FOURCC_BY_EXT = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class Output(object):
    """Base class. ``stop_requested`` lets an output end the run (e.g. 'q' in a window)."""

    kind = "output"
    needs_visual = True
    stop_requested = False

    def start(self, fps=None):
        """Called once before the first frame with the source's frame rate (if known)."""

    def write(self, result, visual):
        raise NotImplementedError

    def close(self):
        """Flush and release; safe to call more than once."""

    def describe(self):
        return {"kind": self.kind}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_dir(path, what):
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory)
    except OSError as exc:
        raise UserError("cannot create the folder of {} {}: {}".format(what, path, exc.strerror))
    if not os.access(directory, os.W_OK):
        raise UserError("cannot write {} {}: folder not writable".format(what, path))


class VideoOutput(Output):
    """An annotated video (.mp4 by default with the mp4v codec, .avi with MJPG).

    Opened at the first frame, when the picture size is known; ``fps`` defaults to
    the source's rate (30 when unknown). Frames must all have the same size.
    """

    kind = "video"

    def __init__(self, path, fps=None, fourcc=None):
        self.path = str(path)
        ext = os.path.splitext(self.path)[1].lower()
        self.fourcc = fourcc or _FOURCC_BY_EXT.get(ext)
        if self.fourcc is None:
            raise UserError("--output {}: use .mp4, .avi, .mov or .mkv".format(self.path))
        if len(self.fourcc) != 4:
            raise UserError("a fourcc has four characters, got {!r}".format(self.fourcc))
        _check_dir(self.path, "video")
        self.fps = float(fps) if fps else None
        self.size = None
        self.frames = 0
        self._writer = None

    def start(self, fps=None):
        if self.fps is None:
            self.fps = float(fps) if fps else 30.0

    def write(self, result, visual):
        if self._writer is None:
            self._open(visual.shape[0], visual.shape[1])
        elif visual.shape[:2] != self.size:
            raise UserError("frame size changed from {} to {} while writing {}".format(
                self.size, visual.shape[:2], self.path))
        self._writer.write(visual)
        self.frames += 1

    def _open(self, height, width):
        self.start()
        writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*self.fourcc), self.fps,
                                 (int(width), int(height)))
        if not writer.isOpened():
            raise UserError("cannot write video {} with codec {} (this OpenCV has no encoder "
                            "for it: try .avi)".format(self.path, self.fourcc))
        self._writer = writer
        self.size = (int(height), int(width))

    def close(self):
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()

    def describe(self):
        return {"kind": self.kind, "path": self.path, "frames": self.frames, "fps": self.fps,
                "size": list(self.size) if self.size else None, "fourcc": self.fourcc}


class FrameSaver(Output):
    """Each frame's picture as ``NNNNNN.<ext>`` and its class map as ``NNNNNN_labels.png``.

    The label PNG holds the raw class ids (what an evaluation needs); the picture is
    what a person looks at. NNNNNN is the frame's index in the source. Outlier engines
    also get ``NNNNNN_outlier.png``: the score (1 - P(inlier)) scaled to 0..255. For a
    forecast bundle the labels are the forecast; warm-up frames have no label PNG.
    """

    kind = "frames"

    def __init__(self, directory, ext="jpg", labels=True):
        self.directory = str(directory)
        self.ext = ext.lstrip(".")
        self.labels = labels
        _check_dir(os.path.join(self.directory, "x"), "frames to")
        self.frames = 0

    def write(self, result, visual):
        stem = os.path.join(self.directory, "{:06d}".format(result.index))
        if not cv2.imwrite("{}.{}".format(stem, self.ext), visual):
            raise UserError("cannot write {}.{}".format(stem, self.ext))
        if self.labels and result.class_map is not None:  # None: no result yet (forecast warm-up)
            cv2.imwrite(stem + "_labels.png", result.class_map)
            score = getattr(result, "outlier_score", None)
            if score is not None:
                cv2.imwrite(stem + "_outlier.png",
                            (score.clip(0.0, 1.0) * 255.0 + 0.5).astype("uint8"))
        self.frames += 1

    def describe(self):
        return {"kind": self.kind, "path": self.directory, "frames": self.frames}


def display_status():
    """(available, reason): whether a window can be shown here, and why not."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display ($DISPLAY is not set)"
    match = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    if match and match.group(1).upper() == "NONE":
        return False, "this OpenCV has no GUI support (e.g. opencv-python-headless)"
    return True, ""


class DisplayOutput(Output):
    """A window (cv2.imshow). Never required: without a display it says so once and does nothing.

    'q' or Esc in the window ends the run.
    """

    kind = "display"

    def __init__(self, title="rt-segment"):
        self.title = title
        self.available, reason = display_status()
        if not self.available:
            log.warning("--display: %s; going on without a window", reason)
        self.needs_visual = self.available
        self.frames = 0

    def write(self, result, visual):
        if not self.available:
            return
        try:
            cv2.imshow(self.title, visual)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as exc:
            log.warning("--display: cannot show a window (%s); going on without it",
                        str(exc).strip().splitlines()[-1])
            self.available = self.needs_visual = False
            return
        self.frames += 1
        if key in (27, ord("q")):
            self.stop_requested = True

    def close(self):
        if self.available and self.frames:
            try:
                cv2.destroyWindow(self.title)
            except cv2.error:
                pass

    def describe(self):
        return {"kind": self.kind, "available": self.available, "frames": self.frames}
