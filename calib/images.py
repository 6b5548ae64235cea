"""Calibration image sets: a seeded sample of N images from a folder, a glob, a video or the generator.

    images = CalibrationImages("data/cityscapes", count=500, seed=0)
    for frame in images:            # BGR uint8 frames, one at a time (memory bounded)
        ...
    images.info()                   # what was used, for the manifest

Sources:

* a folder (searched recursively). A Cityscapes root (it has ``leftImg8bit/``) is
  narrowed to ``leftImg8bit/train`` (or all of ``leftImg8bit`` when there is no train
  split), so label PNGs under ``gtFine/`` are never taken for images;
* a glob pattern (``'frames/*.jpg'``, ``'**'`` recursive);
* a video file (frames are sampled by index and read in one forward pass);
* ``synthetic`` (or ``synthetic:SEED``): scenes from export.scenes, for
  machines without any data (demo, benchmarks, tests).

Sampling is deterministic: the candidates are sorted, shuffled with ``random.Random(seed)``
and the first ``count`` readable ones are used (an unreadable file is replaced by the next
candidate). Files that are not images by their extension are skipped and counted, so are
image files that cannot be decoded. Fewer candidates than asked is a warning, not an error.
Every frame is read when it is needed and dropped after, whatever ``count`` is; the bytes
of the frames used go into ``source_sha256`` (a fingerprint of the calibration set).
"""
import glob
import hashlib
import os
import random
import sys

import cv2
import numpy as np

from runtime.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                    ".pbm", ".jp2")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                    ".flv", ".ts", ".h264", ".h265", ".mjpeg", ".mjpg")
DEFAULT_COUNT = 500
SYNTHETIC = "synthetic"
SYNTHETIC_SIZE = (256, 512)
_GLOB_CHARS = "*?["


def _warn(text):
    sys.stderr.write("warning: {}\n".format(text))
    sys.stderr.flush()


def is_image_name(path):
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def is_video_name(path):
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


