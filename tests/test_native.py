"""The native core (libswiftrt) under the Python runtime: parity with ONNX Runtime on the demo
checkpoints' engines, every class-map / frame dtype an export can produce, the CLIs on
``--backend native``, and one-line errors.

The library is built here when it is missing (the same CMake configuration as ``make native``),
so these tests never skip for want of it.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from runtime.manifest import DIGEST_KEY, dump_manifest, write_manifest_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_SRC = os.path.join(REPO, "runtime", "native")
BUILD = os.path.join(REPO, "build", "native")
ENGINES = os.path.join(REPO, "build", "native-engines")
SIZE = (128, 256)

pytest.importorskip("openvino")


def _build_library():
    """Configure and build build/native as ``make native-lib`` does (the library only)."""
    import onnxruntime
    import openvino
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    cmake_dir = os.path.join(os.path.dirname(openvino.__file__), "cmake")
    subprocess.check_call(["cmake", "-S", NATIVE_SRC, "-B", BUILD, "-G", "Ninja", "-Wno-dev",
                           "-DCMAKE_BUILD_TYPE=Release", "-DOpenVINO_DIR=" + cmake_dir,
                           "-DONNXRUNTIME_ROOT=" + os.path.join(os.path.dirname(onnxruntime.__file__),
                                                                "capi"),
                           "-DSWIFTRT_PYTHON=" + sys.executable,
                           "-DSWIFTRT_TEST_ENGINES=" + ENGINES], env=env)
    subprocess.check_call(["cmake", "--build", BUILD, "-j2", "--target", "swiftrt"], env=env)


@pytest.fixture(scope="session")
def native_library():
    from runtime import libswiftrt
    if not os.environ.get("SWIFTRT_LIBRARY") and not os.path.exists(libswiftrt.BUILD_LIBRARY):
        _build_library()
    libswiftrt.load_library()
    return libswiftrt.library_path()


@pytest.fixture(scope="session")
def engines(native_library):
    """The demo checkpoints' engines at 128x256 (seg, logits, ood, bundle, bad), shared with ctest."""
    pytest.importorskip("torch")
    sys.path.insert(0, os.path.join(NATIVE_SRC, "tests"))
    try:
        import make_engines
    finally:
        sys.path.pop(0)
    return make_engines.make(ENGINES, SIZE, {"seg", "logits", "ood", "bundle", "bad", "frames",
                                             "trt82", "trt103"})


def _scenes(count, size, seed=5, outliers=False):
    from export.scenes import render_scene
    return [render_scene(seed, i, size=size, outliers=outliers)[0] for i in range(count)]


def _agreement(a, b):
    return float(np.count_nonzero(a == b)) / a.size


class _Plain(object):
    """What a plain ONNX Runtime session gives for one frame (the reference the core must meet)."""

    def __init__(self, frame, class_map, outlier_score):
        self.frame, self.class_map, self.outlier_score = frame, class_map, outlier_score


def _onnxruntime(path, frames, resize=None):
    """The frames through a plain InferenceSession on the core's input tensors: argmax of the
    logits or the class map output, the outlier score output as it is."""
    from calib.ort_session import cpu_session
    from runtime.core_preprocess import Preprocessor
    from runtime.manifest import Manifest
    manifest = Manifest.load(path)
    session = cpu_session(path, threads=2)
    pre = Preprocessor(manifest.input, resize=resize)
    out = {}
    for meaning in ("class_map", "logits", "outlier_score"):
        found = manifest.output(meaning)
        if found is not None:
            out[meaning] = found.name
    results = []
    for frame in frames:
        tensor, fitted, _ = pre(frame)
        values = dict(zip(out, session.run(list(out.values()), {manifest.input.name: tensor})))
        class_map = (values["class_map"][0] if "class_map" in values
                     else np.argmax(values["logits"][0], axis=0)).astype(np.uint8)
        score = values.get("outlier_score")
        results.append(_Plain(fitted, class_map, None if score is None else
                              score.reshape(class_map.shape).astype(np.float32)))
    return results


def _segment_both(path, frames, resize=None):
    """(ONNX Runtime results, native results) of the same frames through the same engine file."""
    from runtime.backends.native import NativeEngine
    nat = NativeEngine(path, threads=2, resize=resize)
    try:
        return _onnxruntime(path, frames, resize), [nat.segment(f) for f in frames]
    finally:
        nat.close()


