"""rt-bench on forecast bundles: per-stage timing, interleaving with plain engines, JSON,
end to end through the real pipeline.

Bundles and the plain engine are small real ONNX graphs (tests/forecast_bundles.py) run by
libswiftrt, whose own stage times (features, f2f, decoder) rt-bench reports.
"""
import json
import os

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from runtime import bench, open_engine  # noqa: E402
from runtime.backends.native import NativeForecastEngine  # noqa: E402
from tests import forecast_bundles as fb  # noqa: E402

OFFSETS = (-4, -2, 0)   # 15 Hz: the first forecast comes with the 5th frame


def plain_engine(path, size=fb.SIZE, channels=fb.CHANNELS):
    """A plain segmentation engine: the bundle's features + decoder graphs in one (frame -> class map)."""
    import onnx
    from onnx import TensorProto as TP, helper as h
    from runtime import manifest as manifest_mod
    height, width = size
    weight = np.zeros((channels, 3, 1, 1), np.float32)
    for k in range(3):
        weight[k, k, 0, 0] = 1.0
    bias = np.array([0.0, 0.0, 0.0] + [100.0 + k for k in range(3, channels)], np.float32)
    nodes = [
        h.make_node("Cast", ["frame"], ["x"], to=TP.FLOAT),
        h.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        h.make_node("AveragePool", ["nchw"], ["pooled"], kernel_shape=[fb.STRIDE] * 2,
                    strides=[fb.STRIDE] * 2),
        h.make_node("Conv", ["pooled", "w", "b"], ["scores"]),
        h.make_node("Resize", ["scores", "", "", "sizes"], ["up"], mode="nearest"),
        h.make_node("ArgMax", ["up"], ["ids"], axis=1, keepdims=0),
        h.make_node("Cast", ["ids"], ["class_map"], to=TP.UINT8),
    ]
    graph = h.make_graph(
        nodes, "plain", [h.make_tensor_value_info("frame", TP.UINT8, [1, height, width, 3])],
        [h.make_tensor_value_info("class_map", TP.UINT8, [1, height, width])],
        initializer=[h.make_tensor("w", TP.FLOAT, weight.shape, weight.ravel()),
                     h.make_tensor("b", TP.FLOAT, bias.shape, bias.ravel()),
                     h.make_tensor("sizes", TP.INT64, [4], [1, channels, height, width])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", fb.OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    manifest_mod.Manifest.from_dict({
        "schema_version": 1, "arch": "test-plain", "task": "segmentation",
        "artifact": {"file": os.path.basename(str(path)), "format": "onnx",
                     "sha256": manifest_mod.sha256_file(str(path))},
        "input": fb.frame_input(size), "ignore_id": 255, "precision": "fp32",
        "outputs": [{"name": "class_map", "shape": [1, height, width], "dtype": "uint8",
                     "meaning": "class_map"}],
        "classes": fb.classes()}).write(str(path))
    return str(path)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return fb.build_bundle(tmp_path_factory.mktemp("bench") / "f2f-test_fp32", OFFSETS)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return plain_engine(tmp_path_factory.mktemp("bench") / "plain_fp32.onnx")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return fb.write_video(tmp_path_factory.mktemp("video") / "v15.mp4", 16, 15.0)


def _cli(argv):
    from runtime.cli import bench as cli
    return cli.main(argv)


# -- engine level -------------------------------------------------------------------------

