"""Forecast bundles on the device side (issue 8): bundle checks, picking past frames by time,
the forecast engine through the real Pipeline on real videos, rt-segment end to end.

The bundles are small real ONNX graphs (tests/forecast_bundles.py) run by libswiftrt (the
stages and the ring of past features are in the core); ``copy-last`` / ``copy-oldest``
forecasters make the forecast checkable against the decoder of a known frame.
"""
import json
import logging
import os

import numpy as np
import pytest

pytest.importorskip("onnx")

from runtime import manifest as manifest_mod  # noqa: E402
from runtime.cli.common import run_cli  # noqa: E402
from runtime.cli.segment import main as segment_main  # noqa: E402
from runtime import open_engine  # noqa: E402
from runtime.backends.native import NativeEngine, NativeForecastEngine  # noqa: E402
from runtime.errors import ManifestError, UserError  # noqa: E402
from runtime.outputs import Output  # noqa: E402
from runtime.pipeline import Pipeline  # noqa: E402
from runtime.sources import open_source  # noqa: E402
from tests import forecast_bundles as fb  # noqa: E402

OFFSETS = (-4, -2, 0)   # frames at 15 Hz: -0.267, -0.133, 0 s
RATE = 15.0
FRAMES = 24


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return fb.build_bundle(tmp_path_factory.mktemp("bundle") / "copy_last", OFFSETS,
                           frame_rate=RATE)


@pytest.fixture(scope="module")
def oldest_bundle(tmp_path_factory):
    return fb.build_bundle(tmp_path_factory.mktemp("bundle") / "copy_oldest", OFFSETS,
                           frame_rate=RATE, f2f="copy-oldest")


@pytest.fixture(scope="module")
def video15(tmp_path_factory):
    return fb.write_video(tmp_path_factory.mktemp("video") / "v15.mp4", FRAMES, 15.0)


@pytest.fixture(scope="module")
def video30(tmp_path_factory):
    return fb.write_video(tmp_path_factory.mktemp("video") / "v30.mp4", 30, 30.0)


def _decoded(bundle_path, video):
    """The decoder's class map of each frame of ``video`` (read independently): the core's
    segmentation of the current frame."""
    ref = open_engine(bundle_path, current=True)
    try:
        return [ref.step(frame, k / RATE).current_map.copy()
                for k, frame in enumerate(fb.read_frames(video))]
    finally:
        ref.close()


class _Keep(Output):
    """Keeps every result and picture."""

    kind = "keep"

    def __init__(self):
        self.items = []

    def write(self, result, visual):
        self.items.append((result, visual))


def _run(engine, video):
    keep = _Keep()
    pipe = Pipeline(open_source(video), engine, outputs=[keep])
    pipe.run()
    return keep.items, pipe.summary()


# -- bundle loading and checks ----------------------------------------------------------------

def test_a_good_bundle_opens_from_its_folder_and_forecasts(bundle, tmp_path):
    folder = os.path.dirname(bundle)
    assert manifest_mod.Manifest.load(bundle).to_dict()["task"] == "forecast"
    assert manifest_mod.Manifest.load(folder).to_dict()["past_offsets"] == list(OFFSETS)
    engine = open_engine(folder, current=True)
    frames = [np.random.RandomState(k).randint(0, 256, (48, 96, 3)).astype(np.uint8) for k in range(5)]
    try:
        assert (engine.past_offsets, engine.horizon, engine.frame_rate) == (list(OFFSETS), 3, RATE)
        assert engine.size == fb.SIZE
        assert len(engine.classes) == fb.CHANNELS and engine.manifest.task == "forecast"
        steps = [engine.step(frame, k / RATE) for k, frame in enumerate(frames)]
        last = steps[-1]
        assert [s.is_forecast for s in steps] == [False] * 4 + [True]
        assert last.class_map.shape == fb.SIZE and last.class_map.dtype == np.uint8
        np.testing.assert_array_equal(last.class_map, last.current_map)  # copy-last
        info = engine.describe()
        assert info["task"] == "forecast" and info["backend"] == "native"
        assert info["past_offsets"] == list(OFFSETS) and set(info["stages"]) == {
            "features", "f2f", "decoder"}
    finally:
        engine.close()
    logits = open_engine(fb.build_bundle(tmp_path / "logits", OFFSETS, output_kind="logits"),
                         current=True)
    try:  # a logits decoder gives the same class maps (argmax in the core)
        again = [logits.step(frame, k / RATE) for k, frame in enumerate(frames)][-1]
        np.testing.assert_array_equal(again.current_map, last.current_map)
        np.testing.assert_array_equal(again.class_map, last.class_map)
    finally:
        logits.close()