@pytest.mark.parametrize("resize", [None, "letterbox", "crop"])
def test_segmentation_matches_onnxruntime(engines, resize):
    # Camera-sized frames: the core resizes them itself (OpenCV-exact bilinear).
    frames = _scenes(3, (512, 1024)) + _scenes(2, (300, 500), seed=6) + _scenes(1, SIZE, seed=7)
    ort, nat = _segment_both(engines["seg"], frames, resize=resize)
    for a, b in zip(ort, nat):
        assert b.class_map.dtype == np.uint8 and b.class_map.shape == a.class_map.shape
        assert _agreement(a.class_map, b.class_map) >= 0.9999
        # The picture shown is the one the network saw.
        assert np.array_equal(a.frame, b.frame)
    assert len(np.unique(np.concatenate([r.class_map.ravel() for r in nat]))) > 3


def test_host_normalized_tensor_and_logits_match_onnxruntime(engines):
    """A float NCHW input normalized on the host (by the core) and logits argmaxed by the core."""
    manifest = json.load(open(engines["logits"] + ".json"))
    assert manifest["input"]["normalization"]["in_graph"] is False
    assert manifest["input"]["layout"] == "NCHW"
    ort, nat = _segment_both(engines["logits"], _scenes(3, (256, 512)))
    for a, b in zip(ort, nat):
        assert _agreement(a.class_map, b.class_map) >= 0.9999


def test_outlier_scores_and_threshold_match(engines):
    frames = _scenes(4, (256, 512), seed=8, outliers=True)
    ort, nat = _segment_both(engines["ood"], frames)
    for a, b in zip(ort, nat):
        assert _agreement(a.class_map, b.class_map) >= 0.9999
        assert b.outlier_score.dtype == np.float32
        assert np.abs(a.outlier_score - b.outlier_score).max() <= 1e-3
        # The core's mask is the manifest's threshold applied to its own score.
        assert np.array_equal(b.outputs["outlier_mask"], (b.outlier_score > 0.5).astype(np.uint8))


def test_outlier_threshold_option(engines):
    from runtime.backends.native import CoreEngine
    core = CoreEngine(engines["ood"], outlier_threshold=0.05)
    try:
        assert abs(core.info.outlier_threshold - 0.05) < 1e-7
        out = core.run(_scenes(1, (256, 512), seed=9, outliers=True)[0], outlier=True)
        assert core.last_result.outlier_pixels == int(np.count_nonzero(out["outlier_score"] > 0.05))
    finally:
        core.close()


def _variant(src, folder, name, output_dtype=None, input_float=False):
    """A copy of an exported engine whose class map leaves the graph as ``output_dtype`` and/or
    whose frame input is float32 NHWC, with its manifest saying so (what exports for other
    TensorRT targets produce)."""
    import hashlib
    import onnx
    from onnx import TensorProto, helper
    types = {"int32": TensorProto.INT32, "int64": TensorProto.INT64, "float32": TensorProto.FLOAT,
             "uint8": TensorProto.UINT8}
    model = onnx.load(src)
    manifest = json.load(open(src + ".json"))
    graph = model.graph
    if output_dtype:
        out = [o for o in manifest["outputs"] if o["meaning"] == "class_map"][0]
        value = [o for o in graph.output if o.name == out["name"]][0]
        for node in graph.node:  # the producer now writes an internal tensor
            node.output[:] = [out["name"] + "_u8" if n == out["name"] else n for n in node.output]
        graph.node.append(helper.make_node("Cast", [out["name"] + "_u8"], [out["name"]],
                                           to=types[output_dtype]))
        value.type.tensor_type.elem_type = types[output_dtype]
        out["dtype"] = output_dtype
    if input_float:
        inp = manifest["input"]
        value = [i for i in graph.input if i.name == inp["name"]][0]
        value.type.tensor_type.elem_type = TensorProto.FLOAT
        for node in graph.node:  # the graph casts the frame itself: feed it a float copy of it
            node.input[:] = [inp["name"] + "_u8" if n == inp["name"] else n for n in node.input]
        graph.node.insert(0, helper.make_node("Cast", [inp["name"]], [inp["name"] + "_u8"],
                                              to=TensorProto.UINT8))
        inp["dtype"] = "float32"
    path = os.path.join(folder, name)
    onnx.save(model, path)
    manifest["artifact"]["sha256"] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    write_manifest_json(path + ".json", manifest)
    return path


