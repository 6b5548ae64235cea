"""The streaming pipeline: source -> preprocess + inference -> postprocess + outputs, overlapped.

Three threads hand frames over through bounded queues (2 items), so the slowest
stage sets the pace and memory stays flat:

- capture: reads the source and timestamps each frame (time.monotonic). Live sources
  (and files with ``realtime=True``, paced at their own frame rate) go through a
  one-slot holder that keeps only the newest frame: a frame not taken before the next
  one arrives is dropped and counted. Files otherwise block: every frame is processed.
- worker: preprocess and inference (libswiftrt: ctypes releases the GIL).
- post: postprocess, the picture (only if an output needs one), the outputs, statistics.

The consumer (the thread that iterates) receives FrameResult objects:

    with Pipeline(open_source("video.mp4"), open_engine("engines/x.onnx"),
                  outputs=[VideoOutput("out.mp4")]) as pipe:
        for result in pipe:          # result.class_map, result.age_ms, result.timings
            ...

``stop()`` is thread-safe and signal-safe (it only sets flags); outputs and the source
are closed on every exit path (``close()``, the end of the iteration, ``with``).

The engine is a runtime.engine_base.EngineBase: the pipeline calls ``reset()`` when a run
starts, ``dummy_input()`` and ``infer`` to warm up, then per frame ``preprocess``,
``infer_at(tensor, frame_time)``, ``postprocess``, its family's ``read_frame`` (runtime/tasks/)
and ``finish_frame`` (its return value is ``FrameResult.details``), and merges
``stream_summary()`` into ``summary()``.
"""
import collections
import logging
import threading
import time

import numpy as np

from runtime import tasks
from runtime.errors import UserError
from runtime.result import Result
from runtime.sources import MAX_SECONDS, EndOfStream
from runtime.stats import Series

log = logging.getLogger(__name__)

STAGES = ("read", "preprocess", "inference", "postprocess", "output")
_POLL = 0.1          # s: how often blocked threads look at the stop flag
_END = object()      # end-of-stream sentinel between stages
_clock = time.monotonic


FrameResult = Result  # one processed frame (runtime.result): the name the pipeline's users know