def test_bundle_is_timed_per_stage_after_warm_up(bundle):
    engine = open_engine(bundle, threads=1)
    assert isinstance(engine, NativeForecastEngine)
    try:
        runner = bench.ForecastRunner(engine)
        assert runner.name == "f2f-test_fp32/forecast.json" and runner.kind == "forecast"
        with pytest.raises(RuntimeError, match="warm-up frame"):
            runner.run_once()  # not warmed up: a warm-up frame is never a sample
        engine.reset()
        m = bench.measure([runner], warmup_iters=2, iterations=8, rounds=2, settle_s=0)
        assert runner.priming_frames == 5  # frames 0..4: the 5th serves offsets -4, -2, 0
        entry = bench.results(m)[0][0]
    finally:
        engine.close()
    total = entry["latency_ms"]
    stages = entry["stages"]
    assert stages["order"] == ["features", "f2f", "decoder"]
    lat = stages["latency_ms"]
    assert [lat[k]["count"] for k in stages["order"]] == [8, 8, 8]  # every timed call: all three
    assert all(lat[k]["min"] > 0 for k in stages["order"])  # the core's own stage times
    assert stages["sum_mean_ms"] == pytest.approx(sum(lat[k]["mean"] for k in stages["order"]))
    assert stages["sum_mean_ms"] <= total["mean"] + 1e-6  # stages are inside the timed call
    assert stages["other_mean_ms"] >= 0
    assert entry["sub_timings_ms"] == {}  # no per-stage device timings on the CPU
    info = entry["info"]
    assert info["task"] == "forecast" and info["priming_frames"] == 5
    assert sorted(info["stage_info"]) == ["decoder", "f2f", "features"]
    assert info["stage_info"]["f2f"]["precision"] == "fp32"
    assert info["stage_info"]["f2f"]["backend"] == "native"
    assert "f2f on the 3 concatenated past feature maps" in entry["includes"]
    assert "not decoded" in entry["includes"]


def test_bundle_interleaves_with_a_plain_engine(bundle, plain):
    calls = []
    plain_engine_ = open_engine(plain, threads=1)
    forecast_engine = open_engine(bundle, threads=1)
    try:
        runners = [bench.EngineRunner(plain_engine_, name="plain"),
                   bench.ForecastRunner(forecast_engine, name="bundle")]
        for runner in runners:
            def logged(run=runner.run_once, name=runner.name):
                calls.append(name)
                return run()
            runner.run_once = logged
        m = bench.measure(runners, warmup_iters=1, iterations=4, rounds=2, settle_s=0)
        entries, _ = bench.results(m)
    finally:
        plain_engine_.close()
        forecast_engine.close()
    # warm-up: the plain engine's run_once; the bundle's first warm-up primes its ring instead
    assert calls[0] == "plain"
    timed = calls[1:]  # every block opens with one untimed re-warm call (bench.DEFAULT_REWARM)
    assert timed == ["plain"] * 3 + ["bundle"] * 3 + ["bundle"] * 3 + ["plain"] * 3
    first, forecast = entries
    assert first["stages"] is None and forecast["stages"]["order"][0] == "features"
    assert forecast["ratio_to_first"] == pytest.approx(
        forecast["latency_ms"]["mean"] / first["latency_ms"]["mean"])
    assert forecast["ratio_to_first_paired"] is not None


def test_cli_json_has_the_stage_block_and_bundle_environment(bundle, plain, tmp_path, capsys):
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    folder = os.path.dirname(bundle)
    assert _cli(["--engine", plain, "--engine", folder, "--iterations", "4", "--rounds", "2",
                 "--warmup", "1", "--threads", "1", "--json", str(out_json),
                 "--markdown", str(out_md)]) == 0
    printed = capsys.readouterr().out
    rep = json.loads(out_json.read_text())
    plain_entry, entry = rep["runners"]
    assert entry["name"] == "f2f-test_fp32/forecast.json" and entry["kind"] == "forecast"
    assert plain_entry["stages"] is None
    stages = entry["stages"]
    assert stages["order"] == ["features", "f2f", "decoder"]
    for key in ("features", "f2f", "decoder"):
        assert stages["latency_ms"][key]["count"] == 4
    assert stages["latency_ms"]["decoder"]["min"] > 0
    assert stages["sum_mean_ms"] <= entry["latency_ms"]["mean"] + 1e-6
    assert entry["ratio_to_first"] == pytest.approx(
        entry["latency_ms"]["mean"] / plain_entry["latency_ms"]["mean"])
    assert rep["end_to_end"] is None and rep["end_to_end_runs"] is None
    assert rep["forecast_stream_ratio"] is None
    bundles = rep["environment"]["forecast_bundles"]
    assert bundles == [{"name": "f2f-test_fp32/forecast.json", "bundle": bundle,
                        "arch": "test-f2f", "precision": "fp32",
                        "stages": dict((k, {"precision": "fp32", "backend": "native"})
                                       for k in ("features", "f2f", "decoder"))}]
    # console and Markdown: stage rows and the bundle in the environment
    for text in (printed, out_md.read_text()):
        assert "f2f-test_fp32/forecast.json" in text
        assert "forecast bundle f2f-test_fp32/forecast.json (test-f2f, fp32): features fp32 " \
               "(native), f2f fp32 (native), decoder fp32 (native)" in text
    row = [l for l in printed.splitlines() if l.startswith("f2f-test_fp32/forecast.json")
           and " decoder " in l]
    assert len(row) == 1
    assert "| f2f-test_fp32/forecast.json | f2f |" in out_md.read_text()