def _shape(stage, which, value):
    def patch(m):
        target = m[stage]["outputs"][0] if which == "out" else m[stage]["input"]
        target["shape"] = value
    return patch


def _set(stage, key, value):
    def patch(m):
        m[stage][key] = value
    return patch


BROKEN = [
    ("f2f input channels", _shape("f2f", "in", [1, 8, 8, 16]),
     "stage 'f2f' input 'past_features' has shape [1, 8, 8, 16], expected [1, 12, 8, 16]"),
    ("features output", _shape("features", "out", [1, 4, 4, 8]),
     "stage 'features' output 'features' has shape [1, 4, 4, 8], expected feature_shape"),
    ("decoder input", _shape("decoder", "in", [1, 4, 16, 32]),
     "stage 'decoder' input 'features' has shape [1, 4, 16, 32]"),
    ("decoder classes", _set("decoder", "classes", fb.classes(3)),
     "stage 'decoder' has classes that differ from the bundle's"),
    ("stage frame rate", _set("f2f", "frame_rate", 30.0),
     "stage 'f2f' says frame_rate 30.0, the bundle says 15.0"),
    ("stage offsets", _set("f2f", "past_offsets", [-6, -3, 0]), "stage 'f2f' says past_offsets"),
    ("offsets not ending with 0", _set("bundle", "past_offsets", [-4, -2]), "'past_offsets'"),
    ("offsets not ascending", _set("bundle", "past_offsets", [-2, -4, 0]), "must be ascending"),
    ("no offsets", _set("bundle", "past_offsets", []), "'past_offsets'"),
    ("horizon", _set("bundle", "horizon", 0), "'horizon' must be a positive"),
    ("frame rate", _set("bundle", "frame_rate", 0), "'frame_rate' must be a positive"),
    ("stages", _set("bundle", "stages", {"features": "features.onnx", "f2f": "f2f.onnx"}),
     "'stages' must map exactly features, f2f, decoder"),
    ("wrong stage file", _set("bundle", "stages", {"features": "features.onnx",
                                                   "f2f": "decoder.onnx",
                                                   "decoder": "decoder.onnx"}),
     "is not the 'f2f' stage"),
    ("tensor name", lambda m: m["decoder"]["outputs"][0].update(name="labels"),
     "manifest output 'labels' is not in the model"),
    ("bundle input size", lambda m: m["bundle"]["input"].update(shape=[1, 64, 128, 3]),
     "stage 'features' input differs from the bundle's input"),
]


@pytest.mark.parametrize("name,patch,needle", BROKEN, ids=[b[0] for b in BROKEN])
def test_an_inconsistent_bundle_is_refused_in_one_line(tmp_path, name, patch, needle):
    path = fb.build_bundle(tmp_path / "b", OFFSETS, patch=patch)
    with pytest.raises(ManifestError) as info:
        open_engine(path)
    message = str(info.value)
    # the bundle's folder: the core names forecast.json or the stage's own manifest
    assert needle in message and os.path.dirname(path) in message and "\n" not in message, message


def test_a_missing_stage_file_is_named(tmp_path):
    path = fb.build_bundle(tmp_path / "b", OFFSETS)
    os.remove(str(tmp_path / "b" / "f2f.onnx"))
    with pytest.raises(UserError, match=r"f2f\.onnx is missing"):
        open_engine(path)
    with pytest.raises(ManifestError, match="is a folder without a forecast.json"):
        open_engine(str(tmp_path))


def test_engine_refuses_a_bundle_and_a_stage_and_open_engine_dispatches(bundle):
    with pytest.raises(ManifestError, match="is a forecast bundle: open it with "
                                            "runtime.open_engine"):
        NativeEngine(bundle)
    stage = os.path.join(os.path.dirname(bundle), "features.onnx")
    with pytest.raises(ManifestError, match="is the 'features' stage of a forecast bundle: give "
                                            "the bundle's forecast.json"):
        NativeEngine(stage)
    for path in (bundle, os.path.dirname(bundle)):
        engine = open_engine(path)
        try:
            assert isinstance(engine, NativeForecastEngine) and engine.outlier_output is None
        finally:
            engine.close()


