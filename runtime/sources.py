"""Frame sources: USB cameras (V4L2), Jetson CSI cameras, GStreamer, RTSP, video files, images.

One small interface, so that the pipeline does not care where frames come from:
``open()``; ``read()`` returns a BGR frame, or None for a frame that could not be
read or decoded (the pipeline skips and counts it), and raises EndOfStream at the
end; ``close()``. ``live`` sources (cameras, RTSP, GStreamer) produce frames at
their own pace whether or not we keep up, so the pipeline keeps only the newest.

Live sources that fail to open or vanish mid-stream reconnect with exponential
backoff (``reconnect`` attempts) and then fail with one clear SourceError.

    source = open_source("video.mp4")      # or 0, "/dev/video0", "csi://0", "rtsp://...", "frames/*.png"
"""
import glob
import logging
import os
import re
import threading

import cv2

from runtime.errors import UserError

log = logging.getLogger(__name__)

KINDS = ("camera", "csi", "gst", "video", "images", "rtsp")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# A live capture that fails this many reads in a row is considered gone (then: reconnect).
MAX_CONSECUTIVE_FAILURES = 10
DEFAULT_BACKOFF = (0.5, 2.0, 8.0)  # first delay (s), factor, longest delay


class EndOfStream(Exception):
    """The source has no more frames (end of file, or the pipeline is stopping)."""


class SourceError(UserError):
    """A source that cannot be opened or was lost for good (one line for the user)."""


def backoff_delays(attempts, initial=0.5, factor=2.0, maximum=8.0):
    """Delays (s) before each of ``attempts`` retries: initial, initial*factor, ... capped."""
    delays, delay = [], float(initial)
    for _ in range(int(attempts)):
        delays.append(min(delay, float(maximum)))
        delay *= float(factor)
    return delays


def gstreamer_available():
    """Whether this OpenCV was built with GStreamer (pip's opencv-python is not; JetPack's is)."""
    match = re.search(r"GStreamer:\s*(\S+)", cv2.getBuildInformation())
    return bool(match) and match.group(1).upper().startswith("YES")


def _require_gstreamer(what):
    if not gstreamer_available():
        raise SourceError(
            "{} needs OpenCV with GStreamer, and this OpenCV ({}) was built without it "
            "(pip's opencv-python never has it): on a Jetson use JetPack's OpenCV "
            "(apt, or the Dockerfile.jetson image) and no pip opencv-python".format(what, cv2.__version__))