# -- end to end ---------------------------------------------------------------------------

def test_end_to_end_runs_every_engine_with_forecast_counts(bundle, plain, video, tmp_path,
                                                           capsys):
    out_json = tmp_path / "r.json"
    assert _cli(["--engine", plain, "--engine", bundle, "--iterations", "2", "--rounds", "1",
                 "--warmup", "1", "--threads", "1", "--video", video,
                 "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    rep = json.loads(out_json.read_text())
    runs = rep["end_to_end_runs"]
    assert [r["name"] for r in runs] == ["plain_fp32.onnx", "f2f-test_fp32/forecast.json"]
    assert rep["end_to_end"] == runs[0]
    first, forecast = runs
    assert first["kind"] == "engine" and first["forecast"] is None
    assert forecast["kind"] == "forecast"
    for run in runs:
        assert run["frames"]["processed"] == 16 and run["fps"] > 0 and run["fps_steady"] > 0
        for stage in ("read", "preprocess", "inference", "postprocess", "capture_to_result"):
            assert run["latency_ms"][stage]["count"] == 16
    block = forecast["forecast"]
    assert (block["frames_forecast"], block["frames_warmup"]) == (12, 4)
    assert block["frame_selection"] == "trained_rate"
    assert forecast["fps_ratio_to_first"] == pytest.approx(forecast["fps"] / first["fps"])
    assert rep["forecast_stream_ratio"] == [{
        "plain": "plain_fp32.onnx", "forecast": "f2f-test_fp32/forecast.json",
        "fps_plain": first["fps"], "fps_forecast": forecast["fps"],
        "fps_ratio": pytest.approx(forecast["fps"] / first["fps"]),
        "fps_steady_ratio": pytest.approx(forecast["fps_steady"] / first["fps_steady"])}]
    assert "12 frames forecast, 4 warm-up" in printed
    assert "forecast stream FPS / plain stream FPS: " in printed


def test_stream_ratio_only_against_a_plain_first_engine():
    plain = {"name": "p", "kind": "engine", "fps": 100.0, "fps_steady": 110.0}
    fc = {"name": "f", "kind": "forecast", "fps": 90.0, "fps_steady": 88.0}
    pairs = bench.stream_ratios([plain, dict(plain, name="q", fps=50.0), fc])
    assert len(pairs) == 1 and pairs[0]["forecast"] == "f"
    assert pairs[0]["fps_ratio"] == pytest.approx(0.9)
    assert pairs[0]["fps_steady_ratio"] == pytest.approx(0.8)
    assert bench.stream_ratios([fc, plain]) is None  # first is a bundle: no plain reference
    assert bench.stream_ratios([plain]) is None


def test_broken_bundle_is_one_line(run_cli_subprocess, tmp_path):
    from tests.test_cli_errors import assert_one_line_error
    path = fb.build_bundle(tmp_path / "broken", OFFSETS)
    os.remove(os.path.join(os.path.dirname(path), "f2f.onnx"))
    proc = run_cli_subprocess("runtime.cli.bench", "--engine", path, "--iterations", "1",
                              timeout=120)
    assert_one_line_error(proc, "f2f.onnx is missing")