def test_rt_segment_refuses_a_broken_bundle_with_one_line(tmp_path, video15, run_cli_subprocess):
    path = fb.build_bundle(tmp_path / "b", OFFSETS, patch=_set("decoder", "classes", fb.classes(3)))
    proc = run_cli_subprocess("runtime.cli.segment", "--engine", path, "--video", video15, "-q")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rt-segment: error: forecast bundle ")
    assert "stage 'decoder' has classes that differ from the bundle's" in lines[0]


@pytest.mark.parametrize("argv,needle", [
    (["--visualize", "mask"], "--visualize: {} is a forecast bundle; its views are "
                              "--forecast-view"),
    (["--forecast-view", "split"], "unknown --forecast-view 'split'"),
])
def test_rt_segment_view_flags(bundle, video15, capsys, argv, needle):
    code = run_cli(segment_main, ["--engine", bundle, "--video", video15, "-q"] + argv,
                   prog="rt-segment")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle.format(bundle) in err[0], err


# -- the engine in the real pipeline ------------------------------------------------------------

def test_pipeline_forecasts_every_frame_after_warm_up(oldest_bundle, video15):
    """15 Hz video, 15 Hz bundle: warm-up is the oldest offset (4 frames); copy-oldest makes
    each forecast the decoder of the frame 4 frames back: picked exactly by time."""
    decoded = _decoded(oldest_bundle, video15)
    engine = open_engine(oldest_bundle)
    try:
        items, summary = _run(engine, video15)
    finally:
        engine.close()
    assert len(items) == FRAMES == len(decoded)
    for k, (result, visual) in enumerate(items):
        details = result.details
        if k < 4:
            assert not details.is_forecast and result.class_map is None
            assert details.warmup == (k + 1, 4)
            # a warm-up frame is written as the plain frame (the HUD is at the top)
            np.testing.assert_array_equal(visual[-8:, :fb.SIZE[1]], result.fitted[-8:])
        else:
            assert details.is_forecast and details.warmup is None
            np.testing.assert_array_equal(result.class_map, decoded[k - 4])
            assert details.target_time == pytest.approx(k / 15.0 + 3 / 15.0)
            assert details.picked_times == pytest.approx([(k - 4) / 15.0, (k - 2) / 15.0, k / 15.0])
            assert details.forecast_ms > 0
            assert not np.array_equal(visual[-8:, :fb.SIZE[1]], result.fitted[-8:])
    block = summary["forecast"]
    assert (block["frames_forecast"], block["frames_warmup"]) == (FRAMES - 4, 4)
    assert block["horizon"] == {"frames": 3, "s": pytest.approx(0.2)}
    assert block["past_offsets"]["frames"] == list(OFFSETS)
    assert block["source_rate"] == pytest.approx(15.0) and block["frame_rate"] == 15.0
    assert block["time_error_ms"]["max"] < 1e-6
    assert block["frame_selection"] == "trained_rate" and block["note"] is None
    assert block["latency_ms"]["count"] == FRAMES - 4


def test_another_source_rate_picks_frames_by_time(bundle, video30):
    """30 Hz video, 15 Hz bundle: frames are picked by time (every other one), warm-up is 7
    frames (frame 7's oldest target, -1/30 s, is half a trained interval from frame 0),
    and copy-last makes every forecast the decoder of the current frame."""
    decoded = _decoded(bundle, video30)
    engine = open_engine(bundle, current=True)
    try:
        items, summary = _run(engine, video30)
    finally:
        engine.close()
    assert len(items) == 30
    forecasts = [r for r, _ in items if r.details.is_forecast]
    assert len(forecasts) == 30 - 7 and not any(r.details.is_forecast for r, _ in items[:7])
    for k, (result, _) in enumerate(items):
        np.testing.assert_array_equal(result.details.current_map, decoded[k])
        if k >= 7:
            np.testing.assert_array_equal(result.class_map, decoded[k])
    k = 12  # targets 12/30 - 8/30 and 12/30 - 4/30: frames 4 and 8, every other frame
    assert items[k][0].details.picked_times == pytest.approx([4 / 30.0, 8 / 30.0, 12 / 30.0])
    block = summary["forecast"]
    assert (block["frames_forecast"], block["frames_warmup"]) == (23, 7)
    assert block["source_rate"] == pytest.approx(30.0)
    assert block["frame_selection"] == "nearest_time" and block["current_segmentation"] is True
    assert "picked by nearest capture time" in block["note"] and "30.0 Hz" in block["note"]
    assert block["time_error_ms"]["max"] == pytest.approx(1000 / 30.0)  # frame 7's oldest pick


