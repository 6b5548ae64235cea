"""Frame sources: USB cameras (V4L2), Jetson CSI cameras, GStreamer, RTSP, video files, images.

One small interface, so that the pipeline does not care where frames come from:
``open()``; ``read()`` returns a BGR frame, or None for a frame that could not be
read or decoded (the pipeline skips and counts it), and raises EndOfStream at the
end; ``close()``. ``live`` sources (cameras, RTSP, GStreamer) produce frames at
their own pace whether or not we keep up, so the pipeline keeps only the newest.

Live sources that fail to open or vanish mid-stream reconnect with exponential
backoff (``reconnect`` attempts) and then fail with one clear SourceError.

Nothing a live source does can block the run: its capture is opened and read in a
helper thread, so a stream that stalls (no frame for ``stall_timeout`` s) counts as lost
and reconnects, a server that accepts and never answers gives up after
``open_timeout`` s, and ``stop()`` (Ctrl-C, --duration) is obeyed within 0.1 s. On
OpenCV >= 4.5.2 FFmpeg streams also get CAP_PROP_OPEN/READ_TIMEOUT_MSEC. A file that
fails to decode mid-way is skipped ahead (the lost frames are read as None, i.e.
counted as corrupt); if it cannot go on, ``ended_early`` says so next to the frame
count the container announced.

    source = open_source("video.mp4")      # or 0, "/dev/video0", "csi://0", "rtsp://...", "frames/*.png"
"""
import collections
import glob
import logging
import os
import re
import stat
import threading
import time

# OpenCV's FFmpeg backend opens one stream at a time under a process-wide lock: a camera
# reconnecting to a silent server (up to its open timeout) would hold up every other camera's
# (re)connection. FFmpeg >= 4 opens streams in parallel safely, and OpenCV >= 4.9 drops its lock
# when told so (read at the first open; an older OpenCV, e.g. JetPack's 4.x, keeps the lock).
os.environ.setdefault("OPENCV_FFMPEG_IS_THREAD_SAFE", "1")

import cv2  # noqa: E402

from runtime.errors import UserError

log = logging.getLogger(__name__)

KINDS = ("camera", "csi", "gst", "video", "images", "rtsp")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# A live capture that fails this many reads in a row is considered gone (then: reconnect).
MAX_CONSECUTIVE_FAILURES = 10
DEFAULT_BACKOFF = (0.5, 2.0, 8.0)  # first delay (s), factor, longest delay
STALL_TIMEOUT = 5.0   # s without a frame from a live source: it is lost (then: reconnect)
OPEN_TIMEOUT = 10.0   # s for a live source to open before the attempt counts as failed
_POLL = 0.1           # s: how often a wait looks at the stop flag
MAX_SECONDS = 366 * 24 * 3600  # longest duration or timeout: more overflows timers (TIMEOUT_MAX)
_SKIP_STEPS = (1, 2, 4, 8, 16, 32, 64)  # frames jumped over a part of a file that does not decode
_clock = time.monotonic


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


_helpers = set()  # helper threads that may still be inside OpenCV (see finish_helpers)
_helpers_lock = threading.Lock()


def _start_helper(target, name):
    def run():
        try:
            target()
        finally:
            with _helpers_lock:
                _helpers.discard(thread)
    thread = threading.Thread(target=run, name=name)
    thread.daemon = True
    with _helpers_lock:
        _helpers.add(thread)
    thread.start()
    return thread


def finish_helpers(timeout):
    """Wait up to ``timeout`` s for helper threads still in an OpenCV open or read.

    True when none is left. A process must not exit while one is inside OpenCV's C++
    (static destructors then abort it: "terminate called without an active exception");
    a CLI that gets False leaves with os._exit after flushing.
    """
    deadline = _clock() + float(timeout)
    while True:
        with _helpers_lock:
            alive = [t for t in _helpers if t.is_alive()]
        if not alive:
            return True
        left = deadline - _clock()
        if left <= 0:
            return False
        alive[0].join(min(left, _POLL))


def call_with_timeout(fn, timeout, stop):
    """``fn()`` in a helper thread: (value, None), or (None, "timeout"/"stopped") if it did not
    return in ``timeout`` s or ``stop`` (an Event) was set; exceptions are raised here.

    A capture that returns after we gave up is released by the helper thread.
    """
    box = {}
    done = threading.Event()

    def target():
        try:
            box["value"] = fn()
        except Exception as exc:  # cv2.error, OSError: the caller reports it
            box["error"] = exc
        done.set()
        if box.get("abandoned"):
            _release(box.get("value"))

    _start_helper(target, "rt-source-open")
    deadline = _clock() + float(timeout)
    while not done.wait(_POLL):
        if stop.is_set() or _clock() >= deadline:
            box["abandoned"] = True
            if done.is_set():
                _release(box.get("value"))
            return None, "stopped" if stop.is_set() else "timeout"
    if "error" in box:
        raise box["error"]
    return box.get("value"), None


