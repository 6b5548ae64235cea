"""libswiftrt's OpenVINO backend: same engines, same results as its ONNX Runtime backend; clear errors;
rt-bench side by side."""
import json
import logging
import os

import numpy as np
import pytest

from runtime.errors import UserError

pytest.importorskip("openvino")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(REPO, "checkpoints", "swiftnet-rn18_synthetic.pt")


def _frames(size, count=2, seed=0):
    from export.scenes import render_scene
    return [render_scene(seed, i, size=size)[0] for i in range(count)]


def _onnxruntime_in_the_core():
    from tests.conftest import core_onnx_backend
    if core_onnx_backend() != "onnxruntime":
        pytest.skip("libswiftrt was built without its ONNX Runtime backend (no C API header)")


def _agreement(path, frames, **options):
    """Per frame, the share of pixels whose class is the same on OpenVINO and ONNX Runtime."""
    from runtime import open_engine
    ort = open_engine(path, backend="onnxruntime", **options)
    ov = open_engine(path, backend="openvino", **options)
    try:
        assert ov.describe()["core_backend"].startswith("openvino")
        return [np.mean(ort.segment(f).class_map == ov.segment(f).class_map) for f in frames]
    finally:
        ort.close()
        ov.close()


def test_fp32_logits_match_onnxruntime(rn18_logits_engine):
    """Host normalization and the argmax of the logits in the core, on both backends."""
    _onnxruntime_in_the_core()
    agree = _agreement(rn18_logits_engine, _frames((200, 400), 3), threads=1)
    assert min(agree) >= 0.999, agree


def test_outputs_are_not_overwritten_by_the_next_run(rn18_engine):
    from runtime import open_engine
    engine = open_engine(rn18_engine, backend="openvino", threads=1)
    try:
        frames = _frames(engine.size)
        first = engine.segment(frames[0]).class_map
        kept = first.copy()
        engine.segment(frames[1])
        np.testing.assert_array_equal(first, kept)
        assert engine.describe()["core_backend"].startswith("openvino")
    finally:
        engine.close()


@pytest.mark.slow
def test_int8_engine_on_openvino_agrees_with_onnxruntime(tmp_path):
    """The trained demo network, INT8 in the plain QDQ form: both runtimes give the same map."""
    pytest.importorskip("torch")
    _onnxruntime_in_the_core()
    from calib.int8 import Int8Options, export_int8
    from export.api import export
    size = (128, 256)
    fp32, out = str(tmp_path / "rn18_fp32.onnx"), str(tmp_path / "rn18_int8.onnx")
    export("swiftnet-rn18", CHECKPOINT, size, fp32, parity_images=2, log=lambda message: None)
    export_int8(fp32, out, "synthetic", Int8Options(count=8, flavor="trt", agreement_images=2,
                check_latency=False, progress=False, log=lambda message: None))
    agree = _agreement(out, _frames(size, 3, 50), threads=2)
    assert min(agree) > 0.98, agree


def test_cpu_flavor_int8_warns(rn18_engine, tmp_path, caplog):
    import shutil
    from runtime import open_engine
    from runtime.manifest import Manifest
    copy = str(tmp_path / "cpu_flavor.onnx")
    shutil.copyfile(rn18_engine, copy)
    Manifest.load(rn18_engine).derive(quantization={"flavor": "cpu"}).write(copy)
    for path, warned in ((copy, True), (rn18_engine, False)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="runtime.backends"):
            open_engine(path, backend="openvino", threads=1).close()
        assert any("--flavor trt" in r.getMessage() for r in caplog.records) == warned


def test_clear_errors(rn18_engine, tmp_path):
    import shutil
    from runtime import open_engine
    from runtime.manifest import Manifest, sha256_file
    plan = str(tmp_path / "x.plan")
    shutil.copyfile(rn18_engine, plan)
    manifest = Manifest.load(rn18_engine)
    manifest.derive(artifact=dict(manifest.to_dict()["artifact"], file="x.plan")).write(plan)
    with pytest.raises(UserError, match="the openvino backend runs .onnx engines, not"):
        open_engine(plan, backend="openvino")
    broken = str(tmp_path / "broken.onnx")
    with open(broken, "wb") as handle:
        handle.write(b"not onnx")
    manifest.derive(artifact={"file": "broken.onnx", "format": "onnx", "sha256": sha256_file(broken)}
                    ).write(broken)
    with pytest.raises(UserError, match="OpenVINO cannot compile .*broken.onnx") as info:
        open_engine(broken, backend="openvino")
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="openvino backend does not use them"):
        open_engine(rn18_engine, backend="openvino", providers=["cpu"])


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
    core = dict((b["name"], b["version"]) for b in rep["environment"]["libswiftrt"]["backends"])
    assert core["openvino"] == rep["runners"][1]["info"]["core_backend"].split()[1]


def test_rt_bench_backend_count_must_match(rn18_engine, run_cli_subprocess):
    result = run_cli_subprocess("runtime.cli.bench", "--engine", rn18_engine, "--engine", rn18_engine,
                                "--engine", rn18_engine, "--backend", "onnxruntime",
                                "--backend", "openvino", "-n", "1")
    assert result.returncode != 0
    assert "once per --engine (2 given for 3 engines)" in result.stderr
    assert "Traceback" not in result.stderr


def test_forecast_bundle_stages_on_openvino(forecast_bundle):
    """All three stages of a bundle (the MatMul deformable form included) on OpenVINO: same forecast."""
    _onnxruntime_in_the_core()
    from export.scenes import render_sequence
    from runtime import open_engine
    ort = open_engine(forecast_bundle, backend="onnxruntime", threads=1)
    ov = open_engine(forecast_bundle, backend="openvino", threads=1)
    try:
        assert ov.describe()["core_backend"].startswith("openvino")
        count = 1 - ort.past_offsets[0]
        frames = [f[0] for f in render_sequence(3, 0, length=count, size=ort.size)]
        times = [k / ort.frame_rate for k in range(count)]
        a = [ort.step(f, t) for f, t in zip(frames, times)][-1]
        b = [ov.step(f, t) for f, t in zip(frames, times)][-1]
        assert a.is_forecast and b.is_forecast
        assert np.mean(a.class_map == b.class_map) > 0.999
    finally:
        ort.close()
        ov.close()
