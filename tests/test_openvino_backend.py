"""The OpenVINO backend: same engines, same results as ONNX Runtime; clear errors; rt-bench side by side."""
import json
import logging
import os
import sys

import numpy as np
import pytest

from runtime.errors import UserError

pytest.importorskip("openvino")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(REPO, "checkpoints", "swiftnet-rn18_synthetic.pt")


def _frames(size, count=2, seed=0):
    from export.scenes import render_scene
    return [render_scene(seed, i, size=size)[0] for i in range(count)]


def test_fp32_logits_match_onnxruntime(rn18_logits_engine):
    from runtime.backends import open_backend
    from runtime.manifest import Manifest
    manifest = Manifest.load(rn18_logits_engine)
    ort = open_backend(rn18_logits_engine, manifest, threads=1)
    ov = open_backend(rn18_logits_engine, manifest, backend="openvino", threads=1)
    assert ov.name == "openvino" and ov.describe()["precision_hint"] == "f32"
    assert [t.name for t in ov.inputs] == [t.name for t in ort.inputs]
    assert [t.name for t in ov.outputs] == [t.name for t in ort.outputs]
    x = np.random.RandomState(0).randn(*ort.inputs[0].shape).astype(np.float32)
    a = ort.run({ort.inputs[0].name: x})
    b = ov.run({ov.inputs[0].name: x})
    name = ort.outputs[0].name
    assert b[name].dtype == np.float32 and b[name].shape == a[name].shape
    np.testing.assert_allclose(b[name], a[name], rtol=1e-3, atol=1e-3)


def test_outputs_are_not_overwritten_by_the_next_run(rn18_engine):
    from runtime.engine import Engine
    engine = Engine(rn18_engine, backend="openvino", threads=1)
    frames = _frames(engine.size)
    first = engine.segment(frames[0]).class_map
    kept = first.copy()
    engine.segment(frames[1])
    np.testing.assert_array_equal(first, kept)
    assert engine.describe()["backend"] == "openvino"


@pytest.mark.slow
def test_int8_engine_on_openvino_agrees_with_onnxruntime(tmp_path):
    """The trained demo network, INT8 in the plain QDQ form: both runtimes give the same map."""
    pytest.importorskip("torch")
    from calib.int8 import Int8Options, export_int8
    from export.api import export
    from runtime.engine import Engine
    size = (128, 256)
    fp32, out = str(tmp_path / "rn18_fp32.onnx"), str(tmp_path / "rn18_int8.onnx")
    export("swiftnet-rn18", CHECKPOINT, size, fp32, parity_images=2, log=lambda message: None)
    export_int8(fp32, out, "synthetic", Int8Options(count=8, flavor="trt", agreement_images=2,
                check_latency=False, progress=False, log=lambda message: None))
    ort = Engine(out, threads=2)
    ov = Engine(out, backend="openvino", threads=2)
    agree = [np.mean(ort.segment(f).class_map == ov.segment(f).class_map) for f in _frames(size, 3, 50)]
    assert min(agree) > 0.98, agree


def test_cpu_flavor_int8_warns(rn18_engine, tmp_path, caplog):
    from runtime.backends import open_backend
    from runtime.manifest import Manifest
    manifest = Manifest.load(rn18_engine).derive(quantization={"flavor": "cpu"})
    with caplog.at_level(logging.WARNING, logger="runtime.backends"):
        open_backend(rn18_engine, manifest, backend="openvino", threads=1)
    assert any("--flavor trt" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="runtime.backends"):
        open_backend(rn18_engine, Manifest.load(rn18_engine), backend="openvino", threads=1)
    assert not caplog.records


def test_clear_errors(rn18_engine, tmp_path, monkeypatch):
    from runtime.backends.openvino import OpenVinoBackend
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"not an engine")
    with pytest.raises(UserError, match="runs .onnx engines"):
        OpenVinoBackend(str(plan))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(UserError, match="OpenVINO cannot compile"):
        OpenVinoBackend(str(broken))
    from runtime.backends import open_backend
    with pytest.raises(UserError, match="openvino backend does not use them"):
        open_backend(rn18_engine, backend="openvino", providers=["cpu"])
    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.setitem(sys.modules, "openvino.runtime", None)
    with pytest.raises(UserError, match=r"OpenVINO is not installed \(pip install openvino\)"):
        OpenVinoBackend(rn18_engine)


def test_rt_bench_one_file_on_two_backends(rn18_engine, tmp_path):
    from runtime.cli import bench as cli
    from tests.conftest import core_onnx_backend
    if core_onnx_backend() != "onnxruntime":
        pytest.skip("libswiftrt was built without its ONNX Runtime backend (no C API header)")
    out = tmp_path / "r.json"
    code = cli.main(["--engine", rn18_engine, "--engine", rn18_engine, "--backend", "onnxruntime",
                     "--backend", "openvino", "--iterations", "4", "--rounds", "2", "--warmup", "1",
                     "--threads", "1", "-q", "--json", str(out)])
    assert code == 0
    rep = json.loads(out.read_text())
    names = [r["name"] for r in rep["runners"]]
    assert names == ["swiftnet-rn18_fp32.onnx [onnxruntime]", "swiftnet-rn18_fp32.onnx [openvino]"]
    # Both in libswiftrt, each on the core backend asked for.
    assert [r["info"]["backend"] for r in rep["runners"]] == ["native", "native"]
    assert [r["info"]["core_backend"].split()[0] for r in rep["runners"]] == ["onnxruntime", "openvino"]
    assert rep["runners"][1]["includes"].startswith("libswiftrt srt_engine_run (openvino ")
    assert rep["environment"]["openvino"]


def test_rt_bench_backend_count_must_match(rn18_engine, run_cli_subprocess):
    result = run_cli_subprocess("runtime.cli.bench", "--engine", rn18_engine, "--engine", rn18_engine,
                                "--engine", rn18_engine, "--backend", "onnxruntime",
                                "--backend", "openvino", "-n", "1")
    assert result.returncode != 0
    assert "once per --engine (2 given for 3 engines)" in result.stderr
    assert "Traceback" not in result.stderr


def test_forecast_bundle_stages_on_openvino(forecast_bundle):
    """All three stages of a bundle (the MatMul deformable form included) on OpenVINO: same forecast."""
    from runtime.forecast import ForecastBundle
    from export.scenes import render_sequence
    ort, ov = ForecastBundle(forecast_bundle, threads=1), ForecastBundle(forecast_bundle, backend="openvino",
                                                                           threads=1)
    assert set(b.name for b in ov.backends.values()) == {"openvino"}
    frames = [f[0] for f in render_sequence(3, 0, length=len(ort.past_offsets), size=ort.size)]
    a = [ort.features(f)[0] for f in frames]
    b = [ov.features(f)[0] for f in frames]
    np.testing.assert_allclose(b[-1], a[-1], rtol=1e-3, atol=2e-3)
    future_a, future_b = ort.forecast(a), ov.forecast(b)
    np.testing.assert_allclose(future_b, future_a, rtol=1e-3, atol=5e-3)
    assert np.mean(ort.decode(future_a) == ov.decode(future_b)) > 0.999
