"""Several cameras, one engine: each cycle runs the newest frame of every camera that has one
as one batch (``engine.segment_batch``), so N cameras share one engine, one copy of its
weights and, with a batch-N artifact (rt-export --batch N), one inference call.

    with MultiPipeline([open_source(u) for u in urls], engine,
                       outputs=[[VideoOutput("cam0.mp4")], [VideoOutput("cam1.mp4")]]) as pipe:
        for result in pipe:          # result.camera, result.class_map, result.age_ms
            ...

Threads: one capture thread per camera (a stalled or reconnecting camera blocks only its
own), one inference thread (collects a batch, runs it), one post thread (pictures, outputs,
statistics). Live cameras (and files with ``realtime=True``) keep only their newest frame:
one not taken before the next arrives is dropped and counted for that camera. Files
otherwise keep at most two frames waiting and block: every frame is processed, and a
camera's class maps are those of running it alone.

The inference thread waits until at least one camera has a frame and never for a
particular camera: a camera without a new frame has an empty slot in the batch (a batch-N
artifact pads it). A stateful engine (a forecast bundle: a ring of past features) cannot mix
cameras: give one engine per camera (``engine`` a list); each camera's frames then run through
its own engine, in order, with their frame times (one feature ring per camera). Counters, rates and latency percentiles are kept per camera
(``summary()["cameras"]``, ``status_text()``).
"""
import collections
import logging
import math
import threading
import time

from runtime import tasks
from runtime.errors import UserError
from runtime.pipeline import _Channel, _END, _POLL, valid_frame
from runtime.result import Result
from runtime.sources import EndOfStream
from runtime.stats import Series

log = logging.getLogger(__name__)
_clock = time.monotonic
_FILE_QUEUE = 2   # frames of a file camera waiting for the engine


class Camera(object):
    """One source of a multi-camera run: its frames waiting, counters and latencies."""

    def __init__(self, index, source, outputs):
        self.index = index
        self.source = source
        self.outputs = list(outputs)
        self.pending = collections.deque()
        self.frames_read = 0
        self.frames_lost = 0        # reads that gave no usable frame (lost or corrupt)
        self.frames_dropped = 0     # newer frame arrived before the engine took this one
        self.frames_processed = 0
        self.frame_size = None
        self.ended = False
        self.error = None
        self.fps_recent = 0.0
        self.latency = Series()     # capture -> result written, ms
        self._done = collections.deque(maxlen=32)
        self._t_last = None

    def note_done(self, now, age_ms):
        self.frames_processed += 1
        self.latency.add(age_ms)
        self._t_last = now
        self._done.append(now)
        if len(self._done) > 1 and self._done[-1] > self._done[0]:
            self.fps_recent = (len(self._done) - 1) / (self._done[-1] - self._done[0])

    def summary(self, wall):
        info = self.source.describe()
        return {"camera": self.index, "source": info, "frame_size":
                list(self.frame_size) if self.frame_size else None,
                "frames": {"read": self.frames_read, "processed": self.frames_processed,
                           "dropped": self.frames_dropped, "lost": self.frames_lost},
                "fps": self.frames_processed / wall if wall else None,
                "latency_ms": {"capture_to_result": self.latency.summary()},
                "error": None if self.error is None else str(self.error)}


