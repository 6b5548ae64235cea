"""The streaming pipeline: ordering, the drop policy, stopping, errors, statistics, pictures.

Most tests use a fake engine (sleep in infer) and fake sources so that the timing
behaviour is deliberate; one test runs the real exported SwiftNet end to end.
"""
import json
import threading
import time

import cv2
import numpy as np
import pytest

from runtime import report as report_mod
from runtime import stats
from runtime.engine_base import EngineBase
from runtime.errors import UserError
from runtime.manifest import Manifest
from runtime.outputs import Output, VideoOutput
from runtime.pipeline import Pipeline, valid_frame
from runtime.sources import EndOfStream, Source, SourceError
from runtime.visualize import Visualizer

H, W = 32, 48
CLASSES = [{"id": i, "name": "class{}".format(i), "color": [10 * i, 255 - 10 * i, 7 * i]}
           for i in range(19)]
MANIFEST = Manifest.from_dict({
    "schema_version": 1, "arch": "fake", "task": "segmentation", "precision": "fp32",
    "artifact": {"file": "fake.onnx", "format": "onnx"},
    "input": {"name": "frame", "shape": [1, H, W, 3], "dtype": "uint8", "layout": "NHWC",
              "color_order": "BGR",
              "normalization": {"in_graph": True, "scale": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1]}},
    "outputs": [{"name": "class_map", "shape": [1, H, W], "dtype": "uint8", "meaning": "class_map"}],
    "classes": CLASSES, "ignore_id": 255})