class _Channel(object):
    """A bounded hand-over between two threads.

    ``latest``: a single slot where a new item replaces an unread one (counted in
    ``dropped``), so the taker always gets the newest frame. Otherwise ``put`` blocks
    while ``capacity`` items wait. Both give up when the stop event is set.
    """

    def __init__(self, capacity, stop, latest=False):
        self._items = collections.deque()
        self._cond = threading.Condition()
        self._capacity = 1 if latest else max(1, int(capacity))
        self._latest = latest
        self._stop = stop
        self._closed = False
        self.dropped = 0

    def put(self, item):
        """Hand ``item`` over; False when the pipeline is stopping."""
        with self._cond:
            if self._latest:
                if self._items:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self._capacity:
                    if self._stop.is_set():
                        return False
                    self._cond.wait(_POLL)
            self._items.append(item)
            self._cond.notify()
            return True

    def get(self):
        """The next item, or _END once closed and empty (at once when stopping)."""
        with self._cond:
            while not self._items:
                if self._closed or self._stop.is_set():
                    return _END
                self._cond.wait(_POLL)
            if self._stop.is_set():
                return _END
            item = self._items.popleft()
            self._cond.notify()
            return item

    def close(self):
        """No more puts: the taker gets what is left, then _END."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def valid_frame(frame):
    """A frame the engine can take: an HxWx3 uint8 array (None, wrong shape: corrupt)."""
    return (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
            and frame.dtype == np.uint8 and frame.shape[0] > 0 and frame.shape[1] > 0)


class Pipeline(object):
    """source -> engine -> outputs, in three overlapping threads; iterate for FrameResults.

    realtime: play a file at its own frame rate with the live drop policy (a camera
    always has it). max_frames / duration (s): bound the run. visualizer: draws the
    picture for outputs that need one (default: an overlay with legend and HUD).
    warmup: inferences run before the first frame, so that the first frames do not
    pay for lazy initialisation. task_options: the engine family's options, a dict
    (runtime/tasks/; e.g. the outlier threshold, None or absent: the manifest's default);
    the family's counters, if it has any, are ``summary()[task.report_key]``.
    """

    def __init__(self, source, engine, outputs=(), realtime=False, max_frames=None,
                 duration=None, visualizer=None, queue_size=2, warmup=1, task_options=None):
        self.source = source
        self.engine = engine
        self.outputs = list(outputs)
        if max_frames is not None and int(max_frames) < 1:
            raise UserError("--max-frames must be at least 1")
        if duration is not None and not (0 < float(duration) <= MAX_SECONDS):
            raise UserError("--duration must be a positive number of seconds up to {} (a year)"
                            .format(MAX_SECONDS))
        self.max_frames = int(max_frames) if max_frames else None
        self.duration = float(duration) if duration else None
        self.realtime = bool(realtime)
        self.queue_size = int(queue_size)
        self.warmup = int(warmup)
        self._visualizer = visualizer
        self.live = bool(source.live or realtime)
        self.frames_read = 0
        self.frames_corrupt = 0
        self.frames_processed = 0
        self.fps_recent = 0.0
        self.reason = None
        self.error = None
        self.series = dict((stage, Series()) for stage in STAGES)
        self.series["capture_to_result"] = Series()
        self.started_at = self.finished_at = None  # time.time()
        self._t_start = self._t_last = None         # time.monotonic()
        self.frame_size = None
        self._stop = threading.Event()       # abort: every stage gives up now
        self._finishing = threading.Event()  # no new frames: in-flight ones complete
        self._lock = threading.RLock()
        self._threads = []
        self._timer = None
        self._started = self._closed = False
        self._frames = self._inferred = self._results = None
        self._done_times = collections.deque(maxlen=32)
        self.task = tasks.for_engine(engine)
        self.counter = self.task.counter(engine, task_options)

    # -- control -------------------------------------------------------------------------

    @property
    def frames_dropped(self):
        return self._frames.dropped if self._frames is not None else 0

    @property
    def visualizer(self):
        if self._visualizer is None:
            self._visualizer = tasks.visualizer(self.engine.manifest)
        return self._visualizer

    def start(self):
        """Open the source, warm the engine up and start the threads (once; thread-safe)."""
        with self._lock:
            if self._started:
                return self
            if self._closed:
                raise RuntimeError("this pipeline was closed; make a new one")
            self._started = True
            try:
                self._open()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    self.stop("interrupted")
                else:
                    self._fail(exc)
                self.close()
                raise
        return self

    def _open(self):
        self._frames = _Channel(self.queue_size, self._stop)
        self._inferred = _Channel(self.queue_size, self._stop)
        self._results = _Channel(self.queue_size, self._stop)
        if self.duration is not None:  # from the start: connecting and retrying count too
            self._timer = threading.Timer(self.duration, self._finish, ("duration",))
            self._timer.daemon = True
            self._timer.start()
        try:
            self.source.open()
        except EndOfStream:  # stopped (Ctrl-C) while a camera was still reconnecting
            self._finish("end_of_stream")
            self._results.close()
            return
        fps = self.source.fps
        if self.realtime and not self.source.live and not fps:
            log.warning("%s has no frame rate: --realtime ignored, frames are read one by one",
                        self.source.uri)
            self.live = False
        self.engine.reset()
        for _ in range(self.warmup):
            self.engine.infer(self.engine.dummy_input())
        for out in self.outputs:
            out.start(fps)
        if self.live:
            self._frames = _Channel(1, self._stop, latest=True)
        self.started_at = time.time()
        self._t_start = _clock()
        for name, target in (("capture", self._capture), ("infer", self._work),
                             ("post", self._post)):
            thread = threading.Thread(target=target, name="rt-" + name)
            thread.daemon = True  # a camera read that never returns must not hang the exit
            thread.start()
            self._threads.append(thread)

    def stop(self, reason="stopped"):
        """End the run now: frames in flight are discarded (thread-safe, signal-safe)."""
        if self.reason is None:
            self.reason = reason
        self._finishing.set()
        self._stop.set()
        self.source.stop()

    def _finish(self, reason):
        """Read no more frames; the ones in flight still complete."""
        if self.reason is None:
            self.reason = reason
        self._finishing.set()
        self.source.stop()

    def _fail(self, exc):
        if self.error is None:
            self.error = exc
        self.stop("error")

    def close(self, timeout=10.0):
        """Stop, join the threads, close outputs and source. Idempotent; raises nothing new."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.stop()
        if self._timer is not None:
            self._timer.cancel()
        alive = []
        for thread in self._threads:
            thread.join(timeout if thread.name != "rt-capture" else min(timeout, 2.0))
            if thread.is_alive():
                alive.append(thread.name)
        if alive:
            log.warning("pipeline threads still running at close: %s", ", ".join(alive))
        if self.finished_at is None:
            self.finished_at = time.time()
        for out in self.outputs:
            try:
                out.close()
            except Exception as exc:  # close every output even if one fails
                log.warning("closing %s output failed: %s", out.kind, exc)
        if "rt-capture" not in alive:
            self.source.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        """FrameResults until the end; raises the error that ended the run, if any."""
        self.start()
        while True:
            result = self._results.get()
            if result is _END:
                break
            yield result
        self.close()
        if self.error is not None:
            raise self.error

    def run(self, callback=None):
        """Process the whole source in the calling thread's loop; ``callback(result)`` per frame."""
        for result in self:
            if callback is not None:
                callback(result)
        return self

    # -- stages ----------------------------------------------------------------------------

    def _capture(self):
        source, out = self.source, self._frames
        period = 1.0 / self.source.fps if (self.realtime and not source.live and self.live) else None
        media_fps = source.fps if not source.live else None  # files: time = index / fps
        limit = self.max_frames if not self.live else None
        valid = 0
        try:
            while not self._finishing.is_set():
                now = _clock()
                if self.duration is not None and now - self._t_start >= self.duration:
                    self._finish("duration")
                    break
                if limit is not None and valid >= limit:
                    break
                if period is not None:
                    delay = self._t_start + self.frames_read * period - now
                    if delay > 0 and self._finishing.wait(delay):
                        break
                t0 = _clock()
                try:
                    frame = source.read()
                except EndOfStream:
                    self._finish("end_of_stream")
                    break
                t1 = _clock()
                index = self.frames_read
                self.frames_read += 1
                if not valid_frame(frame):
                    self.frames_corrupt += 1
                    continue
                if self.frame_size is None:
                    self.frame_size = frame.shape[:2]
                valid += 1
                self.series["read"].add((t1 - t0) * 1e3)
                frame_time = source.frame_time()
                if frame_time is None:
                    frame_time = t1 if source.live else (index / media_fps if media_fps else None)
                result = Result(frame, timings={"read": (t1 - t0) * 1e3}, index=index,
                                capture_time=t1, frame_time=frame_time)
                if not out.put(result):
                    break
        except BaseException as exc:
            self._fail(exc)
        finally:
            out.close()

    def _work(self):
        engine, inp, out = self.engine, self._frames, self._inferred
        try:
            while True:
                result = inp.get()
                if result is _END:
                    break
                t0 = _clock()
                tensor, result.fitted, result.fit = engine.preprocess(result.frame)
                t1 = _clock()
                result.outputs = engine.infer_at(tensor, result.frame_time)
                t2 = _clock()
                result.timings["preprocess"] = (t1 - t0) * 1e3
                result.timings["inference"] = (t2 - t1) * 1e3
                if not out.put(result):
                    break
        except BaseException as exc:
            self._fail(exc)
        finally:
            out.close()

    def _post(self):
        engine, inp, out = self.engine, self._inferred, self._results
        series = self.series
        try:
            while True:
                result = inp.get()
                if result is _END:
                    break
                if self.max_frames is not None and self.frames_processed >= self.max_frames:
                    continue  # in flight when the limit was reached
                outputs, t_cap, timings = result.outputs, result.capture_time, result.timings
                t0 = _clock()
                result.class_map = class_map = engine.postprocess(outputs)
                self.task.read_frame(engine, result, outputs)
                result.details = engine.finish_frame(outputs)
                t1 = _clock()
                if self.counter is not None:
                    self.counter.add(result)
                visual = None
                if any(o.needs_visual for o in self.outputs):
                    visual = self.visualizer.render(result.fitted, class_map,
                                                    self._hud_text(t_cap, t1),
                                                    **self.task.visual_extras(result))
                    result.visual = visual
                for output in self.outputs:
                    output.write(result, visual)
                t2 = _clock()
                timings["postprocess"] = (t1 - t0) * 1e3
                timings["output"] = (t2 - t1) * 1e3
                result.age_ms = (t2 - t_cap) * 1e3
                series["preprocess"].add(timings["preprocess"])
                series["inference"].add(timings["inference"])
                series["postprocess"].add((t1 - t0) * 1e3)
                series["output"].add((t2 - t1) * 1e3)
                series["capture_to_result"].add(result.age_ms)
                self.frames_processed += 1
                self._t_last = t2
                self._note_fps(t2)
                if any(o.stop_requested for o in self.outputs):
                    self._finish("window_closed")
                if self.max_frames is not None and self.frames_processed >= self.max_frames:
                    self._finish("max_frames")
                if not out.put(result):
                    break
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.finished_at = time.time()
            out.close()

    def _note_fps(self, now):
        times = self._done_times
        times.append(now)
        if len(times) > 1 and times[-1] > times[0]:
            self.fps_recent = (len(times) - 1) / (times[-1] - times[0])

    def _hud_text(self, t_cap, now):
        return "{:.1f} FPS  {:.0f} ms".format(self.fps_recent, (now - t_cap) * 1e3)

    # -- results ---------------------------------------------------------------------------

    def summary(self):
        """Counters, rates and latency statistics of the run so far (a plain dict for reports)."""
        wall = None
        if self._t_start is not None:
            end = self._t_last if self._t_last is not None else _clock()
            wall = max(end - self._t_start, 1e-9)
        unfinished = (self.frames_read - self.frames_corrupt - self.frames_dropped
                      - self.frames_processed)
        summary = {
            "reason": self.reason,
            "error": None if self.error is None else str(self.error),
            "mode": "live" if self.live else "file",
            "realtime": self.realtime,
            "frame_size": list(self.frame_size) if self.frame_size else None,
            "frames": {"read": self.frames_read, "processed": self.frames_processed,
                       "dropped": self.frames_dropped, "corrupt": self.frames_corrupt,
                       "unfinished": max(0, unfinished)},
            "wall_s": wall,
            "fps": {"processed": self.frames_processed / wall if wall else None,
                    "read": self.frames_read / wall if wall else None},
            "latency_ms": dict((name, s.summary()) for name, s in self.series.items()),
        }
        if self.counter is not None:
            summary[self.task.report_key] = self.counter.summary()
        summary.update(self.engine.stream_summary())
        return summary