class _Reader(object):
    """The blocking ``cap.read()`` of a live capture, in its own thread, one read per request.

    ``read`` waits at most ``timeout`` s (None: stalled or stopping); a stuck read is then
    abandoned with its capture, which the thread releases once the read returns.
    """

    def __init__(self, cap):
        self.cap = cap
        self._want = threading.Event()
        self._done = threading.Event()
        self._result = None
        self._abandoned = False
        self._thread = _start_helper(self._run, "rt-source-read")

    def _run(self):
        while True:
            self._want.wait()
            self._want.clear()
            if self._abandoned:
                break
            try:
                result = self.cap.read()
            except Exception:  # a backend that throws on a lost device: a failed read
                result = (False, None)
            self._result = result
            self._done.set()
            if self._abandoned:
                break
        _release(self.cap)

    def read(self, timeout, stop):
        self._done.clear()
        self._want.set()
        deadline = _clock() + float(timeout)
        while not self._done.wait(_POLL):
            if stop.is_set() or _clock() >= deadline:
                return None
        return self._result

    def abandon(self, wait=0.1):
        """Stop reading; the capture is released by the thread (at once if it is idle)."""
        self._abandoned = True
        self._want.set()
        self._thread.join(wait)


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

    def frame_time(self):
        """The time (s) of the frame ``read`` returned last, where the source knows it better
        than the reader's clock (a ROS image's header stamp); None: the pipeline uses the
        capture time (live sources) or index / fps (files). Called from the reading thread."""
        return None

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

    Files: a failed read before the announced frame count is a decode failure: the
    source seeks ahead over the bad part (the frames lost are None) or, when it cannot,
    ends with ``ended_early`` set; otherwise a failed read is the end. Live sources
    (opened and read in helper threads, see the module doc): a failed read is a lost
    frame (None); MAX_CONSECUTIVE_FAILURES in a row, no frame for ``stall_timeout`` s, or
    a capture that will not open (within ``open_timeout`` s), trigger reconnection:
    ``reconnect`` attempts with exponential backoff, then SourceError. ``sleep`` is
    injectable for tests (default: a wait that ``stop`` interrupts).
    """

    def __init__(self, factory, uri, kind="video", live=False, reconnect=0,
                 backoff=DEFAULT_BACKOFF, sleep=None, hint="", fps=None,
                 max_failures=MAX_CONSECUTIVE_FAILURES, stall_timeout=STALL_TIMEOUT,
                 open_timeout=OPEN_TIMEOUT):
        Source.__init__(self, uri)
        self.kind = kind
        self.live = bool(live)
        self.reconnect = max(0, int(reconnect))
        self.backoff = tuple(backoff)
        self.hint = hint
        self.fps = fps
        self.max_failures = int(max_failures)
        self.stall_timeout = float(stall_timeout)
        self.open_timeout = float(open_timeout)
        self.stalls = 0            # live: times no frame came for stall_timeout s
        self.decode_errors = 0     # files: failed reads before the announced end
        self.frames_skipped = 0    # files: frames jumped over after a decode failure
        self.ended_early = None    # files: True when the file ended before its frame count
        self._factory = factory
        self._sleep = sleep or self._stop.wait
        self._cap = None
        self._reader = None
        self._failures = 0
        self._waiting_since = _clock()
        self._position = 0         # files: frames consumed (read, undecodable or skipped)
        self._queued = collections.deque()

    def open(self):
        if self._cap is None:
            self._set_capture(self._connect())
            if self.fps is None:
                self.fps = _prop(self._cap, cv2.CAP_PROP_FPS)
            if not self.live:
                count = _prop(self._cap, cv2.CAP_PROP_FRAME_COUNT)
                self.frame_count = int(count) if count else None

    def _set_capture(self, cap):
        self._cap = cap
        self._reader = _Reader(cap) if self.live else None

    def _drop_capture(self):
        reader, cap = self._reader, self._cap
        self._reader = self._cap = None
        if reader is not None:
            reader.abandon()  # releases the capture (now, or when a stuck read returns)
        else:
            _release(cap)

    def _make(self):
        """One attempt to open: live captures in a helper thread, so nothing blocks a stop."""
        if not self.live:
            return self._factory()
        cap, why = call_with_timeout(self._factory, self.open_timeout, self._stop)
        if why == "stopped":
            raise EndOfStream()
        if why == "timeout":
            raise SourceError("no answer within {:g} s".format(self.open_timeout))
        return cap

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
                cap = self._make()
            except EndOfStream:
                raise
            except Exception as exc:  # cv2.error, OSError, a timeout: report it, then retry
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
        if self._queued:
            return self._queued.popleft()
        if self._cap is None:
            self.open()
        if not self.live:
            return self._read_file()
        if self._failures == 0:      # the silence is measured from the first read after a frame
            self._waiting_since = _clock()   # (not from the frame: processing it is no silence)
        result = self._reader.read(self.stall_timeout, self._stop)
        if self._stop.is_set():
            raise EndOfStream()
        ok, frame = result if result is not None else (False, None)
        if ok and frame is not None:
            self._failures = 0
            return frame
        # A stall is no frame for stall_timeout s, whoever noticed: our reader's wait (None) or
        # FFmpeg's own read timeout (a failed read), which is set to the same timeout.
        if result is None or _clock() - self._waiting_since >= self.stall_timeout:
            self.stalls += 1
            log.warning("%s %s: no frame for %.1f s (stalled); reconnecting",
                        self.kind, self.uri, self.stall_timeout)
        else:
            self._failures += 1
            if self._failures < self.max_failures and self._cap.isOpened():
                return None
            log.warning("%s %s: lost (%d failed reads); reconnecting",
                        self.kind, self.uri, self._failures)
        self._drop_capture()
        self.reconnects += 1
        self._set_capture(self._connect())
        self._failures = 0
        return None

    def _read_file(self):
        ok, frame = self._cap.read()
        if ok:
            self._position += 1
            return frame  # None: the container said there was a frame, but it did not decode
        count = self.frame_count
        if self._stop.is_set() or count is None or self._position >= count - 1:
            if count is not None and self.ended_early is None:
                self.ended_early = False
            raise EndOfStream()  # the end (a frame count can be one off)
        self.decode_errors += 1
        if self._skip_ahead():
            return None
        self.ended_early = True
        log.warning("%s %s: cannot decode past frame %d of %d: it ends early", self.kind,
                    self.uri, self._position, count)
        raise EndOfStream()

    def _skip_ahead(self):
        """Seek over an undecodable part; queue None per frame lost and the frame found."""
        start = self._position
        for step in _SKIP_STEPS:
            target = start + step
            if target >= self.frame_count or self._stop.is_set():
                break
            try:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, target)
                ok, frame = self._cap.read()
            except Exception:
                ok, frame = False, None
            if ok and frame is not None:
                log.warning("%s %s: frames %d-%d do not decode: skipped", self.kind, self.uri,
                            start, target - 1)
                self.frames_skipped += step
                self._position = target + 1
                self._queued.extend([None] * (step - 1) + [frame])
                return True
        return False

    def close(self):
        self._drop_capture()

    def describe(self):
        info = Source.describe(self)
        if self.live:
            info["stalls"] = self.stalls
        else:
            info.update(decode_errors=self.decode_errors, frames_skipped=self.frames_skipped,
                        ended_early=self.ended_early)
        return info


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
    if not os.path.exists(device):  # not plugged in at start: one attempt, no 15 s of retries
        hint = "{} does not exist (in Docker: --device {})".format(device, device)
        reconnect = 0
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


def ffmpeg_capture(url, open_timeout=OPEN_TIMEOUT, read_timeout=STALL_TIMEOUT):
    """cv2.VideoCapture of a network stream, with FFmpeg's own open/read timeouts where this
    OpenCV has them (>= 4.5.2; JetPack 4's 4.1 has not: the helper threads still bound it)."""
    names = ("CAP_PROP_OPEN_TIMEOUT_MSEC", "CAP_PROP_READ_TIMEOUT_MSEC")
    if all(hasattr(cv2, n) for n in names):
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout * 1000)]
        try:
            return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        except (TypeError, cv2.error):
            pass
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG)


