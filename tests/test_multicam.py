"""Several cameras, one engine (issue 32): rt-export --batch N, the engine's batch call,
rt-segment with several sources, and a stalled camera that holds up no other.

Four generated drives (rt-synth's writer, different seeds) stream as four cameras; their class
maps must be those of running each drive alone, through a batch-4 artifact (one inference per
cycle) and through a batch-1 artifact (a loop)."""
import json
import os
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from tests.conftest import REPO, SMALL_SIZE, _export

FRAMES = 6
SEEDS = (11, 12, 13, 14)


@pytest.fixture(scope="module")
def drives(tmp_path_factory):
    from export.scenes import write_video
    folder = tmp_path_factory.mktemp("drives")
    paths = [str(folder / "drive{}.mp4".format(seed)) for seed in SEEDS]
    for path, seed in zip(paths, SEEDS):
        write_video(path, frames=FRAMES, fps=30.0, seed=seed, size=SMALL_SIZE)
    return paths


@pytest.fixture(scope="module")
def batch4_engine(tmp_path_factory):
    pytest.importorskip("torch")
    return _export(tmp_path_factory.mktemp("batch4"), "swiftnet-rn18", SMALL_SIZE,
                   "swiftnet-rn18_b4.onnx", batch=4)


def alone(engine, video, backend=None):
    """Class maps of one drive through the single-source pipeline."""
    from runtime import open_engine
    from runtime.pipeline import Pipeline
    from runtime.sources import open_source
    eng = open_engine(engine, backend=backend)
    try:
        return [r.class_map.copy() for r in Pipeline(open_source(video), eng)]
    finally:
        eng.close()


def test_a_batch_export_says_its_batch_and_stays_tensorrt_legal(batch4_engine, rn18_engine):
    from runtime.manifest import Manifest
    batched, single = Manifest.load(batch4_engine), Manifest.load(rn18_engine)
    assert batched.batch == 4 and single.batch == 1
    assert batched.input.shape == [4] + single.input.shape[1:]
    assert [o.shape for o in batched.outputs] == [[4] + o.shape[1:] for o in single.outputs]
    assert batched.parity["images"] == 4 and batched.parity["argmax_agreement"] >= 0.999
    # the static TensorRT rules read the batched graph: the same families as batch 1
    assert batched.tensorrt_compat["legal"] == single.tensorrt_compat["legal"]
    assert batched.tensorrt_compat["legal"]


def test_a_manifest_whose_outputs_disagree_on_the_batch_is_refused(batch4_engine):
    from runtime.errors import ManifestError
    from runtime.manifest import Manifest
    data = Manifest.load(batch4_engine).to_dict()
    data["outputs"][0]["shape"][0] = 1
    with pytest.raises(ManifestError, match="batch 1 but the input has batch 4"):
        Manifest.from_dict(data)


def test_segment_batch_fills_missing_slots_and_takes_any_frame_size(batch4_engine, rn18_engine):
    from runtime import open_engine
    rng = np.random.RandomState(0)
    frames = [rng.randint(0, 256, size=shape).astype(np.uint8)
              for shape in ((128, 256, 3), (200, 300, 3), (96, 160, 3), (128, 256, 3),
                            (64, 64, 3))]
    # the core on a batch-1 artifact (a loop inside srt_engine_run_batch) and on a batch-4 one
    # (up to four frames per inference, in batch slots)
    single, batched = open_engine(rn18_engine), open_engine(batch4_engine)
    try:
        assert (single.batch_size, batched.batch_size) == (1, 4)
        want = [single.segment(f).class_map for f in frames]
        assert all(np.array_equal(w, batched.segment(f).class_map) for w, f in zip(want, frames))
        # five frames through a batch of four: two inferences; a camera without a frame: None
        partial = [frames[0], None, frames[1], frames[2], None, frames[3], frames[4]]
        for engine in (single, batched):
            got = engine.segment_batch(partial)
            assert [g is None for g in got] == [f is None for f in partial]
            maps = [g.class_map for g in got if g is not None]
            assert len(maps) == len(want) and all(np.array_equal(w, m) for w, m in zip(want, maps))
            # one srt_result per frame, None per gap
            assert [r is None for r in engine.core.last_results] == [f is None for f in partial]
        # the batch-4 artifact ran them as four frames then one: the same inference time each
        times = [r.inference_ms for r in batched.core.last_results if r is not None]
        assert times[0] == times[1] == times[2] == times[3] and times[4] != times[0]
    finally:
        for engine in (single, batched):
            engine.close()