def csi_pipeline(sensor_id=0, capture_size=(1080, 1920), fps=30, output_size=None, flip=0):
    """The nvarguscamerasrc GStreamer pipeline for a Jetson CSI camera (sizes are (h, w)).

    The ISP scales to ``output_size`` (default: half the capture size) in NVMM memory;
    ``appsink drop=true max-buffers=1 sync=false`` keeps GStreamer from queueing stale
    frames (the classic source of camera lag).
    """
    cap_h, cap_w = capture_size
    out_h, out_w = output_size or (cap_h // 2, cap_w // 2)
    return ("nvarguscamerasrc sensor-id={sid} ! "
            "video/x-raw(memory:NVMM),width={cw},height={ch},framerate={fps}/1 ! "
            "nvvidconv flip-method={flip} ! video/x-raw,width={ow},height={oh},format=BGRx ! "
            "videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"
            .format(sid=int(sensor_id), cw=int(cap_w), ch=int(cap_h), fps=int(round(fps or 30)),
                    flip=int(flip), ow=int(out_w), oh=int(out_h)))


class Source(object):
    """Base class: ``open``, ``read`` (frame, None for a bad frame, EndOfStream at the end), ``close``."""

    kind = "source"
    live = False

    def __init__(self, uri):
        self.uri = str(uri)
        self.fps = None          # frames per second if known (files: their own rate)
        self.frame_count = None  # files: frames announced by the container, if known
        self.reconnects = 0
        self._stop = threading.Event()

    def open(self):
        """Acquire the device or file (may block while reconnecting)."""

    def read(self):
        raise NotImplementedError

    def stop(self):
        """Ask a blocking open/reconnect to give up (thread-safe; then EndOfStream)."""
        self._stop.set()

    def close(self):
        """Release the device or file."""

    def describe(self):
        return {"kind": self.kind, "uri": self.uri, "live": self.live, "fps": self.fps,
                "frame_count": self.frame_count, "reconnects": self.reconnects}

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        """Frames until the end (bad frames included as None)."""
        self.open()
        while True:
            try:
                yield self.read()
            except EndOfStream:
                return


class CaptureSource(Source):
    """A source read through a cv2.VideoCapture-like object made by ``factory()``.

    Files: a failed read is the end of the stream. Live sources: a failed read is a
    lost frame (None); MAX_CONSECUTIVE_FAILURES in a row, or a capture that will not
    open, trigger reconnection: ``reconnect`` attempts with exponential backoff, then
    SourceError. ``sleep`` is injectable for tests (default: a wait that ``stop``
    interrupts).
    """

    def __init__(self, factory, uri, kind="video", live=False, reconnect=0,
                 backoff=DEFAULT_BACKOFF, sleep=None, hint="", fps=None,
                 max_failures=MAX_CONSECUTIVE_FAILURES):
        Source.__init__(self, uri)
        self.kind = kind
        self.live = bool(live)
        self.reconnect = max(0, int(reconnect))
        self.backoff = tuple(backoff)
        self.hint = hint
        self.fps = fps
        self.max_failures = int(max_failures)
        self._factory = factory
        self._sleep = sleep or self._stop.wait
        self._cap = None
        self._failures = 0

    def open(self):
        if self._cap is None:
            self._cap = self._connect()
            if self.fps is None:
                self.fps = _prop(self._cap, cv2.CAP_PROP_FPS)
            if not self.live:
                count = _prop(self._cap, cv2.CAP_PROP_FRAME_COUNT)
                self.frame_count = int(count) if count else None

    def _connect(self):
        """Open the capture, retrying live sources with backoff; SourceError when it will not."""
        retries = self.reconnect if self.live else 0
        delays = [0.0] + backoff_delays(retries, *self.backoff)
        detail = ""
        for attempt, delay in enumerate(delays):
            if delay:
                log.warning("%s %s: retrying in %.1f s (attempt %d of %d)",
                            self.kind, self.uri, delay, attempt, retries)
                self._sleep(delay)
            if self._stop.is_set():
                raise EndOfStream()
            cap = None
            try:
                cap = self._factory()
            except Exception as exc:  # cv2.error, OSError: report it, then retry
                detail = ": {}".format(str(exc).strip().splitlines()[-1] if str(exc).strip() else exc)
            if cap is not None and cap.isOpened():
                if attempt:
                    log.warning("%s %s: connected", self.kind, self.uri)
                return cap
            _release(cap)
        tries = " after {} attempts".format(len(delays)) if len(delays) > 1 else ""
        raise SourceError("cannot open {} {}{}{}{}".format(
            self.kind, self.uri, tries, detail, "; " + self.hint if self.hint else ""))

    def read(self):
        if self._cap is None:
            self.open()
        ok, frame = self._cap.read()
        if ok and frame is not None:
            self._failures = 0
            return frame
        if not self.live:
            if ok:  # the container said there was a frame, but it did not decode
                return None
            raise EndOfStream()
        if self._stop.is_set():
            raise EndOfStream()
        self._failures += 1
        if self._failures >= self.max_failures or not self._cap.isOpened():
            log.warning("%s %s: lost (%d failed reads); reconnecting",
                        self.kind, self.uri, self._failures)
            _release(self._cap)
            self._cap = None
            self.reconnects += 1
            self._cap = self._connect()
            self._failures = 0
        return None

    def close(self):
        _release(self._cap)
        self._cap = None


def _prop(cap, prop):
    try:
        value = float(cap.get(prop))
    except Exception:
        return None
    return value if value > 0 and value == value and value < 1e6 else None


def _release(cap):
    if cap is not None:
        try:
            cap.release()
        except Exception:
            pass


class ImageSource(Source):
    """Images from a directory or a glob pattern, in sorted order; unreadable files are None."""

    kind = "images"

    def __init__(self, pattern, fps=None):
        Source.__init__(self, pattern)
        if os.path.isdir(pattern):
            paths = [os.path.join(pattern, name) for name in os.listdir(pattern)]
        else:
            paths = glob.glob(pattern)
        self.paths = sorted(p for p in paths
                            if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS))
        if not self.paths:
            raise SourceError("no images in {} (looked for {})".format(
                pattern, " ".join(IMAGE_EXTENSIONS)))
        self.fps = fps
        self.frame_count = len(self.paths)
        self._next = 0

    def read(self):
        if self._next >= len(self.paths) or self._stop.is_set():
            raise EndOfStream()
        path = self.paths[self._next]
        self._next += 1
        return cv2.imread(path, cv2.IMREAD_COLOR)  # None when it does not decode


def camera(index, size=None, fps=None, reconnect=5, backoff=DEFAULT_BACKOFF, sleep=None):
    """A USB/V4L2 camera (/dev/videoN). ``size`` = (h, w) asks the driver for a mode."""
    index = int(index)
    device = "/dev/video{}".format(index)

    def factory():
        cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer stale frames in the driver's queue
            if size:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[0])
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[1])
            if fps:
                cap.set(cv2.CAP_PROP_FPS, fps)
        return cap

    hint = "is it connected and free?"
    if not os.path.exists(device):
        hint = "{} does not exist (in Docker: --device {})".format(device, device)
    return CaptureSource(factory, device, kind="camera", live=True, reconnect=reconnect,
                         backoff=backoff, sleep=sleep, hint=hint)