@pytest.mark.parametrize("output_dtype,input_float", [
    ("int32", False), ("int64", False), ("float32", False), ("int32", True)])
def test_class_map_dtypes_and_float_frames(engines, tmp_path, output_dtype, input_float):
    path = _variant(engines["seg"], str(tmp_path), "variant.onnx", output_dtype, input_float)
    manifest = json.load(open(path + ".json"))
    assert manifest["outputs"][0]["dtype"] == output_dtype
    frames = _scenes(2, (256, 512), seed=10)
    ort, nat = _segment_both(path, frames)
    ref, _ = _segment_both(engines["seg"], frames[:1])
    for a, b in zip(ort, nat):
        assert b.class_map.dtype == np.uint8
        assert _agreement(a.class_map, b.class_map) >= 0.9999
    assert _agreement(ref[0].class_map, nat[0].class_map) >= 0.9999


@pytest.mark.parametrize("target", ["trt82", "trt103"])
def test_exports_for_tensorrt_targets(engines, target):
    """rt-export --trt-version changes the I/O form (e.g. 8.2: float32 frame, int32 class map);
    the core follows the manifest and agrees with ONNX Runtime on every form."""
    if target not in engines:
        pytest.skip("this rt-export has no --trt-version")
    manifest = json.load(open(engines[target] + ".json"))
    out = [o for o in manifest["outputs"] if o["meaning"] in ("class_map", "logits")][0]
    assert out["dtype"] in ("uint8", "int32", "int64", "float32")
    ort, nat = _segment_both(engines[target], _scenes(2, (256, 512), seed=11))
    for a, b in zip(ort, nat):
        assert _agreement(a.class_map, b.class_map) >= 0.9999


def test_manifest_dtype_that_disagrees_with_the_model_is_refused(engines, tmp_path):
    from runtime.backends.native import NativeEngine
    from runtime.errors import ManifestError
    path = _variant(engines["seg"], str(tmp_path), "variant.onnx", "int32")
    manifest = json.load(open(path + ".json"))
    manifest["outputs"][0]["dtype"] = "float32"
    write_manifest_json(path + ".json", manifest)
    with pytest.raises(ManifestError) as info:
        NativeEngine(path)
    assert "int32 in the model but float32 in its manifest" in str(info.value)


def test_integer_feature_input_is_refused_when_the_bundle_opens(engines, tmp_path):
    """The core feeds a bundle's features to f2f and the decoder as float16 or float32: a stage
    whose features input is an integer tensor is refused at open, not at the first forecast."""
    import hashlib
    import shutil
    import onnx
    from onnx import TensorProto, helper
    from runtime.backends.native import CoreEngine
    from runtime.errors import UserError
    bundle = str(tmp_path / "bundle")
    shutil.copytree(engines["bundle"], bundle)
    path = os.path.join(bundle, "decoder.onnx")
    stage = json.load(open(path + ".json"))
    name = stage["input"]["name"]
    model = onnx.load(path)
    for node in model.graph.node:  # the graph casts the integer input to the float it computes on
        node.input[:] = [name + "_float" if n == name else n for n in node.input]
    model.graph.node.insert(0, helper.make_node("Cast", [name], [name + "_float"], to=TensorProto.FLOAT))
    [i for i in model.graph.input if i.name == name][0].type.tensor_type.elem_type = TensorProto.INT32
    onnx.save(model, path)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    stage["input"]["dtype"] = "int32"
    stage["artifact"]["sha256"] = digest
    write_manifest_json(path + ".json", stage)
    manifest = json.load(open(os.path.join(bundle, "forecast.json")))
    manifest["stage_sha256"]["decoder"] = digest
    write_manifest_json(os.path.join(bundle, "forecast.json"), manifest)
    with pytest.raises(UserError) as info:
        CoreEngine(bundle).close()
    assert "stage 'decoder' input '{}' is int32".format(name) in str(info.value)