def test_four_drives_through_one_engine_match_each_alone(drives, batch4_engine, rn18_engine,
                                                          tmp_path):
    reference = [alone(rn18_engine, video) for video in drives]
    assert all(len(maps) == FRAMES for maps in reference)
    assert not np.array_equal(reference[0][0], reference[1][0])  # four different drives
    # the CLI, batch-4 artifact: one inference per cycle, a video and a frames folder per camera
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "runtime.cli.segment", "-e", batch4_engine]
    for video in drives[:2]:            # two by flags, two from a sources file (after them)
        argv += ["--video", video]
    listing = tmp_path / "sources.txt"
    listing.write_text("# the rear cameras\nvideo {}\n\n{}  # kind guessed\n".format(*drives[2:]))
    argv += ["--sources", str(listing)]
    argv += ["--output", str(out / "cam{index}.mp4"), "--save-frames", str(out / "frames"),
             "--report", str(out / "report.json"), "-q"]
    proc = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert [c["frames"]["processed"] for c in report["cameras"]] == [FRAMES] * 4
    assert report["batches"]["engine_batch"] == 4
    assert report["batches"]["calls"] < report["frames"]["processed"]   # batched, not a loop
    for index, maps in enumerate(reference):
        assert os.path.getsize(str(out / "cam{}.mp4".format(index))) > 0
        for frame, want in enumerate(maps):
            got = cv2.imread(str(out / "frames" / "cam{}".format(index) /
                                 "{:06d}_labels.png".format(frame)), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(got, want), (index, frame)
    # the library, batch-1 artifact in the core (srt_engine_run_batch): same as each alone
    from runtime import open_engine
    from runtime.multicam import MultiPipeline
    from runtime.sources import open_source
    reference = [alone(rn18_engine, video) for video in drives]
    engine = open_engine(rn18_engine)
    got = [[] for _ in drives]
    for result in MultiPipeline([open_source(v) for v in drives], engine):
        got[result.camera].append(result.class_map.copy())
    engine.close()
    for want, maps in zip(reference, got):
        assert len(maps) == FRAMES and all(np.array_equal(w, m) for w, m in zip(want, maps))


class StalledCamera(object):
    """A live camera that delivers nothing and whose read never returns (until stopped): what
    a camera whose driver hangs does. Used where no RTSP server can be stalled instead."""

    kind, live, fps, uri = "camera", True, None, "stalled"
    reconnects = 0

    def __init__(self):
        self._stop = threading.Event()

    def open(self):
        pass

    def read(self):
        self._stop.wait()
        from runtime.sources import EndOfStream
        raise EndOfStream()

    def stop(self):
        self._stop.set()

    def frame_time(self):
        return None

    def close(self):
        pass

    def describe(self):
        return {"kind": self.kind, "uri": self.uri, "live": True, "reconnects": 0}


@pytest.fixture(scope="module")
def paced_videos(tmp_path_factory):
    """Two 4 Hz videos: played in real time, the engine keeps up with them on any machine."""
    from tests.test_segment_cli import write_video
    folder = tmp_path_factory.mktemp("paced")
    return [write_video(folder / "v{}.mp4".format(i), 40, size=(64, 128), fps=4.0)
            for i in range(2)]


def _rates(engine, sources, duration):
    from runtime.multicam import MultiPipeline
    pipe = MultiPipeline(sources, engine, realtime=True, duration=duration)
    pipe.run()
    status = pipe.status_text()   # rt-segment's status line with several cameras
    assert status.count(" FPS p50 ") == len(sources) and "cam{} ".format(len(sources) - 1) in status
    assert " drop " in status and " lost " in status
    return pipe.summary()["cameras"]


def test_a_stalled_camera_does_not_lower_the_others_rate(rn18_engine, paced_videos):
    from runtime import open_engine
    from runtime.sources import open_source
    engine = open_engine(rn18_engine)
    try:
        healthy = _rates(engine, [open_source(v) for v in paced_videos], 3.0)
        with_stall = _rates(engine, [open_source(paced_videos[0]), StalledCamera(),
                                     open_source(paced_videos[1])], 3.0)
    finally:
        engine.close()
    assert with_stall[1]["frames"]["processed"] == 0
    for alone_, beside in zip(healthy, (with_stall[0], with_stall[2])):
        # 4 Hz for 3 s: about 12 frames each, with or without the stalled camera beside them
        assert beside["frames"]["processed"] >= 9, beside
        assert beside["frames"]["processed"] >= alone_["frames"]["processed"] - 2, (alone_, beside)


def _stream(*args):
    argv = [sys.executable, "-m", "runtime.cli.segment"] + [str(a) for a in args]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)


