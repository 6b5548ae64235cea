"""Where results go: an annotated video, saved frames, a window.

An output receives each finished result and, when it says it needs one
(``needs_visual``), the rendered picture. ``close()`` must run on every exit path:
that is what makes an .mp4 playable (the pipeline guarantees it).

Files are written beside their target and renamed into place (runtime.jsonfile): the
video when it is closed and read back complete, each saved frame when it is encoded.
An output that could not be written completely says so in ``error`` (and
``describe()["complete"]``) instead of leaving a truncated file behind.
"""
import logging
import os
import re
import sys

import cv2

from runtime import tasks
from runtime.errors import UserError
from runtime.jsonfile import (OutputError, check_output_folder, remove_quietly, replace_file,
                              temp_path, write_bytes_atomic)

log = logging.getLogger(__name__)

_FOURCC_BY_EXT = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}
MIN_FREE_BYTES = 16 << 20  # a video output stops (playable, reported) below this much free space
_SPACE_CHECK_EVERY = 30    # frames


class Output(object):
    """Base class. ``stop_requested`` lets an output end the run (e.g. 'q' in a window)."""

    kind = "output"
    needs_visual = True
    stop_requested = False
    error = None  # why the output is incomplete (set by write/close), else None

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


def free_bytes(folder):
    """Bytes available to us in ``folder``'s file system (None where statvfs is missing)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def _mp4_complete(path):
    """Whether an .mp4/.mov has its index ('moov' box), which a writer cut short never wrote.

    Checked before FFmpeg opens the file, so that a truncated file is not an FFmpeg log line.
    """
    try:
        with open(path, "rb") as handle:
            while True:
                head = handle.read(8)
                if len(head) < 8:
                    return False
                size = int.from_bytes(head[:4], "big")
                if head[4:8] == b"moov":
                    return True
                if size == 1:
                    size = int.from_bytes(handle.read(8), "big") - 8
                if size < 8:
                    return False
                handle.seek(size - 8, 1)
    except OSError:
        return False


def frames_in_video(path):
    """Frames a video file announces when read back (None: it does not open, e.g. truncated)."""
    if os.path.splitext(path)[1].lower() in (".mp4", ".m4v", ".mov") and not _mp4_complete(path):
        return None
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return None
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return int(count) if count and count > 0 else None
    finally:
        cap.release()


class VideoOutput(Output):
    """An annotated video (.mp4 by default with the mp4v codec, .avi with MJPG).

    Opened at the first frame, when the picture size is known; ``fps`` defaults to
    the source's rate (30 when unknown). Frames must all have the same size. Written to a
    temporary file beside ``path``; ``close()`` releases it, reads it back and renames it
    into place only when it holds every frame (a full disk leaves the old file alone and
    sets ``error``). The free space is checked every 30 frames: below MIN_FREE_BYTES the
    run stops with the frames so far (a playable video) and an OutputError.
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
        self.folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(self.folder):
            check_output_folder(self.folder, "--output")
        self.fps = float(fps) if fps else None
        self.size = None
        self.frames = 0
        self.complete = None
        self._writer = None
        self._tmp = None

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
        if self.frames % _SPACE_CHECK_EVERY == 0:
            free = free_bytes(self.folder)
            if free is not None and free < MIN_FREE_BYTES:
                self.error = "the disk is almost full ({:.1f} MB left)".format(free / 1e6)
                raise OutputError("{} while writing video {}: stopped after {} frames (the video "
                                  "holds them)".format(self.error, self.path, self.frames))

    def _open(self, height, width):
        self.start()
        self._tmp = temp_path(self.path, suffix=os.path.splitext(self.path)[1])
        writer = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*self.fourcc), self.fps,
                                 (int(width), int(height)))
        if not writer.isOpened():
            remove_quietly(self._tmp)
            self._tmp = None
            raise UserError("cannot write video {} with codec {} (this OpenCV has no encoder "
                            "for it: try .avi)".format(self.path, self.fourcc))
        self._writer = writer
        self.size = (int(height), int(width))

    def close(self):
        """Release the writer, check the file holds every frame, rename it into place."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
        tmp, self._tmp = self._tmp, None
        if tmp is None:
            return
        found = frames_in_video(tmp)
        if found is None or found < self.frames:
            remove_quietly(tmp)
            self.complete = False
            self.error = ("video {} could not be written completely ({} of {} frames readable; "
                          "disk full or I/O error?): not written".format(
                              self.path, found or 0, self.frames))
            return
        try:
            replace_file(tmp, self.path)
        except (OSError, OutputError) as exc:
            remove_quietly(tmp)
            self.complete = False
            self.error = "video {} not written: {}".format(self.path, getattr(exc, "strerror", None) or exc)
            return
        self.complete = self.error is None

    def describe(self):
        return {"kind": self.kind, "path": self.path, "frames": self.frames, "fps": self.fps,
                "size": list(self.size) if self.size else None, "fourcc": self.fourcc,
                "complete": self.complete, "error": self.error}


class FrameSaver(Output):
    """Each frame's picture as ``NNNNNN.<ext>`` and its class map as ``NNNNNN_labels.png``.

    The label PNG holds the raw class ids (what an evaluation needs); the picture is
    what a person looks at. NNNNNN is the frame's index in the source. A model family may
    add images beside the labels (runtime.tasks.Task.saved_images: an outlier engine's
    ``NNNNNN_outlier.png``, its score scaled to 0..255). Frames without a class map (a
    forecaster's warm-up) have no label PNG.
    """

    kind = "frames"

    def __init__(self, directory, ext="jpg", labels=True):
        self.directory = str(directory)
        self.ext = ext.lstrip(".")
        self.labels = labels
        check_output_folder(self.directory, "--save-frames")
        self.frames = 0

    def write(self, result, visual):
        stem = os.path.join(self.directory, "{:06d}".format(result.index))
        self._save("{}.{}".format(stem, self.ext), visual)
        if self.labels and result.class_map is not None:  # None: no result yet (warm-up)
            self._save(stem + "_labels.png", result.class_map)
            for task in tasks.ALL:
                for suffix, image in task.saved_images(result):
                    self._save(stem + suffix, image)
        self.frames += 1

    def _save(self, path, image):
        """Encode, then write atomically: a full disk is an OutputError, never half a picture."""
        ok, data = cv2.imencode(os.path.splitext(path)[1], image)
        if not ok:
            raise UserError("cannot encode {} (unknown image type?)".format(path))
        try:
            write_bytes_atomic(path, data.tobytes(), sync=False)
        except OutputError as exc:
            self.error = str(exc)
            raise

    def describe(self):
        return {"kind": self.kind, "path": self.directory, "frames": self.frames,
                "complete": self.error is None, "error": self.error}


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