class MultiPipeline(object):
    """Several sources -> one engine -> each camera's outputs; iterate for Results (with
    ``camera`` set to the camera's index).

    ``outputs``: one list of outputs per camera (or None). ``realtime``: play files at
    their frame rate with the live drop policy. ``max_frames``: per camera.
    ``duration`` (s) bounds the run. A camera whose source fails for good (after its
    reconnection attempts) ends alone (``summary()["cameras"][i]["error"]``); the run fails
    only when every camera has.
    """

    def __init__(self, sources, engine, outputs=None, realtime=False, max_frames=None,
                 duration=None, visualizer=None, warmup=1):
        """``engine``: one engine for all cameras, or a list of one per camera (required for
        a stateful engine with several cameras)."""
        if not sources:
            raise UserError("no source given")
        engines = list(engine) if isinstance(engine, (list, tuple)) else [engine] * len(sources)
        if len(engines) != len(sources):
            raise ValueError("one engine, or one per source")
        engine = engines[0]
        if engine.stateful and len(set(map(id, engines))) != len(engines):
            raise UserError("{} keeps one stream's state (a forecast bundle's feature ring): "
                            "give each camera its own engine".format(engine.path))
        self.engines = engines
        if max_frames is not None and int(max_frames) < 1:
            raise UserError("--max-frames must be at least 1")
        if duration is not None and not (0 < float(duration) < math.inf):
            raise UserError("--duration must be a positive number of seconds")
        outputs = outputs or [[] for _ in sources]
        if len(outputs) != len(sources):
            raise ValueError("one list of outputs per source")
        self.engine = engine
        self.task = tasks.for_engine(engine)
        self.cameras = [Camera(i, s, o) for i, (s, o) in enumerate(zip(sources, outputs))]
        self.realtime = bool(realtime)
        self.max_frames = int(max_frames) if max_frames else None
        self.duration = float(duration) if duration else None
        self.warmup = int(warmup)
        self._visualizer = visualizer
        self.reason = None
        self.error = None
        self.batches = 0            # engine calls
        self.batch_frames = 0       # frames in them
        self.started_at = self.finished_at = None
        self._t_start = None
        self._stop = threading.Event()
        self._finishing = threading.Event()
        self._cond = threading.Condition()
        self._lock = threading.Lock()
        self._threads = []
        self._timer = None
        self._started = self._closed = False
        self._inferred = self._results = None

    @property
    def visualizer(self):
        if self._visualizer is None:
            self._visualizer = tasks.visualizer(self.engine.manifest)
        return self._visualizer

    @property
    def frames_processed(self):
        return sum(cam.frames_processed for cam in self.cameras)

    @property
    def frames_dropped(self):
        return sum(cam.frames_dropped for cam in self.cameras)

    @property
    def frames_corrupt(self):
        """Reads without a usable frame, all cameras (Pipeline's name for them)."""
        return sum(cam.frames_lost for cam in self.cameras)

    # -- control -------------------------------------------------------------------------

    def start(self):
        """Open every source, warm the engine up, start the threads (once)."""
        with self._lock:
            if self._started:
                return self
            self._started = True
        try:
            self._open()
        except BaseException as exc:
            self._fail(exc)
            self.close()
            raise
        return self

    def _open(self):
        self._inferred = _Channel(2, self._stop)
        self._results = _Channel(2 * len(self.cameras), self._stop)
        for engine in self._distinct_engines():
            engine.reset()
            for _ in range(self.warmup):
                engine.infer(engine.dummy_input())
        self.started_at = time.time()
        self._t_start = _clock()
        if self.duration is not None:
            self._timer = threading.Timer(self.duration, self._finish, ("duration",))
            self._timer.daemon = True
            self._timer.start()
        targets = [("capture{}".format(cam.index), self._capture, (cam,)) for cam in self.cameras]
        targets += [("infer", self._work, ()), ("post", self._post, ())]
        for name, target, args in targets:
            thread = threading.Thread(target=target, args=args, name="rt-" + name)
            thread.daemon = True   # a camera read that never returns must not hang the exit
            thread.start()
            self._threads.append(thread)

    def stop(self, reason="stopped"):
        """End the run now (thread-safe, signal-safe)."""
        if self.reason is None:
            self.reason = reason
        self._finishing.set()
        self._stop.set()
        for cam in self.cameras:
            cam.source.stop()

    def _finish(self, reason):
        """Read no more frames; the ones taken still complete."""
        if self.reason is None:
            self.reason = reason
        self._finishing.set()
        for cam in self.cameras:
            cam.source.stop()
        with self._cond:
            self._cond.notify_all()

    def _fail(self, exc):
        if self.error is None:
            self.error = exc
        self.stop("error")

    def close(self, timeout=10.0):
        """Stop, join, close every output and source. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.stop()
        if self._timer is not None:
            self._timer.cancel()
        alive = set()
        for thread in self._threads:
            thread.join(min(timeout, 2.0) if thread.name.startswith("rt-capture") else timeout)
            if thread.is_alive():
                alive.add(thread.name)
        if self.finished_at is None:
            self.finished_at = time.time()
        for cam in self.cameras:
            for out in cam.outputs:
                try:
                    out.close()
                except Exception as exc:
                    log.warning("closing camera %d's %s output failed: %s", cam.index, out.kind, exc)
            if "rt-capture{}".format(cam.index) not in alive:
                cam.source.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
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
        for result in self:
            if callback is not None:
                callback(result)
        return self

    # -- stages ----------------------------------------------------------------------------

    def _capture(self, cam):
        """Open the camera (a camera that connects slowly delays no other), then read it."""
        source = cam.source
        try:
            source.open()
            for out in cam.outputs:
                out.start(source.fps)
            self._read(cam)
        except EndOfStream:
            pass
        except Exception as exc:   # this camera is gone; the others go on
            cam.error = exc
            log.warning("camera %d (%s) ended: %s", cam.index, source.uri, exc)
        except BaseException as exc:
            self._fail(exc)
        finally:
            with self._cond:
                cam.ended = True
                self._cond.notify_all()

    def _read(self, cam):
        source = cam.source
        live = source.live or self.realtime
        period = 1.0 / source.fps if (self.realtime and not source.live and source.fps) else None
        media_fps = source.fps if not source.live else None
        valid = 0
        while not self._finishing.is_set():
            if self.max_frames is not None and not live and valid >= self.max_frames:
                break
            if period is not None:
                delay = self._t_start + cam.frames_read * period - _clock()
                if delay > 0 and self._finishing.wait(delay):
                    break
            t0 = _clock()
            try:
                frame = source.read()
            except EndOfStream:
                break
            t1 = _clock()
            index = cam.frames_read
            cam.frames_read += 1
            if not valid_frame(frame):
                cam.frames_lost += 1
                continue
            valid += 1
            if cam.frame_size is None:
                cam.frame_size = frame.shape[:2]
            frame_time = source.frame_time()
            if frame_time is None:
                frame_time = t1 if source.live else (index / media_fps if media_fps else None)
            result = Result(frame, timings={"read": (t1 - t0) * 1e3}, index=index,
                            capture_time=t1, frame_time=frame_time)
            result.camera = cam.index
            with self._cond:
                if live:
                    if cam.pending:
                        cam.pending.popleft()
                        cam.frames_dropped += 1
                else:
                    while len(cam.pending) >= _FILE_QUEUE and not self._stop.is_set():
                        self._cond.wait(_POLL)
                cam.pending.append(result)
                self._cond.notify_all()

    def _take_batch(self):
        """The newest frame of every camera that has one (None elsewhere); None at the end."""
        with self._cond:
            while True:
                if self._stop.is_set():
                    return None
                if any(cam.pending for cam in self.cameras):
                    batch = [cam.pending.popleft() if cam.pending else None
                             for cam in self.cameras]
                    self._cond.notify_all()   # file cameras waiting for room
                    return batch
                if all(cam.ended for cam in self.cameras):
                    return None
                self._cond.wait(_POLL)

    def _distinct_engines(self):
        seen = []
        for engine in self.engines:
            if all(engine is not other for other in seen):
                seen.append(engine)
        return seen

    def _run_stateful(self, batch):
        """Each camera's frame through its own engine, at its frame time (forecast bundles)."""
        for result in batch:
            if result is None:
                continue
            engine = self.engines[result.camera]
            t0 = _clock()
            tensor, result.fitted, result.fit = engine.preprocess(result.frame)
            t1 = _clock()
            result.outputs = engine.infer_at(tensor, result.frame_time)
            t2 = _clock()
            result.class_map = engine.postprocess(result.outputs)
            self.task.read_frame(engine, result, result.outputs)
            result.timings.update(preprocess=(t1 - t0) * 1e3, inference=(t2 - t1) * 1e3,
                                  postprocess=(_clock() - t2) * 1e3)
            self.batch_frames += 1

    def _work(self):
        engine, out = self.engine, self._inferred
        try:
            while True:
                batch = self._take_batch()
                if batch is None:
                    if self.reason is None:
                        self.reason = "end_of_stream"
                    break
                self.batches += 1
                if engine.stateful:
                    self._run_stateful(batch)
                    if not out.put(batch):
                        break
                    continue
                done = engine.segment_batch([None if r is None else r.frame for r in batch])
                for result, seg in zip(batch, done):
                    if result is None:
                        continue
                    self.batch_frames += 1
                    result.class_map, result.outputs = seg.class_map, seg.outputs
                    result.fitted, result.fit = seg.fitted, seg.fit
                    self.task.read_frame(engine, result, seg.outputs)
                    result.timings.update(seg.timings)
                if not out.put(batch):
                    break
        except BaseException as exc:
            self._fail(exc)
        finally:
            out.close()

    def _post(self):
        inp, out = self._inferred, self._results
        try:
            while True:
                batch = inp.get()
                if batch is _END:
                    break
                for result in batch:
                    if result is None:
                        continue
                    cam = self.cameras[result.camera]
                    if self.max_frames is not None and cam.frames_processed >= self.max_frames:
                        continue
                    self._write(cam, result)
                    if not out.put(result):
                        return
                if self.max_frames is not None and all(
                        c.frames_processed >= self.max_frames or c.ended for c in self.cameras):
                    self._finish("max_frames")
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.finished_at = time.time()
            out.close()

    def _write(self, cam, result):
        t0 = _clock()
        result.details = self.engines[cam.index].finish_frame(result.outputs)
        visual = None
        if any(o.needs_visual for o in cam.outputs):
            extra = self.task.visual_extras(result)
            hud = "cam{}  {:.1f} FPS  {:.0f} ms".format(
                cam.index, cam.fps_recent, (t0 - result.capture_time) * 1e3)
            visual = self.visualizer.render(result.fitted, result.class_map, hud, **extra)
            result.visual = visual
        for output in cam.outputs:
            output.write(result, visual)
        t1 = _clock()
        result.timings["output"] = (t1 - t0) * 1e3
        result.age_ms = (t1 - result.capture_time) * 1e3
        cam.note_done(t1, result.age_ms)
        if any(o.stop_requested for o in cam.outputs):
            self._finish("window_closed")

    # -- results ---------------------------------------------------------------------------

    def status_text(self):
        """One line: per camera FPS, p50/p99 latency, drops and lost frames."""
        parts = []
        for cam in self.cameras:
            lat = cam.latency.summary()
            parts.append("cam{} {:.1f} FPS p50 {} p99 {} ms drop {} lost {}{}".format(
                cam.index, cam.fps_recent, _ms(lat.get("p50")), _ms(lat.get("p99")),
                cam.frames_dropped, cam.frames_lost, " (ended)" if cam.ended else ""))
        return " | ".join(parts)

    def summary(self):
        """Totals over the cameras (the single-source report's fields) and ``cameras``:
        each camera's counters, rate and latency percentiles."""
        wall = None
        if self._t_start is not None:
            wall = max(_clock() - self._t_start, 1e-9)
        cameras = [cam.summary(wall) for cam in self.cameras]
        if self.engine.stateful:   # each camera's own engine: its forecast counters
            for info, engine in zip(cameras, self.engines):
                info.update(engine.stream_summary())
        totals = dict((key, sum(c["frames"][key] for c in cameras))
                      for key in ("read", "processed", "dropped", "lost"))
        everything = Series()
        for cam in self.cameras:
            for value in cam.latency.samples():
                everything.add(value)
        error = self.error
        if error is None and self.cameras and all(c.error is not None for c in self.cameras):
            error = self.cameras[0].error
        return {
            "reason": self.reason if error is None or self.reason else "error",
            "error": None if error is None else str(error),
            "mode": "live" if any(c.source.live for c in self.cameras) or self.realtime else "file",
            "realtime": self.realtime,
            "frame_size": cameras[0]["frame_size"],
            "frames": {"read": totals["read"], "processed": totals["processed"],
                       "dropped": totals["dropped"], "corrupt": totals["lost"],
                       "unfinished": max(0, totals["read"] - totals["lost"] - totals["dropped"]
                                         - totals["processed"])},
            "wall_s": wall,
            "fps": {"processed": totals["processed"] / wall if wall else None,
                    "read": totals["read"] / wall if wall else None},
            "latency_ms": {"capture_to_result": everything.summary()},
            "batches": {"calls": self.batches, "frames": self.batch_frames,
                        "engine_batch": self.engine.batch_size},
            "cameras": cameras,
        }


def _ms(value):
    return "-" if value is None else "{:.0f}".format(value)
