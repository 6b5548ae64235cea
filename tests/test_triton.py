"""rt-triton's model repository served by a real Triton Inference Server (the nvidia-pytriton
wheel's tritonserver, on this CPU), queried through tritonclient over HTTP and gRPC.

One server per module: a segmentation engine (2 instances, dynamic batching) and an outlier
engine. The Python models run in ``.venv-triton`` (numpy < 2, ONNX Runtime, OpenCV; `make venv`
builds it), swiftrt from this checkout (the model's python_path).
"""
import os
import threading

import cv2
import numpy as np
import pytest

from tests.conftest import REPO

tritonclient_http = pytest.importorskip("tritonclient.http", reason="tritonclient is not installed "
                                        "(pip install 'swiftrt[triton]')")
tritonclient_grpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

from runtime.errors import UserError  # noqa: E402
from runtime.manifest import Manifest, sha256_file  # noqa: E402
from runtime.serving import triton  # noqa: E402

TRITON_ENV = os.environ.get("SWIFTRT_TRITON_PYTHON_ENV", os.path.join(REPO, ".venv-triton"))
FRAME_SIZE = (150, 300)  # not the network's 128x256: the model fits frames like rt-segment


def _server_or_skip():
    from runtime.serving.triton_server import wheel_paths
    try:
        wheel_paths()
    except UserError as exc:
        pytest.skip(str(exc))
    if not os.path.exists(os.path.join(TRITON_ENV, "bin", "python")):
        pytest.skip("no Python environment for Triton's Python models at {} (make venv builds "
                    ".venv-triton; or set SWIFTRT_TRITON_PYTHON_ENV)".format(TRITON_ENV))