def gstreamer(pipeline, kind="gst", reconnect=5, backoff=DEFAULT_BACKOFF, sleep=None, hint=""):
    """Any GStreamer pipeline ending in ``appsink`` (BGR), e.g. a hardware decoder."""
    _require_gstreamer("--{}".format(kind))
    if "appsink" not in pipeline:
        raise SourceError("the GStreamer pipeline must end in appsink (e.g. '... ! videoconvert ! "
                          "video/x-raw,format=BGR ! appsink drop=true max-buffers=1')")
    return CaptureSource(lambda: cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER), pipeline,
                         kind=kind, live=True, reconnect=reconnect, backoff=backoff,
                         sleep=sleep, hint=hint)


def csi(sensor_id=0, size=None, fps=None, reconnect=5, backoff=DEFAULT_BACKOFF, sleep=None):
    """A Jetson CSI camera through nvarguscamerasrc (needs JetPack's OpenCV with GStreamer)."""
    pipeline = csi_pipeline(sensor_id, capture_size=size or (1080, 1920), fps=fps or 30)
    source = gstreamer(pipeline, kind="csi", reconnect=reconnect, backoff=backoff, sleep=sleep,
                       hint="is nvargus-daemon running? (in Docker: -v /tmp/argus_socket:/tmp/argus_socket "
                            "--runtime nvidia)")
    source.uri = "csi://{}".format(int(sensor_id))
    source.pipeline = pipeline
    source.fps = float(fps or 30)
    return source


def rtsp(url, reconnect=5, backoff=DEFAULT_BACKOFF, sleep=None):
    """A network stream (RTSP/HTTP) through OpenCV's FFmpeg backend."""
    return CaptureSource(lambda: cv2.VideoCapture(url, cv2.CAP_FFMPEG), url, kind="rtsp", live=True,
                         reconnect=reconnect, backoff=backoff, sleep=sleep,
                         hint="check the URL, the network and the credentials")


def video(path):
    """A video file, read frame by frame (``--realtime`` in the pipeline plays it at its rate)."""
    path = str(path)
    if not os.path.isfile(path):
        raise SourceError("video not found: {}".format(path))
    return CaptureSource(lambda: cv2.VideoCapture(path), path, kind="video", live=False,
                         hint="not a video OpenCV can decode")


def open_source(spec, kind=None, reconnect=5, size=None, fps=None, backoff=DEFAULT_BACKOFF,
                sleep=None):
    """A Source from a CLI-style spec; ``kind`` (one of KINDS) forces the interpretation.

    Without ``kind``: an int or "/dev/videoN" is a camera, "csi://N" a CSI camera,
    "rtsp://..." (or http[s]://) a network stream, a spec containing " ! " a GStreamer
    pipeline, a directory or a glob an image sequence, anything else a video file.
    """
    if kind is not None and kind not in KINDS:
        raise UserError("unknown source kind {!r}; use one of {}".format(kind, ", ".join(KINDS)))
    text = str(spec)
    if kind is None:
        kind = _guess_kind(spec, text)
    live = dict(reconnect=reconnect, backoff=backoff, sleep=sleep)
    if kind == "camera":
        match = re.match(r"^(?:/dev/video)?(\d+)$", text.strip())
        if not match:
            raise SourceError("camera must be an index or /dev/videoN, got {!r}".format(text))
        return camera(int(match.group(1)), size=size, fps=fps, **live)
    if kind == "csi":
        match = re.match(r"^(?:csi://)?(\d+)$", text.strip())
        if not match:
            raise SourceError("CSI camera must be a sensor id (0, 1, ...), got {!r}".format(text))
        return csi(int(match.group(1)), size=size, fps=fps, **live)
    if kind == "gst":
        return gstreamer(text[len("gst:"):] if text.startswith("gst:") else text, **live)
    if kind == "rtsp":
        return rtsp(text, **live)
    if kind == "images":
        return ImageSource(text, fps=fps)
    return video(text)


def _guess_kind(spec, text):
    if isinstance(spec, int) or re.match(r"^(\d+|/dev/video\d+)$", text):
        return "camera"
    if text.startswith("csi://"):
        return "csi"
    if re.match(r"^(rtsp|rtsps|rtmp|http|https)://", text):
        return "rtsp"
    if text.startswith("gst:") or " ! " in text:
        return "gst"
    if os.path.isdir(text) or any(c in text for c in "*?["):
        return "images"
    return "video"
