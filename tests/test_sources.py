"""Frame sources: parsing, files, images, and the reconnect policy of live sources."""
import threading
import time

import cv2
import numpy as np
import pytest

from runtime import sources
from runtime.sources import CaptureSource, EndOfStream, SourceError


class FakeCapture(object):
    """A cv2.VideoCapture stand-in: ``frames`` reads succeed, then reads fail."""

    def __init__(self, frames=0, opened=True):
        self.frames, self.opened, self.released, self.reads = frames, opened, False, 0

    def isOpened(self):
        return self.opened and not self.released

    def read(self):
        self.reads += 1
        if self.reads <= self.frames:
            return True, np.full((4, 6, 3), self.reads, np.uint8)
        return False, None

    def get(self, prop):
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released = True


class Factory(object):
    """Hands out the given captures in order (exceptions are raised); counts calls."""

    def __init__(self, *captures):
        self.captures, self.calls = list(captures), 0

    def __call__(self):
        self.calls += 1
        cap = self.captures.pop(0) if self.captures else FakeCapture(opened=False)
        if isinstance(cap, Exception):
            raise cap
        return cap


def live_source(factory, reconnect=5, max_failures=2):
    sleeps = []
    source = CaptureSource(factory, "fake0", kind="camera", live=True, reconnect=reconnect,
                           backoff=(0.5, 2.0, 3.0), sleep=sleeps.append, max_failures=max_failures,
                           hint="is it plugged in?")
    return source, sleeps


def test_backoff_is_exponential_and_capped():
    assert sources.backoff_delays(5, 0.5, 2.0, 3.0) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert sources.backoff_delays(0) == []


def test_open_retries_with_backoff_then_succeeds():
    good = FakeCapture(frames=3)
    factory = Factory(FakeCapture(opened=False), RuntimeError("device busy"),
                      FakeCapture(opened=False), good)
    source, sleeps = live_source(factory, reconnect=5)
    source.open()
    assert factory.calls == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert source.fps == 25.0
    assert source.read().shape == (4, 6, 3)


def test_open_always_failing_gives_one_clear_error_after_the_attempts():
    factory = Factory(RuntimeError("VIDEOIO(V4L2): can't open camera by index"))
    source, sleeps = live_source(factory, reconnect=3)
    with pytest.raises(SourceError) as info:
        source.open()
    message = str(info.value)
    assert factory.calls == 4 and sleeps == [0.5, 1.0, 2.0]
    assert "cannot open camera fake0 after 4 attempts" in message
    assert "is it plugged in?" in message and "\n" not in message


def test_camera_that_vanishes_mid_stream_reconnects():
    first, second = FakeCapture(frames=2), FakeCapture(frames=2)
    factory = Factory(first, FakeCapture(opened=False), second)
    source, sleeps = live_source(factory, reconnect=3, max_failures=2)
    got = [source.read() for _ in range(6)]
    # 2 frames, 2 failed reads (None, the second triggers the reconnect), 2 frames again.
    assert [g is None for g in got] == [False, False, True, True, False, False]
    assert first.released and source.reconnects == 1
    assert sleeps == [0.5]  # one failed reopen before the third capture opened


def test_camera_that_vanishes_for_good_raises_after_the_attempts():
    source, sleeps = live_source(Factory(FakeCapture(frames=1)), reconnect=2, max_failures=1)
    assert source.read() is not None
    with pytest.raises(SourceError, match="after 3 attempts"):
        source.read()
    assert sleeps == [0.5, 1.0]


def test_stop_interrupts_the_backoff():
    source = CaptureSource(Factory(), "fake0", kind="camera", live=True, reconnect=10,
                           backoff=(5.0, 2.0, 60.0))
    threading.Timer(0.2, source.stop).start()
    start = time.monotonic()
    with pytest.raises(EndOfStream):
        source.open()
    assert time.monotonic() - start < 2.0


def test_file_source_ends_without_retrying():
    factory = Factory(FakeCapture(frames=2))
    source = CaptureSource(factory, "clip.mp4", kind="video", live=False, reconnect=5)
    assert source.read() is not None and source.read() is not None
    with pytest.raises(EndOfStream):
        source.read()
    assert factory.calls == 1


def test_missing_video_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="video not found"):
        sources.open_source(str(tmp_path / "nope.mp4"))


def test_video_file_frames_and_rate(tmp_path):
    path = str(tmp_path / "clip.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 20.0, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()
    source = sources.open_source(path)
    frames = list(source)
    source.close()
    assert len(frames) == 12 and all(f.shape == (48, 64, 3) for f in frames)
    assert source.fps == pytest.approx(20.0) and source.frame_count == 12
    assert source.describe()["kind"] == "video" and not source.live


def test_images_in_order_with_an_undecodable_one(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / "f{}.png".format(i)), np.full((8, 8, 3), i, np.uint8))
    (tmp_path / "f1b.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    frames = list(sources.open_source(str(tmp_path)))
    assert len(frames) == 4
    assert [int(f[0, 0, 0]) for f in frames if f is not None] == [0, 1, 2]
    assert frames[2] is None  # f1b.png sorts after f1.png
    by_glob = sources.open_source(str(tmp_path / "f?.png"))
    assert by_glob.kind == "images" and by_glob.frame_count == 3


def test_no_images_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no images"):
        sources.open_source(str(tmp_path), kind="images")


def test_spec_parsing(tmp_path):
    assert sources.open_source("rtsp://cam.local/stream").kind == "rtsp"
    cam = sources.open_source("/dev/video7")
    assert cam.kind == "camera" and cam.uri == "/dev/video7" and cam.live
    assert sources.open_source(3).uri == "/dev/video3"
    with pytest.raises(SourceError):
        sources.open_source("front", kind="camera")
    with pytest.raises(Exception, match="unknown source kind"):
        sources.open_source("x", kind="webcam")


def test_missing_camera_fails_at_once_with_a_hint():
    slept = []
    source = sources.camera(63, reconnect=5, sleep=slept.append)
    with pytest.raises(SourceError) as info:
        source.open()
    assert "/dev/video63 does not exist" in str(info.value) and slept == []  # no retries


def test_csi_pipeline_keeps_only_the_newest_buffer():
    pipeline = sources.csi_pipeline(1, capture_size=(1080, 1920), fps=30)
    assert pipeline.startswith("nvarguscamerasrc sensor-id=1 ")
    assert "width=960,height=540" in pipeline
    assert pipeline.endswith("appsink drop=true max-buffers=1 sync=false")


@pytest.mark.skipif(sources.gstreamer_available(), reason="this OpenCV has GStreamer")
def test_csi_without_gstreamer_says_so():
    for spec in ("csi://0", "nvarguscamerasrc ! appsink"):
        with pytest.raises(SourceError) as info:
            sources.open_source(spec)
        assert "without" in str(info.value) and "GStreamer" in str(info.value)