class CalibrationImages(object):
    """A seeded, streamed sample of ``count`` BGR frames from ``source``.

    ``warn`` (default: a line on stderr) receives the warnings (fewer images than asked,
    skipped files). Iterating again gives the same frames in the same order.
    """

    def __init__(self, source, count=DEFAULT_COUNT, seed=0, warn=None, synthetic_size=None):
        if source is None or not str(source).strip():
            raise UserError("no calibration source: give --calib a folder, a glob or a video")
        try:
            count = int(count)
        except (TypeError, ValueError):
            raise UserError("--calib-count must be a whole number, got {!r}".format(count))
        if count < 1:
            raise UserError("--calib-count must be at least 1, got {}".format(count))
        self.source = str(source)
        self.count = count
        self.seed = int(seed)
        self._warn = warn or _warn
        self.synthetic_size = tuple(synthetic_size or SYNTHETIC_SIZE)
        self.skipped_non_image = 0   # files that are not images by their extension
        self.unreadable = 0          # image files (or video frames) that could not be decoded
        self.used = 0                # frames delivered by the last complete iteration
        self._sha = None
        self._warned = False
        self._scan()

    # -- discovery --------------------------------------------------------------------

    def _scan(self):
        source = self.source
        if source == SYNTHETIC or source.startswith(SYNTHETIC + ":"):
            self.kind = "synthetic"
            seed_text = source[len(SYNTHETIC) + 1:]
            try:
                self.synthetic_seed = int(seed_text) if seed_text else 1000 + self.seed
            except ValueError:
                raise UserError("malformed calibration source {!r}: use 'synthetic' or "
                                "'synthetic:SEED'".format(source))
            self.candidates = None
            self.available = self.count
            return
        if os.path.isdir(source):
            self.kind = "folder"
            self.root = self._image_root(source)
            files = self._walk(self.root)
        elif any(ch in source for ch in _GLOB_CHARS) and not os.path.exists(source):
            self.kind = "glob"
            self.root = None
            files = sorted(p for p in glob.glob(source, recursive=True) if os.path.isfile(p))
            if not files:
                raise UserError("calibration glob {!r} matches no files".format(source))
        elif os.path.isfile(source):
            if is_video_name(source) or not is_image_name(source):
                self.kind = "video"
                self._scan_video(source)
                return
            self.kind = "glob"  # a single image file
            self.root = None
            files = [source]
        else:
            raise UserError("calibration source not found: {}".format(source))
        images = [p for p in files if is_image_name(p)]
        self.skipped_non_image = len(files) - len(images)
        if not images:
            raise UserError("no images in {} ({} file(s), none with an image extension: {})"
                            .format(source, len(files), ", ".join(IMAGE_EXTENSIONS[:6]) + ", ..."))
        order = list(range(len(images)))
        random.Random(self.seed).shuffle(order)
        self.candidates = [images[i] for i in order]
        self.available = len(images)
        self._check_count()

    @staticmethod
    def _image_root(folder):
        """A Cityscapes root is narrowed to its images (train split when there is one)."""
        images = os.path.join(folder, "leftImg8bit")
        if os.path.isdir(images):
            train = os.path.join(images, "train")
            return train if os.path.isdir(train) else images
        return folder

    @staticmethod
    def _walk(folder):
        if not os.access(folder, os.R_OK | os.X_OK):
            raise UserError("cannot read calibration folder {} (permission denied)".format(folder))
        files = []
        for root, dirs, names in os.walk(folder, onerror=None):
            dirs.sort()
            for name in sorted(names):
                if not name.startswith("."):
                    files.append(os.path.join(root, name))
        if not files:
            raise UserError("calibration folder {} is empty".format(folder))
        return files

    def _scan_video(self, path):
        self.root = None
        capture = cv2.VideoCapture(path)
        try:
            if not capture.isOpened():
                raise UserError("cannot open calibration video {} (not a video OpenCV can "
                                "read?)".format(path))
            total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if total <= 0:  # some containers do not say: count by decoding
                total = 0
                while capture.grab():
                    total += 1
        finally:
            capture.release()
        if total <= 0:
            raise UserError("calibration video {} has no frames".format(path))
        self.frame_count = total
        self.available = total
        self.candidates = None
        self._check_count()

    def _check_count(self):
        if self.available < self.count:
            self._warn("calibration: {} asked for {} images but has only {}: using all of them"
                       .format(self.source, self.count, self.available))
            self._warned = True

    # -- iteration --------------------------------------------------------------------

    def __len__(self):
        """Frames the iteration will give (at most; unreadable files are replaced while any are left)."""
        return min(self.count, self.available)

    def __iter__(self):
        self._sha = hashlib.sha256()
        self.unreadable = 0
        self.used = 0
        if self.kind == "synthetic":
            frames = self._iter_synthetic()
        elif self.kind == "video":
            frames = self._iter_video()
        else:
            frames = self._iter_files()
        for frame in frames:
            self.used += 1
            yield frame
        if self.used == 0:
            raise UserError("none of the calibration images in {} could be read ({} unreadable)"
                            .format(self.source, self.unreadable))
        self._report()

    def _iter_files(self):
        for path in self.candidates:
            if self.used >= self.count:
                break
            frame, data = _read_image(path)
            if frame is None:
                self.unreadable += 1
                continue
            name = os.path.relpath(path, self.root) if self.root else os.path.basename(path)
            self._sha.update(name.replace(os.sep, "/").encode("utf-8") + b"\0")
            self._sha.update(data)
            yield frame

    def _iter_video(self):
        rng = random.Random(self.seed)
        wanted = sorted(rng.sample(range(self.frame_count), min(self.count, self.frame_count)))
        capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            raise UserError("cannot open calibration video {}".format(self.source))
        try:
            position = 0
            for index in wanted:
                while position < index:
                    if not capture.grab():
                        return
                    position += 1
                ok, frame = capture.read()
                position += 1
                if not ok or frame is None:
                    self.unreadable += 1
                    return  # the container promised more frames than it has
                self._sha.update(str(index).encode("ascii") + b"\0")
                self._sha.update(np.ascontiguousarray(frame).tobytes())
                yield frame
        finally:
            capture.release()

    def _iter_synthetic(self):
        from export.scenes import render_scene
        for index in range(self.count):
            frame = render_scene(self.synthetic_seed, index, size=self.synthetic_size)[0]
            self._sha.update(np.ascontiguousarray(frame).tobytes())
            yield frame

    def _report(self):
        notes = []
        if self.skipped_non_image:
            notes.append("{} non-image file(s) skipped".format(self.skipped_non_image))
        if self.unreadable:
            notes.append("{} unreadable image(s) skipped".format(self.unreadable))
        if self.used < self.count and not self._warned:
            notes.append("only {} of the {} images asked for were usable".format(
                self.used, self.count))
        if notes:
            self._warn("calibration {}: {}".format(self.source, "; ".join(notes)))

    @property
    def source_sha256(self):
        """sha256 of the frames used (names and bytes, in order); after an iteration."""
        return self._sha.hexdigest() if self._sha is not None else None

    def info(self):
        """A JSON-ready description for the manifest (after an iteration)."""
        if self.kind == "synthetic":
            source = "synthetic:{}".format(self.synthetic_seed)
        else:
            source = os.path.abspath(self.source) if self.kind != "glob" else self.source
        return {"source": source, "kind": self.kind, "images": self.used,
                "requested": self.count, "available": self.available, "seed": self.seed,
                "skipped_non_image": self.skipped_non_image, "unreadable": self.unreadable,
                "source_sha256": self.source_sha256}

    # -- tensors ------------------------------------------------------------------------

    def tensors(self, preprocessor):
        """Input tensors made by ``preprocessor`` (runtime.core_preprocess.Preprocessor), one at a time.

        Frames of any size are fitted to the network input the way the manifest says
        (``input.resize``), exactly as the streaming runtime does.
        """
        for frame in self:
            yield preprocessor(frame)[0]


def _read_image(path):
    """(BGR frame, file bytes), or (None, None) when the file cannot be read or decoded."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (IOError, OSError):
        return None, None
    if not data:
        return None, None
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None or frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
        return None, None
    return frame, data