@pytest.fixture(scope="module")
def outlier_engine(tmp_path_factory):
    pytest.importorskip("torch")
    from export.api import export
    out = str(tmp_path_factory.mktemp("engines") / "ood_fp32.onnx")
    export("swiftnet-rn18-ood", None, (64, 128), out, parity_images=2, log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def server(rn18_engine, outlier_engine, tmp_path_factory):
    _server_or_skip()
    from runtime.serving.triton_server import LocalTritonServer
    repo = str(tmp_path_factory.mktemp("triton") / "models")
    triton.write_repository(rn18_engine, repo, name="seg", instances=2, threads=1, python_path=REPO)
    triton.write_repository(outlier_engine, repo, name="ood", threads=1, python_path=REPO)
    with LocalTritonServer(repo, str(tmp_path_factory.mktemp("triton-work")), TRITON_ENV) as srv:
        yield srv


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Road scenes as PNG files (lossless: Triton and rt-segment see the same pixels)."""
    from export.scenes import render_scene
    folder = tmp_path_factory.mktemp("frames")
    paths = []
    for index in range(4):
        image = render_scene(seed=5, index=index, size=FRAME_SIZE)[0]
        path = str(folder / "{:03d}.png".format(index))
        cv2.imwrite(path, image)
        paths.append(path)
    return str(folder), [cv2.imread(p) for p in paths]


@pytest.fixture(scope="module")
def rt_segment_maps(rn18_engine, frames, tmp_path_factory):
    """Class maps rt-segment saves for the same frames."""
    from runtime.cli.segment import main
    out = tmp_path_factory.mktemp("rt-segment")
    assert main(["--engine", rn18_engine, "--images", frames[0], "--save-frames", str(out),
                 "--quiet"]) == 0
    return [cv2.imread(str(out / "{:06d}_labels.png".format(i)), cv2.IMREAD_UNCHANGED)
            for i in range(len(frames[1]))]


def _infer(module, url, model, frame, outputs=("class_map",)):
    client = module.InferenceServerClient(url)
    batch = frame[None] if frame.ndim == 3 else frame
    inp = module.InferInput(triton.FRAME_INPUT, list(batch.shape), "UINT8")
    inp.set_data_from_numpy(batch)
    result = client.infer(model, [inp])
    return [result.as_numpy(name) for name in outputs]


def test_class_maps_are_rt_segments_over_http_and_grpc(server, frames, rt_segment_maps):
    for frame, expected in zip(frames[1], rt_segment_maps):
        over_http = _infer(tritonclient_http, server.http_url, "seg", frame)[0]
        over_grpc = _infer(tritonclient_grpc, server.grpc_url, "seg", frame)[0]
        assert over_http.shape == (1,) + expected.shape and over_http.dtype == np.uint8
        np.testing.assert_array_equal(over_http[0], expected)
        np.testing.assert_array_equal(over_grpc[0], expected)
    # a batch of frames in one request: each frame's own map
    batch = np.stack(frames[1][:3])
    maps = _infer(tritonclient_grpc, server.grpc_url, "seg", batch)[0]
    np.testing.assert_array_equal(maps, np.stack(rt_segment_maps[:3]))


def test_outlier_scores_are_the_engines(server, frames, outlier_engine):
    import runtime
    engine = runtime.open_engine(outlier_engine)
    try:
        for frame in frames[1][:2]:
            class_map, score = _infer(tritonclient_http, server.http_url, "ood", frame,
                                      outputs=("class_map", "outlier_score"))
            expected = engine.segment(frame)
            np.testing.assert_array_equal(class_map[0], expected.class_map)
            assert score.dtype == np.float32 and score.shape == (1, 64, 128)
            np.testing.assert_allclose(score[0], expected.outlier_score, atol=1e-6)
    finally:
        engine.close()


def test_eight_concurrent_clients_get_their_own_frames_maps(server, frames, rt_segment_maps):
    errors, done = [], []

    def client(index):
        module, url = ((tritonclient_http, server.http_url) if index % 2
                       else (tritonclient_grpc, server.grpc_url))
        try:
            for step in range(3):
                which = (index + step) % len(frames[1])
                got = _infer(module, url, "seg", frames[1][which])[0][0]
                if not np.array_equal(got, rt_segment_maps[which]):
                    errors.append("client {} frame {}: wrong class map".format(index, which))
            done.append(index)
        except Exception as exc:  # reported below, with the client it happened in
            errors.append("client {}: {}".format(index, exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and sorted(done) == list(range(8))
    stats = tritonclient_http.InferenceServerClient(server.http_url).get_inference_statistics("seg")
    counted = stats["model_stats"][0]
    assert counted["inference_count"] >= 24  # every request ran (and batches were formed from them)


def test_readiness_and_metadata_come_from_the_manifest(server, rn18_engine):
    client = tritonclient_http.InferenceServerClient(server.http_url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("seg") and client.is_model_ready("ood")
    meta = client.get_model_metadata("seg")
    manifest = Manifest.load(rn18_engine)
    height, width = manifest.input.size
    assert meta["inputs"] == [{"name": "FRAME", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]
    assert meta["outputs"] == [{"name": manifest.output("class_map").name, "datatype": "UINT8",
                                "shape": [-1, height, width]}]
    config = client.get_model_config("seg")
    assert config["max_batch_size"] == 8 and "dynamic_batching" in config
    assert config["instance_group"][0]["count"] == 2
    import json
    assert json.loads(config["parameters"]["classes"]["string_value"]) == manifest.class_names
    grpc_meta = tritonclient_grpc.InferenceServerClient(server.grpc_url).get_model_metadata("ood")
    assert [o.name for o in grpc_meta.outputs] == ["class_map", "outlier_score"]


def test_malformed_requests_are_errors_and_the_server_stays_up(server, frames, rt_segment_maps):
    client = tritonclient_http.InferenceServerClient(server.http_url)
    bad = [
        (np.zeros((1, 20, 20, 3), np.float32), "FP32"),  # wrong dtype: refused by Triton
        (np.zeros((1, 20, 20, 4), np.uint8), "UINT8"),   # four channels: refused by Triton
        (np.zeros((1, 0, 20, 3), np.uint8), "UINT8"),    # an empty frame: refused by the model
    ]
    for array, dtype in bad:
        inp = tritonclient_http.InferInput(triton.FRAME_INPUT, list(array.shape), dtype)
        inp.set_data_from_numpy(array)
        with pytest.raises(InferenceServerException):
            client.infer("seg", [inp])
    with pytest.raises(InferenceServerException, match="each side"):
        grpc = tritonclient_grpc.InferenceServerClient(server.grpc_url)
        inp = tritonclient_grpc.InferInput(triton.FRAME_INPUT, [1, 0, 20, 3], "UINT8")
        inp.set_data_from_numpy(np.zeros((1, 0, 20, 3), np.uint8))
        grpc.infer("seg", [inp])
    assert server.alive() and client.is_model_ready("seg")
    got = _infer(tritonclient_http, server.http_url, "seg", frames[1][0])[0][0]
    np.testing.assert_array_equal(got, rt_segment_maps[0])


def test_plan_gets_a_tensorrt_plan_model_with_the_manifests_tensors(rn18_engine, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2
    plan = tmp_path / "seg_fp16.plan"
    plan.write_bytes(b"PLAN-BYTES")  # never loaded here: only its config is checked
    manifest = Manifest.load(rn18_engine).derive(
        artifact={"file": plan.name, "format": "tensorrt", "sha256": sha256_file(str(plan))},
        precision="fp16",
        tensorrt={"version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7"})
    manifest.write(str(plan))
    written = triton.write_repository(str(plan), str(tmp_path / "models"))
    assert [os.path.basename(w) for w in written] == ["seg_fp16", "seg_fp16_plan"]
    config = model_config_pb2.ModelConfig()
    text_format.Parse(open(os.path.join(written[1], "config.pbtxt")).read(), config)
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 0
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("frame", model_config_pb2.TYPE_UINT8, [1, 128, 256, 3])]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [
        ("class_map", model_config_pb2.TYPE_UINT8, [1, 128, 256])]
    assert open(os.path.join(written[1], "1", "model.plan"), "rb").read() == b"PLAN-BYTES"
    python = model_config_pb2.ModelConfig()
    text_format.Parse(open(os.path.join(written[0], "config.pbtxt")).read(), python)
    assert python.backend == "python" and python.dynamic_batching is not None


def test_rt_triton_refuses_to_replace_a_model_and_bad_options(rn18_engine, tmp_path, capsys):
    from runtime.cli.common import run_cli
    from runtime.cli.triton import main
    repo = str(tmp_path / "models")
    assert run_cli(main, [rn18_engine, repo, "--name", "seg", "-q"]) == 0
    before = open(os.path.join(repo, "seg", "config.pbtxt")).read()
    assert run_cli(main, [rn18_engine, repo, "--name", "seg"]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert open(os.path.join(repo, "seg", "config.pbtxt")).read() == before
    assert run_cli(main, [rn18_engine, repo, "--name", "x", "--instances", "0"]) == 2
    assert run_cli(main, [rn18_engine, repo, "--name", "bad name"]) == 2
    assert run_cli(main, [rn18_engine, os.path.dirname(rn18_engine)]) == 2  # the engine's folder
    assert sorted(os.listdir(repo)) == ["seg"]  # nothing half-written