def stamp(index):
    """A frame whose first pixels carry its index (so the engine can tell which frame it got)."""
    frame = np.zeros((H, W, 3), np.uint8)
    frame[0, 0, :] = [index % 256, (index // 256) % 256, 0]
    return frame


def index_of(frame):
    return int(frame[0, 0, 0]) + 256 * int(frame[0, 0, 1])


class FakeEngine(EngineBase):
    """An engine: identity preprocess, ``infer_s`` of sleep, class map = index % 19."""

    def __init__(self, infer_s=0.0, on_preprocess=None):
        self.manifest = MANIFEST
        self.infer_s = infer_s
        self.on_preprocess = on_preprocess
        self.infer_calls = 0

    def preprocess(self, frame):
        if self.on_preprocess is not None:
            self.on_preprocess(frame)
        return frame, frame, None

    def infer(self, tensor):
        self.infer_calls += 1
        if self.infer_s:
            time.sleep(self.infer_s)
        return {"class_map": np.full((1, H, W), index_of(tensor) % 19, np.uint8)}

    def postprocess(self, outputs):
        return outputs["class_map"][0]

    def dummy_input(self):
        return stamp(0)


class ListSource(Source):
    """A file-like source over a list of frames (None and odd arrays for corrupt frames)."""

    kind = "fake-file"

    def __init__(self, frames, fps=None, live=False, error_at=None):
        Source.__init__(self, "fake://list")
        self.frames, self.fps, self.live, self.error_at = list(frames), fps, live, error_at
        self.pos = 0
        self.closed = False

    def read(self):
        if self.error_at is not None and self.pos == self.error_at:
            raise SourceError("camera fake lost for good")
        if self.pos >= len(self.frames):
            raise EndOfStream()
        self.pos += 1
        return self.frames[self.pos - 1]

    def close(self):
        self.closed = True


class LiveSource(Source):
    """A camera-like source: a new frame every ``period`` s, for ever (until stopped)."""

    kind = "fake-camera"
    live = True

    def __init__(self, period=0.004):
        Source.__init__(self, "fake://camera")
        self.period, self.produced, self.fps = period, 0, 1.0 / period

    def read(self):
        if self._stop.is_set():
            raise EndOfStream()
        time.sleep(self.period)
        frame = stamp(self.produced)
        self.produced += 1
        return frame


class RecordingOutput(Output):
    kind = "recording"

    def __init__(self, fail_at=None, needs_visual=True):
        self.indices, self.sizes, self.closed, self.fail_at = [], [], 0, fail_at
        self.needs_visual = needs_visual

    def write(self, result, visual):
        if self.fail_at is not None and len(self.indices) == self.fail_at:
            raise UserError("disk full")
        self.indices.append(result.index)
        self.sizes.append(None if visual is None else visual.shape)

    def close(self):
        self.closed += 1


def test_file_mode_processes_every_frame_in_order():
    out = RecordingOutput()
    source = ListSource([stamp(i) for i in range(25)])
    with Pipeline(source, FakeEngine(infer_s=0.002), outputs=[out]) as pipe:
        results = list(pipe)
    assert [r.index for r in results] == list(range(25)) == out.indices
    assert all(int(r.class_map[0, 0]) == r.index % 19 for r in results)
    summary = pipe.summary()
    assert summary["frames"] == {"read": 25, "processed": 25, "dropped": 0, "corrupt": 0,
                                 "unfinished": 0}
    assert summary["reason"] == "end_of_stream"
    assert summary["latency_ms"]["inference"]["count"] == 25
    assert summary["latency_ms"]["capture_to_result"]["min"] >= 2.0
    r = results[0]
    assert set(r.timings) == {"read", "preprocess", "inference", "postprocess", "output"}
    assert r.age_ms >= r.timings["inference"] and r.visual is not None
    assert out.closed == 1 and source.closed


def test_corrupt_frames_are_skipped_and_counted():
    frames = [stamp(0), None, np.zeros((H, W), np.uint8), stamp(3),
              np.zeros((H, W, 3), np.float32), np.zeros((0, W, 3), np.uint8), stamp(6)]
    with Pipeline(ListSource(frames), FakeEngine()) as pipe:
        indices = [r.index for r in pipe]
    assert indices == [0, 3, 6]
    frames_count = pipe.summary()["frames"]
    assert frames_count["corrupt"] == 4 and frames_count["processed"] == 3
    assert not valid_frame(None) and valid_frame(stamp(1))


def test_slow_engine_on_a_live_source_drops_stale_frames_and_takes_the_newest():
    source = LiveSource(period=0.004)
    taken = []  # (index of the frame the worker got, frames produced at that moment)
    engine = FakeEngine(infer_s=0.04,
                        on_preprocess=lambda f: taken.append((index_of(f), source.produced)))
    with Pipeline(source, engine, max_frames=8) as pipe:
        results = list(pipe)
    summary = pipe.summary()
    assert len(results) == 8 and summary["reason"] == "max_frames"
    assert summary["frames"]["dropped"] > 0
    indices = [r.index for r in results]
    assert indices == sorted(indices) and indices[-1] - indices[0] > 8  # frames were skipped
    for index, produced in taken:
        assert index >= produced - 2, "the worker took a stale frame"
    # each frame waited at most about one inference before being taken
    assert max(r.age_ms for r in results[1:]) < 40 * 8


def test_realtime_plays_a_file_at_its_rate_and_drops_when_behind():
    frames = [stamp(i) for i in range(30)]
    start = time.monotonic()
    with Pipeline(ListSource(frames, fps=100.0), FakeEngine(infer_s=0.025), realtime=True) as pipe:
        results = list(pipe)
    elapsed = time.monotonic() - start
    summary = pipe.summary()
    assert elapsed >= 0.28  # 30 frames at 100 FPS
    assert summary["mode"] == "live" and summary["frames"]["read"] == 30
    assert summary["frames"]["dropped"] > 0
    assert summary["frames"]["processed"] == len(results) < 30


def test_stop_from_another_thread_ends_the_iteration_cleanly():
    out = RecordingOutput()
    pipe = Pipeline(LiveSource(), FakeEngine(infer_s=0.005), outputs=[out])
    threading.Timer(0.3, pipe.stop).start()
    start = time.monotonic()
    count = sum(1 for _ in pipe)
    assert time.monotonic() - start < 2.0
    assert count > 0 and pipe.reason == "stopped" and out.closed == 1
    assert len(out.indices) == pipe.frames_processed
    assert not any(t.is_alive() for t in pipe._threads)
    pipe.stop()  # idempotent
    pipe.close()


def test_duration_bounds_a_run():
    with Pipeline(LiveSource(), FakeEngine(), duration=0.3) as pipe:
        list(pipe)
    assert pipe.reason == "duration" and pipe.frames_processed > 0


def test_max_frames_on_a_file_reads_no_more_than_needed():
    with Pipeline(ListSource([stamp(i) for i in range(50)]), FakeEngine(), max_frames=7) as pipe:
        assert len(list(pipe)) == 7
    assert pipe.frames_read == 7 and pipe.reason == "max_frames"


def test_a_lost_source_ends_the_run_with_its_error_and_closes_outputs():
    out = RecordingOutput()
    pipe = Pipeline(ListSource([stamp(i) for i in range(10)], error_at=4), FakeEngine(),
                    outputs=[out])
    got = []
    with pytest.raises(SourceError, match="lost for good"):
        for result in pipe:
            got.append(result.index)
    assert out.closed == 1 and pipe.reason == "error"
    assert pipe.summary()["error"] == "camera fake lost for good"


def test_a_failing_output_stops_the_run():
    out = RecordingOutput(fail_at=3)
    with pytest.raises(UserError, match="disk full"):
        with Pipeline(ListSource([stamp(i) for i in range(20)]), FakeEngine(),
                      outputs=[out]) as pipe:
            list(pipe)
    assert out.closed == 1 and out.indices == [0, 1, 2]


def test_no_picture_is_drawn_when_no_output_needs_one():
    out = RecordingOutput(needs_visual=False)
    with Pipeline(ListSource([stamp(i) for i in range(5)]), FakeEngine(), outputs=[out]) as pipe:
        results = list(pipe)
    assert out.sizes == [None] * 5 and all(r.visual is None for r in results)
    assert pipe._visualizer is None


def test_summarize_known_values():
    s = stats.summarize([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert s["count"] == 10 and s["min"] == 1 and s["max"] == 10 and s["mean"] == 5.5
    assert s["p50"] == pytest.approx(5.5) and s["p90"] == pytest.approx(9.1)
    assert s["p99"] == pytest.approx(9.91) and s["cv"] == pytest.approx(s["std"] / 5.5)
    assert set(s) == set(stats.KEYS)
    empty = stats.summarize([])
    assert empty["count"] == 0 and empty["p99"] is None and set(empty) == set(stats.KEYS)


def test_series_keeps_bounded_memory_and_exact_extremes():
    series = stats.Series(capacity=100)
    values = np.random.RandomState(0).uniform(10, 20, size=5000)
    values[1234] = 99.0
    for v in values:
        series.add(v)
    s = series.summary()
    assert s["count"] == 5000 and s["max"] == 99.0 and s["min"] == pytest.approx(values.min())
    assert s["mean"] == pytest.approx(values.mean())
    assert len(series.samples()) == 100 and 13 < s["p50"] < 17


@pytest.mark.parametrize("mode,legend,width", [("overlay", False, W), ("mask", False, W),
                                                ("side-by-side", False, 2 * W),
                                                ("overlay", True, None)])
def test_visualizer_modes_and_sizes(mode, legend, width):
    vis = Visualizer(MANIFEST, mode=mode, alpha=0.5, legend=legend, hud=True)
    frame = np.full((H, W, 3), 200, np.uint8)
    class_map = np.zeros((H, W), np.uint8)
    class_map[:, W // 2:] = 5
    image = vis.render(frame, class_map, "12.0 FPS  40 ms")
    assert image.shape[:2] == vis.output_size((H, W)) and image.dtype == np.uint8
    if width is not None:
        assert image.shape[1] == width
    else:
        assert image.shape[1] > W
    bgr5 = CLASSES[5]["color"][::-1]
    pixel = image[H - 1, W // 2 + 1] if mode != "side-by-side" else image[H - 1, W + W // 2 + 1]
    if mode == "overlay":
        assert np.allclose(pixel, (np.array(bgr5) + 200) / 2.0, atol=1)
    else:
        assert list(pixel) == bgr5


def test_visualizer_rejects_bad_options():
    with pytest.raises(UserError, match="visualize"):
        Visualizer(MANIFEST, mode="heatmap")
    with pytest.raises(UserError, match="alpha"):
        Visualizer(MANIFEST, alpha=1.5)


def test_clock_lock_detection():
    shown = ("cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600\n"
             "GPU MinFreq=1377000000 MaxFreq=1377000000 CurrentFreq=1377000000\n")
    assert report_mod.clocks_locked(shown) == (True, "jetson_clocks --show")
    assert report_mod.clocks_locked(shown.replace("MinFreq=2201600", "MinFreq=115200"))[0] is False


def test_clock_lock_from_sysfs(tmp_path):
    for cpu, (lo, hi) in (("cpu0", (1200, 2000)), ("cpu1", (2000, 2000))):
        d = tmp_path / "devices" / "system" / "cpu" / cpu / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_min_freq").write_text("{}\n".format(lo))
        (d / "scaling_max_freq").write_text("{}\n".format(hi))
    assert report_mod.clocks_locked("", sysfs_root=str(tmp_path)) == (False, "sysfs min/max")


def test_host_info_never_fails():
    info = report_mod.host_info()
    assert info["cores"] >= 1 and "cpu" in info and "jetson" in info
    assert report_mod.rss_mb() > 0


def test_real_engine_end_to_end(rn18_engine, tmp_path):
    """A generated video through the real exported SwiftNet, to an annotated .mp4."""
    from runtime import open_engine
    from runtime.sources import open_source
    video = str(tmp_path / "in.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (320, 160))
    for i in range(30):
        frame = np.zeros((160, 320, 3), np.uint8)
        cv2.circle(frame, (10 * i, 80), 25, (40, 200, 90), -1)
        writer.write(frame)
    writer.release()
    engine = open_engine(rn18_engine)
    out_path = str(tmp_path / "out.mp4")
    with Pipeline(open_source(video), engine, outputs=[VideoOutput(out_path)]) as pipe:
        results = [(r.index, r.class_map.shape, r.class_map.dtype) for r in pipe]
    assert len(results) == 30 and results[0][1:] == ((128, 256), np.uint8)
    summary = pipe.summary()
    assert summary["frames"]["processed"] == 30 and summary["frame_size"] == [160, 320]
    report = report_mod.build(summary, engine_info=engine.describe())
    json.dumps(report)
    cap = cv2.VideoCapture(out_path)
    count = 0
    while cap.read()[0]:
        count += 1
    expected_h, expected_w = pipe.visualizer.output_size((128, 256))
    assert count == 30
    assert (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))) == \
        (expected_h, expected_w)


def test_a_source_that_cannot_open_fails_at_start_and_cleans_up():
    class Unopenable(ListSource):
        def open(self):
            raise SourceError("cannot open camera fake0 after 3 attempts")
    out = RecordingOutput()
    pipe = Pipeline(Unopenable([]), FakeEngine(), outputs=[out])
    with pytest.raises(SourceError, match="after 3 attempts"):
        pipe.start()
    assert out.closed == 1 and pipe.reason == "error"
    assert pipe.summary()["frames"]["read"] == 0


def test_stopped_while_opening_is_an_empty_run():
    class StoppedWhileOpening(ListSource):
        def open(self):
            raise EndOfStream()
    with Pipeline(StoppedWhileOpening([]), FakeEngine()) as pipe:
        assert list(pipe) == []
    assert pipe.reason == "end_of_stream"


def test_the_engine_protocol_hooks_are_called_in_order():
    """A stateful engine (runtime.engine_base): reset at start, infer_at with the frame's media
    time, finish_frame once per frame in order (-> details), stream_summary in the summary."""
    class StreamEngine(FakeEngine):
        stateful = True

        def __init__(self):
            FakeEngine.__init__(self)
            self.calls = []

        def reset(self):
            self.calls.append("reset")

        def infer_at(self, tensor, frame_time):
            self.calls.append(("infer_at", index_of(tensor), frame_time))
            return self.infer(tensor)

        def finish_frame(self, outputs):
            return "frame {}".format(int(outputs["class_map"][0, 0, 0]))

        def stream_summary(self):
            return {"stream": {"frames": len(self.calls) - 1}}

    engine = StreamEngine()
    with Pipeline(ListSource([stamp(i) for i in range(4)], fps=10.0), engine, warmup=0) as pipe:
        results = list(pipe)
    assert engine.calls == ["reset"] + [("infer_at", i, i / 10.0) for i in range(4)]
    assert [r.details for r in results] == ["frame {}".format(i) for i in range(4)]
    assert [r.frame_time for r in results] == [i / 10.0 for i in range(4)]
    assert pipe.summary()["stream"] == {"frames": 4}
    # a stateless engine's defaults: no details, nothing added to the summary
    with Pipeline(ListSource([stamp(0)]), FakeEngine()) as pipe:
        results = list(pipe)
    assert results[0].details is None and results[0].outlier_score is None
    assert "stream" not in pipe.summary()
    assert FakeEngine().infer_at(stamp(5), None)["class_map"][0, 0, 0] == 5