def test_rt_segment_native_backend(engines, tmp_path, run_cli_subprocess):
    from export import scenes as synthetic
    video = str(tmp_path / "drive.mp4")
    synthetic.write_video(video, frames=12, fps=15, seed=3, size=(240, 480))
    report = str(tmp_path / "report.json")
    for engine in (engines["ood"], engines["bundle"]):
        proc = run_cli_subprocess("runtime.cli.segment", "--engine", engine, "--backend", "native",
                                  "--video", video, "--report", report)
        assert proc.returncode == 0, proc.stderr
        data = json.load(open(report))
        assert data["frames"]["processed"] == 12
        assert data["engine"]["backend"] == "native"
        if engine == engines["bundle"]:
            assert data["forecast"]["frames_forecast"] > 0


def test_rt_eval_on_the_cores_backends_agrees(engines, tmp_path, run_cli_subprocess):
    from export import scenes as synthetic
    root = str(tmp_path / "val")
    synthetic.write_split(root, split="val", count=3, seed=12, size=(256, 512))
    results = {}
    for backend in ("openvino", "native"):
        out = str(tmp_path / (backend + ".json"))
        proc = run_cli_subprocess("runtime.cli.eval", "--engine", engines["seg"], "--data", root,
                                  "--split", "val", "--backend", backend, "--json", out, "-q")
        assert proc.returncode == 0, proc.stderr
        results[backend] = json.load(open(out))
    assert abs(results["native"]["miou"] - results["openvino"]["miou"]) < 1e-3


def test_rt_bench_native_next_to_onnxruntime(engines, tmp_path, run_cli_subprocess):
    out = str(tmp_path / "bench.json")
    proc = run_cli_subprocess("runtime.cli.bench", "--engine", engines["seg"], "--engine",
                              engines["seg"], "--backend", "onnxruntime", "--backend", "native",
                              "--iterations", "4", "--warmup", "1", "--json", out)
    assert proc.returncode == 0, proc.stderr
    runners = json.load(open(out))["runners"]
    native = [r for r in runners if "native" in r["name"]][0]
    assert "libswiftrt" in native["includes"]
    assert native["latency_ms"]["mean"] > 0


def test_errors_are_one_line(engines, tmp_path, run_cli_subprocess):
    import cv2
    bad = engines["bad"]
    cv2.imwrite(str(tmp_path / "frame.png"), _scenes(1, SIZE)[0])
    for name, words in (("schema2.onnx", "schema version 2"), ("truncated.onnx", "sha256"),
                        ("wrongname.onnx", "not_the_input")):
        proc = run_cli_subprocess("runtime.cli.segment", "--engine", os.path.join(bad, name),
                                  "--backend", "native", "--images", str(tmp_path / "*.png"))
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()
                 and not line.startswith(("E0000", "WARNING: All log"))]
        assert len(lines) == 1 and words in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