def test_a_stalled_rtsp_camera_among_three_holds_up_no_other(rn18_engine, tmp_path):
    """Three RTSP cameras (tests/rtsp_server.py); the middle one's server is stopped (SIGSTOP)
    once it streams: the other two keep the rate they have without it."""
    from tests.test_streams import RtspServer, _server_python, free_port, wait_for_frames
    python, why = _server_python()
    if python is None:
        pytest.skip(why)
    healthy, stalling = RtspServer(python, free_port()).start(), RtspServer(python, free_port()).start()
    try:
        base = tmp_path / "base.json"
        proc = _stream("-e", rn18_engine, "--rtsp", healthy.url, "--rtsp", healthy.url,
                       "--duration", 8, "--report", base, "-q")
        assert proc.wait(60) == 0, proc.communicate()[1]
        frames, report = tmp_path / "frames", tmp_path / "stalled.json"
        proc = _stream("-e", rn18_engine, "--rtsp", healthy.url, "--rtsp", stalling.url,
                       "--rtsp", healthy.url, "--duration", 14, "--stall-timeout", 2,
                       "--reconnect", 2, "--save-frames", frames, "--report", report, "-q")
        wait_for_frames(frames / "cam1", 1, proc)
        stalling.stall()
        assert proc.wait(60) == 0, proc.communicate()[1]
    finally:
        healthy.kill()
        stalling.kill()
    before = json.loads(base.read_text())["cameras"]
    after = json.loads(report.read_text())["cameras"]
    assert after[1]["source"]["stalls"] >= 1            # the middle camera did stall
    for alone_, beside in zip(before, (after[0], after[2])):
        assert beside["fps"] >= 0.6 * alone_["fps"], (alone_, beside)


def test_rt_plan_builds_a_batch_artifact(batch4_engine, tmp_path):
    """The plan build (TensorRT replaced by the test doubles of test_plan_build) checks a
    batch-4 model on batches of the check frames and writes a batch-4 plan manifest."""
    from runtime.manifest import Manifest
    from tests.test_plan_build import build
    plan, data, backend = build(batch4_engine, tmp_path)
    manifest = Manifest.load(plan)
    assert manifest.batch == 4 and manifest.artifact_format == "tensorrt"
    assert backend.batches == 1      # the frames one by one (slot 0), then four in one batch call
    assert backend.closed


def test_a_forecast_bundle_keeps_one_feature_ring_per_camera(drives, tmp_path):
    """Two drives through a bundle (one engine per camera): each camera's forecasts are those
    of the drive alone; one engine for both is refused."""
    from tests import forecast_bundles as fb
    from runtime import open_engine
    from runtime.multicam import MultiPipeline
    from runtime.pipeline import Pipeline
    from runtime.sources import open_source
    # the forecaster copies the OLDEST past frame: a ring shared by two cameras would forecast
    # one camera from the other's past
    bundle = fb.build_bundle(tmp_path / "bundle", (-2, -1, 0), horizon=2, frame_rate=30.0,
                             f2f="copy-oldest")
    engines = [open_engine(bundle) for _ in range(2)]
    try:
        want = [[None if r.class_map is None else r.class_map.copy()
                 for r in Pipeline(open_source(v), engines[0])] for v in drives[:2]]
        with pytest.raises(Exception, match="its own engine"):
            MultiPipeline([open_source(v) for v in drives[:2]], engines[0])
        got = [[], []]
        for result in MultiPipeline([open_source(v) for v in drives[:2]], engines):
            got[result.camera].append(None if result.class_map is None
                                      else result.class_map.copy())
    finally:
        for engine in engines:
            engine.close()
    for w, g in zip(want, got):
        assert len(w) == len(g) == FRAMES
        assert [m is None for m in w] == [m is None for m in g]   # each camera warms up alone
        assert any(m is not None for m in g)
        assert all(a is None or np.array_equal(a, b) for a, b in zip(w, g))
    # rt-segment opens one bundle per camera itself
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "runtime.cli.segment", "-e", bundle, "--video", drives[0],
                           "--video", drives[1], "--report", report, "-q"], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    cameras = json.loads(report.read_text())["cameras"]
    assert [c["frames"]["processed"] for c in cameras] == [FRAMES, FRAMES]


def test_a_batch_outlier_artifact_scores_each_camera_as_alone(tmp_path):
    """Outlier scores come out of their own batch slot: a batch-2 export of the outlier network
    gives each of three frames (two inferences) the class map and score of the batch-1 export."""
    pytest.importorskip("torch")
    from runtime import open_engine
    single = open_engine(_export(tmp_path, "swiftnet-rn18-ood", SMALL_SIZE, "ood.onnx"))
    batched = open_engine(_export(tmp_path, "swiftnet-rn18-ood", SMALL_SIZE, "ood_b2.onnx", batch=2))
    try:
        rng = np.random.RandomState(1)
        frames = [rng.randint(0, 256, size=SMALL_SIZE + (3,)).astype(np.uint8) for _ in range(3)]
        want = [single.segment(f) for f in frames]
        got = batched.segment_batch(frames)
        assert len(set(w.outlier_score.tobytes() for w in want)) == 3   # three different scores
        for w, g in zip(want, got):
            assert np.array_equal(w.class_map, g.class_map)
            assert np.allclose(w.outlier_score, g.outlier_score, atol=1e-5)
    finally:
        single.close()
        batched.close()