def test_a_slow_source_warns_once_and_uses_the_nearest_frames(bundle, caplog):
    """5 Hz frames (200 ms apart) for past frames 133 ms apart: a warning, then forecasts from
    the nearest frames (the same frame serves two offsets)."""
    engine = open_engine(bundle)
    frame = np.zeros(fb.SIZE + (3,), np.uint8)
    try:
        with caplog.at_level(logging.WARNING, logger="runtime.backends.native"):
            frames = [engine.step(frame, k * 0.2) for k in range(6)]
        summary = engine.stream_summary()["forecast"]
    finally:
        engine.close()
    warnings = [r for r in caplog.records if "source frames come every 200 ms" in r.getMessage()]
    assert len(warnings) == 1
    assert [f.is_forecast for f in frames] == [False] + [True] * 5
    assert frames[3].picked_times == pytest.approx([0.4, 0.4, 0.6])
    assert summary["source_slower_than_offsets"] is True
    assert summary["frame_selection"] == "nearest_time" and "repeat" in summary["note"]


# -- rt-segment end to end ----------------------------------------------------------------------

def test_rt_segment_writes_forecast_video_and_report(oldest_bundle, video15, tmp_path,
                                                     run_cli_subprocess):
    out, report_path = tmp_path / "out.mp4", tmp_path / "r.json"
    proc = run_cli_subprocess("runtime.cli.segment", "--engine", oldest_bundle, "--video", video15,
                              "--output", out, "--report", report_path)
    assert proc.returncode == 0, proc.stderr
    assert "forecast +0.20 s: 20 frames forecast, 4 warm-up" in proc.stdout
    frames = fb.read_frames(out)
    assert len(frames) == FRAMES  # warm-up frames are written too
    report = json.loads(report_path.read_text())
    assert report["frames"]["processed"] == FRAMES and report["engine"]["task"] == "forecast"
    block = report["forecast"]
    assert (block["frames_forecast"], block["frames_warmup"]) == (FRAMES - 4, 4)
    assert block["horizon"]["s"] == pytest.approx(0.2) and block["frame_rate"] == 15.0
    assert block["time_error_ms"]["max"] is not None and block["latency_ms"]["count"] == 20


def test_side_by_side_view_doubles_the_width(bundle, video15, tmp_path, capsys):
    sizes = {}
    for view in ("overlay", "side-by-side"):
        out, report_path = tmp_path / (view + ".mp4"), tmp_path / (view + ".json")
        saved = tmp_path / (view + "_frames")
        code = run_cli(segment_main, ["--engine", os.path.dirname(bundle), "--video", video15,
                                      "--output", str(out), "--report", str(report_path),
                                      "--save-frames", str(saved), "--forecast-view", view,
                                      "--no-legend", "-q", "--max-frames", "6"],
                       prog="rt-segment")
        assert code == 0, capsys.readouterr().err
        # every frame is saved; label PNGs (the forecast) only once past warm-up
        assert sorted(os.listdir(str(saved))) == sorted(
            ["{:06d}.jpg".format(i) for i in range(6)] + ["000004_labels.png", "000005_labels.png"])
        report = json.loads(report_path.read_text())
        sizes[view] = report["outputs"][0]["size"]
        assert report["forecast"]["current_segmentation"] is (view == "side-by-side")
        assert report["forecast"]["frames_warmup"] + report["forecast"]["frames_forecast"] == 6
        frames = fb.read_frames(out)
        assert len(frames) == 6 and list(frames[0].shape[:2]) == sizes[view]
    assert sizes == {"overlay": list(fb.SIZE), "side-by-side": [fb.SIZE[0], 2 * fb.SIZE[1]]}