def rtsp(url, reconnect=5, backoff=DEFAULT_BACKOFF, sleep=None, stall_timeout=STALL_TIMEOUT,
         open_timeout=OPEN_TIMEOUT):
    """A network stream (RTSP/HTTP) through OpenCV's FFmpeg backend."""
    return CaptureSource(lambda: ffmpeg_capture(url, open_timeout, stall_timeout), url,
                         kind="rtsp", live=True, reconnect=reconnect, backoff=backoff,
                         sleep=sleep, hint="check the URL, the network and the credentials",
                         stall_timeout=stall_timeout, open_timeout=open_timeout)


def video(path):
    """A video file, read frame by frame (``--realtime`` in the pipeline plays it at its rate)."""
    path = str(path)
    if not os.path.exists(path):
        raise SourceError("video not found: {}".format(path))
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise SourceError("video {} is not a regular file (a folder, FIFO or device?)".format(path))
    return CaptureSource(lambda: cv2.VideoCapture(path), path, kind="video", live=False,
                         hint="not a video OpenCV can decode")


def open_source(spec, kind=None, reconnect=5, size=None, fps=None, backoff=DEFAULT_BACKOFF,
                sleep=None, stall_timeout=STALL_TIMEOUT):
    """A Source from a CLI-style spec; ``kind`` (one of KINDS) forces the interpretation.

    ``stall_timeout``: a network stream without a frame for that long is lost (and may take
    twice that to open). Without ``kind``: an int or "/dev/videoN" is a camera, "csi://N" a CSI camera,
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
        return rtsp(text, stall_timeout=stall_timeout, open_timeout=2 * stall_timeout, **live)
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