def test_default_engine_backend_choice_and_missing_library(engines, tmp_path, run_cli_subprocess):
    """runtime.open_engine runs on the core by default, --backend names the core's backend and
    --providers goes to its ONNX Runtime; without the library, one line says how to build it."""
    import cv2
    from runtime import open_engine
    from runtime.backends.native import NativeEngine, version
    from runtime.errors import UserError
    default = open_engine(engines["seg"], threads=1)
    try:
        assert isinstance(default, NativeEngine)
        wanted = "onnxruntime" if "onnxruntime" in version().split("backends:")[1] else "openvino"
        assert default.describe()["core_backend"].startswith(wanted)
    finally:
        default.close()
    for bogus in ("bogus", "python-onnxruntime"):  # the Python engine is gone: one line
        with pytest.raises(UserError, match="unknown backend '{}'; the core has onnxruntime, "
                                            "openvino, tensorrt".format(bogus)):
            open_engine(engines["seg"], backend=bogus)
    with pytest.raises(UserError, match="providers selects ONNX Runtime execution providers; "
                                        "the openvino backend does not use them"):
        open_engine(engines["seg"], backend="openvino", providers=["cpu"])
    cv2.imwrite(str(tmp_path / "frame.png"), _scenes(1, SIZE)[0])
    env = dict(os.environ, SWIFTRT_LIBRARY=str(tmp_path / "no" / "libswiftrt.so"))
    proc = subprocess.run([sys.executable, "-m", "runtime.cli.segment", "--engine", engines["seg"],
                           "--images", str(tmp_path / "*.png")], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "make native-lib" in proc.stderr


def test_bad_frames_through_ctypes(engines):
    from runtime.backends.native import CoreEngine
    core = CoreEngine(engines["seg"])
    try:
        with pytest.raises(ValueError):
            core.run(np.zeros((10, 10), np.uint8))
        # A view with a negative row step is copied, not read out of bounds.
        frame = _scenes(1, (256, 512))[0]
        out = core.run(frame[::-1])["class_map"]
        again = core.run(np.ascontiguousarray(frame[::-1]))["class_map"]
        assert np.array_equal(out, again)
    finally:
        core.close()


def test_native_module_is_python36_and_torch_free():
    """runtime/backends/native.py must import where the device runtime runs (vermin in make test)."""
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    if not os.path.exists(vermin):
        pytest.skip("vermin not installed")
    proc = subprocess.run([vermin, "--target=3.6-", "--no-tips", "--violations",
                           os.path.join(REPO, "runtime", "backends", "native.py")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _python_reads(path, allow_legacy=False):
    """What the Python side does with an artifact it opens (rt-plan, calibration): its Manifest,
    checked, and the artifact's sha256 against it."""
    from runtime.manifest import Manifest
    Manifest.load(path, allow_legacy=allow_legacy).verify_artifact(path)


# One contract, three readers: docs/manifest.schema.json, the Python runtime (runtime.manifest)
# and the native core (its own JSON reader) refuse the same damaged manifests.
DAMAGED_MANIFESTS = [
    ("schema_version", lambda m: m.update(schema_version=2)),
    ("task", lambda m: m.update(task="detection")),
    ("precision", lambda m: m.update(precision="int4")),
    ("ignore_id above 255", lambda m: m.update(ignore_id=300)),
    ("negative ignore_id", lambda m: m.update(ignore_id=-1)),
    ("empty arch", lambda m: m.update(arch="")),
    ("malformed sha256", lambda m: m["artifact"].update(sha256="0")),
    ("no outputs", lambda m: m.update(outputs=[])),
    ("no classes", lambda m: m.update(classes=[])),
    ("input layout", lambda m: m["input"].update(layout="NCWH")),
    ("output dtype", lambda m: m["outputs"][0].update(dtype="complex64")),
    ("output meaning", lambda m: m["outputs"][0].update(meaning="boxes")),
    ("outlier threshold", lambda m: m.update(outlier={"default_threshold": 2.0})),
    ("missing input", lambda m: m.pop("input")),
]


@pytest.mark.parametrize("what,damage", DAMAGED_MANIFESTS, ids=[d[0] for d in DAMAGED_MANIFESTS])
def test_schema_python_runtime_and_native_core_refuse_the_same_manifests(engines, tmp_path, what,
                                                                         damage):
    import shutil
    jsonschema = pytest.importorskip("jsonschema")
    from runtime.backends.native import NativeEngine
    from runtime.errors import ManifestError, UserError
    with open(os.path.join(REPO, "docs", "manifest.schema.json")) as handle:
        validator = jsonschema.Draft7Validator(json.load(handle))
    path = str(tmp_path / "damaged.onnx")
    shutil.copyfile(engines["seg"], path)
    manifest = json.load(open(engines["seg"] + ".json"))
    assert list(validator.iter_errors(manifest)) == []  # the undamaged one passes all three
    _python_reads(engines["seg"])
    NativeEngine(engines["seg"]).close()
    damage(manifest)
    write_manifest_json(path + ".json", manifest)  # sealed: refused for the damage, not the seal
    assert list(validator.iter_errors(manifest)), "the schema accepts: " + what
    with pytest.raises(ManifestError):  # the Python side's reader (rt-plan, calibration, reports)
        _python_reads(path)
    with pytest.raises((ManifestError, UserError)) as info:
        NativeEngine(path).close()
    assert "\n" not in str(info.value)


def _flip_colour_order(text):
    order = '"color_order": "BGR"' if '"color_order": "BGR"' in text else '"color_order": "RGB"'
    return text.replace(order, order.replace("BGR", "X").replace("RGB", "BGR").replace("X", "RGB"))


def _without(data, key):
    return dict((k, v) for k, v in data.items() if k != key)


# The manifest's own seal (manifest_sha256): the same refusals from the Python runtime and the
# core, each reading the file's bytes. (text of the file from the good manifest dict, legacy?)
DAMAGED_SEALS = [
    ("edited after sealing", lambda m: _flip_colour_order(dump_manifest(m)), False),
    ("class renamed after sealing", lambda m: dump_manifest(m).replace('"road"', '"lane"', 1), False),
    ("malformed digest", lambda m: dump_manifest(m).replace(
        '"{}": "'.format(DIGEST_KEY), '"{}": "x'.format(DIGEST_KEY)), False),
    ("digest field twice", lambda m: dump_manifest(m).replace(
        "{", '{{"notes": {{"{}": "{}"}}, '.format(DIGEST_KEY, "0" * 64), 1), False),
    ("no digest (legacy)", lambda m: json.dumps(_without(m, DIGEST_KEY), indent=2), True),
    ("no artifact sha256 (legacy)",
     lambda m: dump_manifest(dict(m, artifact=_without(m["artifact"], "sha256"))), True),
]


@pytest.mark.parametrize("what,text,legacy", DAMAGED_SEALS, ids=[d[0] for d in DAMAGED_SEALS])
def test_python_runtime_and_native_core_check_the_manifest_seal_alike(engines, tmp_path, what, text,
                                                                      legacy):
    import shutil
    from runtime.backends.native import CoreEngine
    from runtime.errors import ManifestError
    path = str(tmp_path / "sealed.onnx")
    shutil.copyfile(engines["seg"], path)
    manifest = json.load(open(engines["seg"] + ".json"))
    assert len(manifest[DIGEST_KEY]) == 64  # rt-export seals what it writes
    with open(path + ".json", "w") as handle:
        handle.write(text(manifest))
    with pytest.raises(ManifestError):  # the Python side's reader
        _python_reads(path)
    with pytest.raises(ManifestError) as info:  # the core on its own (not behind Python's check)
        CoreEngine(path).close()
    assert "\n" not in str(info.value)
    if legacy:  # files older than the seal open only when the caller asks for it
        _python_reads(path, allow_legacy=True)
        CoreEngine(path, allow_legacy=True).close()
    else:
        with pytest.raises(ManifestError):
            _python_reads(path, allow_legacy=True)
        with pytest.raises(ManifestError):
            CoreEngine(path, allow_legacy=True).close()


def _nan_logits_model(folder):
    """A 1x1-conv network whose logits are log(conv): NaN wherever the conv is negative."""
    import hashlib
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    h, w, c = 16, 24, 5
    weights = np.random.RandomState(0).randn(c, 3, 1, 1).astype(np.float32)
    nodes = [helper.make_node("Cast", ["frame"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("Transpose", ["xf"], ["xt"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["xt", "w"], ["conv"]),
             helper.make_node("Log", ["conv"], ["logits"])]
    graph = helper.make_graph(nodes, "nan", [helper.make_tensor_value_info("frame", TensorProto.UINT8, [1, h, w, 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, c, h, w])],
                              [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = os.path.join(str(folder), "nan.onnx")
    onnx.save(model, path)
    with open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    write_manifest_json(path + ".json", {
        "schema_version": 1, "arch": "tiny", "task": "segmentation", "precision": "fp32", "opset": 17,
        "artifact": {"file": "nan.onnx", "format": "onnx", "sha256": digest},
        "input": {"name": "frame", "shape": [1, h, w, 3], "dtype": "uint8", "layout": "NHWC", "color_order": "BGR",
                  "normalization": {"in_graph": True, "scale": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1]},
                  "resize": "stretch"},
        "outputs": [{"name": "logits", "shape": [1, c, h, w], "dtype": "float32", "meaning": "logits"}],
        "classes": [{"id": i, "name": "c{}".format(i), "color": [i, i, i]} for i in range(c)], "ignore_id": 255})
    return path


def test_nan_logits_give_no_class_map(native_library, tmp_path):
    """A logit that is NaN or Inf has no argmax: the core fails the frame (SRT_ERROR_BACKEND)
    instead of returning a class map made around it, so a broken plan fails rt-plan's check."""
    from runtime import open_engine
    engine = open_engine(_nan_logits_model(tmp_path))
    try:
        frame = np.random.RandomState(0).randint(0, 256, (16, 24, 3)).astype(np.uint8)
        with pytest.raises(RuntimeError, match="logits hold NaN or Inf.*SRT_ERROR_BACKEND"):
            engine.segment(frame)
    finally:
        engine.close()
