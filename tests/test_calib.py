"""calib/: calibration image sets, ONNX Runtime ranges, QDQ models (TensorRT and CPU flavors),
TensorRT calibration files, FP16, accuracy against FP32 and the keep-fp32 search.

Most properties are checked on a tiny hand-built segmentation graph with the same anatomy as
our exports (uint8 NHWC frame -> in-graph normalization -> Conv/Relu/Add/BN -> logits ->
Resize -> ArgMax -> uint8 class map); agreement is checked on the real SwiftNet-RN18 export.
"""
import json
import os
import struct

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from calib import accuracy, fp16, int8, qdq
from calib.images import CalibrationImages
from calib.ranges import Ranges, collect_ranges
from runtime import manifest as manifest_mod
from runtime.errors import UserError
from runtime.plan import calibration_cache, trt_rules
from runtime.core_preprocess import Preprocessor

TINY_SIZE = (64, 128)


def quiet(_message):
    pass


class Warnings(object):
    def __init__(self):
        self.lines = []

    def __call__(self, text):
        self.lines.append(text)


# -- a tiny model with our exports' anatomy -------------------------------------------------------

def make_tiny(path, opset=17, size=TINY_SIZE, seed=0):
    """Write a small 'frame in, class map out' segmentation ONNX and its manifest."""
    rng = np.random.RandomState(seed)
    height, width = size
    inits = []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def conv_w(out_c, in_c, k):
        return (rng.randn(out_c, in_c, k, k) * np.sqrt(2.0 / (in_c * k * k))).astype(np.float32)

    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    nodes = [
        helper.make_node("Transpose", ["frame"], ["t"], name="/Transpose", perm=[0, 3, 1, 2]),
        helper.make_node("Cast", ["t"], ["c"], name="/Cast", to=TensorProto.FLOAT),
        helper.make_node("Gather", ["c", const("bgr2rgb", np.array([2, 1, 0], np.int64))], ["g"],
                         name="/Gather", axis=1),
        helper.make_node("Mul", ["g", const("mul", (1 / (255 * std)).astype(np.float32)
                                            .reshape(1, 3, 1, 1))], ["m"], name="/Mul"),
        helper.make_node("Add", ["m", const("add", (-mean / std).astype(np.float32)
                                            .reshape(1, 3, 1, 1))], ["x"], name="/Add"),
        helper.make_node("Conv", ["x", const("w1", conv_w(16, 3, 3)),
                                  const("b1", np.zeros(16, np.float32))], ["c1"],
                         name="/conv1/Conv", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="/relu1"),
        helper.make_node("Conv", ["r1", const("w2", conv_w(16, 16, 3)),
                                  const("b2", rng.randn(16).astype(np.float32) * 0.1)], ["c2"],
                         name="/conv2/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["a1"], name="/block/Add"),
        helper.make_node("Relu", ["a1"], ["r2"], name="/relu2"),
        helper.make_node("BatchNormalization",
                         ["r2", const("bn_g", (1 + 0.1 * rng.randn(16)).astype(np.float32)),
                          const("bn_b", (0.1 * rng.randn(16)).astype(np.float32)),
                          const("bn_m", (0.5 + 0.1 * rng.randn(16)).astype(np.float32)),
                          const("bn_v", (1 + 0.1 * rng.rand(16)).astype(np.float32))], ["bn"],
                         name="/bn/BatchNormalization"),
        helper.make_node("Relu", ["bn"], ["r3"], name="/relu3"),
        helper.make_node("Conv", ["r3", const("w3", conv_w(16, 16, 3)),
                                  const("b3", np.zeros(16, np.float32))], ["c3"],
                         name="/conv3/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c3"], ["r4"], name="/relu4"),
        helper.make_node("Conv", ["r4", const("w4", conv_w(19, 16, 1) * 3),
                                  const("b4", rng.randn(19).astype(np.float32))], ["logits"],
                         name="/logits/Conv"),
        helper.make_node("Resize", ["logits", "", "", const("sizes", np.array(
            [1, 19, height, width], np.int64))], ["up"], name="/Resize", mode="linear"),
        helper.make_node("ArgMax", ["up"], ["am"], name="/ArgMax", axis=1, keepdims=0),
        helper.make_node("Cast", ["am"], ["class_map"], name="/Cast_1", to=TensorProto.UINT8),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("frame", TensorProto.UINT8,
                                                      [1, height, width, 3])],
        [helper.make_tensor_value_info("class_map", TensorProto.UINT8, [1, height, width])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    from runtime.data.classes import CLASSES
    data = {
        "schema_version": manifest_mod.SCHEMA_VERSION, "arch": "tiny", "task": "segmentation",
        "artifact": {"file": os.path.basename(str(path)), "format": "onnx",
                     "sha256": manifest_mod.sha256_file(str(path))},
        "input": {"name": "frame", "shape": [1, height, width, 3], "dtype": "uint8",
                  "layout": "NHWC", "color_order": "BGR",
                  "normalization": {"in_graph": True, "scale": 1 / 255.0,
                                    "mean": list(mean), "std": list(std)},
                  "resize": "stretch"},
        "outputs": [{"name": "class_map", "shape": [1, height, width], "dtype": "uint8",
                     "meaning": "class_map"}],
        "classes": [{"id": c.train_id, "name": c.name, "color": list(c.color)} for c in CLASSES],
        "ignore_id": 255, "precision": "fp32", "opset": opset,
    }
    manifest_mod.Manifest.from_dict(data).write(str(path))
    return str(path)


def write_images(folder, count, size=(40, 60), start=0, ext=".png"):
    os.makedirs(str(folder), exist_ok=True)
    paths = []
    for i in range(start, start + count):
        rng = np.random.RandomState(i)
        image = rng.randint(0, 256, size=(size[0], size[1], 3)).astype(np.uint8)
        path = os.path.join(str(folder), "img_{:03d}{}".format(i, ext))
        cv2.imwrite(path, image)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="module")
def tiny13(tmp_path_factory):
    return make_tiny(tmp_path_factory.mktemp("tiny13") / "tiny13.onnx", opset=13)


def _calibrated(fp32_path, workdir, method="minmax", count=8, num_bins=None):
    spec = manifest_mod.Manifest.load(fp32_path).input
    prepared = qdq.prepare(fp32_path, os.path.join(str(workdir), "prepared.onnx"))
    images = CalibrationImages("synthetic", count=count, seed=0, synthetic_size=spec.size)
    ranges = collect_ranges(prepared, images.tensors(Preprocessor(spec)), "frame",
                            method=method, total=len(images), progress=False,
                            num_bins=num_bins)
    return prepared, ranges, images


# -- calibration image sets ---------------------------------------------------------------------

def test_folder_with_non_image_files_skipped_and_counted(tmp_path):
    folder = tmp_path / "calib"
    write_images(folder, 6)
    (folder / "notes.txt").write_text("not an image")
    (folder / "labels.json").write_text("{}")
    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    sub = folder / "more"
    write_images(sub, 2, size=(90, 30), start=100)  # other sizes, in a subfolder
    warn = Warnings()
    images = CalibrationImages(str(folder), count=8, seed=3, warn=warn)
    frames = list(images)
    assert len(frames) == 8 and images.used == 8
    assert images.skipped_non_image == 2
    assert images.unreadable == 1  # all 9 image files were needed to get 8 readable ones
    info = images.info()
    assert info["images"] == 8 and info["skipped_non_image"] == 2 and info["unreadable"] == 1
    assert len(info["source_sha256"]) == 64
    assert any("2 non-image" in line and "1 unreadable" in line for line in warn.lines)


def test_images_of_other_sizes_are_fitted_by_the_manifest(tmp_path, tiny):
    folder = tmp_path / "mixed"
    write_images(folder, 2, size=(40, 60))
    write_images(folder, 2, size=(300, 200), start=10, ext=".jpg")
    pre = Preprocessor(manifest_mod.Manifest.load(tiny).input)
    tensors = list(CalibrationImages(str(folder), count=4, warn=Warnings()).tensors(pre))
    assert len(tensors) == 4
    assert all(t.shape == (1, TINY_SIZE[0], TINY_SIZE[1], 3) and t.dtype == np.uint8
               for t in tensors)


def test_seeded_sampling_is_deterministic(tmp_path):
    folder = tmp_path / "many"
    write_images(folder, 30, size=(8, 8))

    def sample(seed):
        images = CalibrationImages(str(folder), count=10, seed=seed)
        sums = [int(f.sum()) for f in images]
        return sums, images.source_sha256
    first, again, other = sample(1), sample(1), sample(2)
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]


def test_glob_and_cityscapes_layout(tmp_path):
    root = tmp_path / "cs"
    left = root / "leftImg8bit" / "train" / "aachen"
    write_images(left, 3, ext="_leftImg8bit.png")
    write_images(root / "gtFine" / "train" / "aachen", 3, ext="_gtFine_labelIds.png")
    write_images(root / "leftImg8bit" / "val" / "bonn", 2)
    images = CalibrationImages(str(root), count=10, warn=Warnings())
    assert images.available == 3  # only the train images: never labels, never val
    assert all("leftImg8bit" in p and "/train/" in p.replace(os.sep, "/")
               for p in images.candidates)
    pattern = str(root / "leftImg8bit" / "**" / "*.png")
    assert CalibrationImages(pattern, count=10, warn=Warnings()).available == 5


def test_fewer_images_than_asked_warns_and_goes_on(tmp_path):
    folder = tmp_path / "few"
    write_images(folder, 3)
    warn = Warnings()
    images = CalibrationImages(str(folder), count=50, warn=warn)
    assert len(list(images)) == 3
    assert any("asked for 50" in line and "only 3" in line for line in warn.lines)


def test_video_source(tmp_path):
    path = str(tmp_path / "drive.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(24):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()
    images = CalibrationImages(path, count=6, seed=5)
    levels = [int(round(f.mean() / 10.0)) for f in images]
    assert images.kind == "video" and len(levels) == 6
    assert levels == sorted(levels) and len(set(levels)) == 6  # distinct frames, read forward
    assert levels == [int(round(f.mean() / 10.0)) for f in CalibrationImages(path, 6, seed=5)]
    assert levels != [int(round(f.mean() / 10.0)) for f in CalibrationImages(path, 6, seed=6)]
    assert images.info()["kind"] == "video" and images.info()["images"] == 6


@pytest.mark.parametrize("case", ["empty", "missing", "only_text", "all_broken", "glob",
                                  "bad_video", "count"])
def test_bad_calibration_sources_are_one_line_errors(tmp_path, case):
    folder = tmp_path / "src"
    folder.mkdir()
    source, count = str(folder), 4
    if case == "missing":
        source = str(tmp_path / "nope")
    elif case == "only_text":
        (folder / "a.txt").write_text("x")
    elif case == "all_broken":
        (folder / "a.png").write_bytes(b"nope")
        (folder / "b.jpg").write_bytes(b"")
    elif case == "glob":
        source = str(folder / "*.png")
    elif case == "bad_video":
        source = str(folder / "clip.mp4")
        (folder / "clip.mp4").write_bytes(b"not a video at all")
    elif case == "count":
        write_images(folder, 1)
        count = 0
    with pytest.raises(UserError) as info:
        list(CalibrationImages(source, count=count, warn=Warnings()))
    message = str(info.value)
    assert "\n" not in message and message


# -- ranges --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_ranges_from_ort_calibrators(tmp_path, tiny, method):
    # 256 histogram bins keep ONNX Runtime's (pure Python) entropy search quick here
    prepared, ranges, images = _calibrated(tiny, tmp_path, method=method, count=6,
                                           num_bins=256 if method != "minmax" else None)
    assert ranges.method == method and ranges.images == 6
    assert "r1" in ranges and "logits" in ranges
    low, high = ranges.tensors["r1"]
    assert low >= 0.0 and high > 0.0  # a ReLU output: the range never goes below what was seen
    amax = ranges.amax()
    assert all(v >= 0 for v in amax.values())
    assert amax["logits"] == max(abs(ranges.tensors["logits"][0]),
                                 abs(ranges.tensors["logits"][1]))
    again = Ranges.from_json(json.loads(json.dumps(ranges.to_json())))
    assert again.tensors == ranges.tensors


# -- QDQ models -----------------------------------------------------------------------------------

def _zero_point_types(model):
    inits = dict((i.name, i) for i in model.graph.initializer)
    producer = dict((o, n) for n in model.graph.node for o in n.output)
    acts, weights = set(), set()
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        zp = inits[node.input[2]]
        (weights if node.input[0] in inits or node.input[0] not in producer else acts).add(
            zp.data_type)
    return acts, weights


def assert_trt_qdq(model, opset):
    """TensorRT's explicit-quantization rules, checked independently of qdq.check_trt_qdq."""
    inits = dict((i.name, i) for i in model.graph.initializer)
    producer = dict((o, n) for n in model.graph.node for o in n.output)
    ops = set(n.op_type for n in model.graph.node)
    assert not [o for o in ops if o.startswith("QLinear") or o == "DynamicQuantizeLinear"]
    assert [(e.domain, e.version) for e in model.opset_import] == [("", opset)]
    qdq_nodes = [n for n in model.graph.node if n.op_type in ("QuantizeLinear",
                                                                "DequantizeLinear")]
    assert qdq_nodes
    for node in qdq_nodes:
        zero = inits[node.input[2]]
        assert zero.data_type == TensorProto.INT8
        assert not numpy_helper.to_array(zero).any()
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    quantized = 0
    for conv in convs:
        weight_dq = producer.get(conv.input[1])
        if weight_dq is None:
            continue
        quantized += 1
        assert weight_dq.op_type == "DequantizeLinear"
        out_channels = inits[producer[weight_dq.input[0]].input[0]].dims[0]
        scale = inits[weight_dq.input[1]]
        assert list(scale.dims) == [out_channels]  # per channel ...
        axis = [a.i for a in weight_dq.attribute if a.name == "axis"]
        assert axis in ([], [0])                    # ... on axis 0
        quant = producer[weight_dq.input[0]]
        assert quant.op_type == "QuantizeLinear"    # a Q/DQ pair on the float weight
        assert inits[quant.input[0]].data_type == TensorProto.FLOAT
        if len(conv.input) > 2:
            assert inits[conv.input[2]].data_type == TensorProto.FLOAT  # float bias
        data_dq = producer[conv.input[0]]
        assert data_dq.op_type == "DequantizeLinear"
    assert quantized >= 1


def test_trt_flavor_properties_at_opset_13(tmp_path, tiny13):
    prepared, ranges, _ = _calibrated(tiny13, tmp_path)
    out = str(tmp_path / "tiny13_int8.onnx")
    info = qdq.quantize(prepared, out, ranges, "trt")
    model = onnx.load(out)
    assert_trt_qdq(model, 13)
    assert qdq.check_trt_qdq(model, 13) == []
    assert info["opset"] == 13 and info["activations"] == "int8" and info["bias"] == "float"
    # pre- and postprocessing stay float: the frame's Mul/Add and the ArgMax read no DQ
    producer = dict((o, n) for n in model.graph.node for o in n.output)
    for node in model.graph.node:
        if node.name in ("/Mul", "/Add", "/Resize", "/ArgMax"):
            assert producer.get(node.input[0]) is None or \
                producer[node.input[0]].op_type != "DequantizeLinear", node.name
    assert set(info["fp32_nodes"]["preprocessing"]) == {"/Transpose", "/Cast", "/Gather",
                                                        "/Mul", "/Add"}
    assert info["fp32_nodes"]["postprocessing"] == ["/Resize", "/ArgMax", "/Cast_1"]


def test_cpu_flavor_uses_uint8_activations(tmp_path, tiny):
    prepared, ranges, _ = _calibrated(tiny, tmp_path)
    out = str(tmp_path / "tiny_cpu.onnx")
    info = qdq.quantize(prepared, out, ranges, "cpu")
    model = onnx.load(out)
    acts, weights = _zero_point_types(model)
    assert acts == {TensorProto.UINT8}
    assert weights == {TensorProto.INT8} or not weights  # weights may be stored pre-quantized
    dq_weight_types = set()
    inits = dict((i.name, i) for i in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            dq_weight_types.add(inits[node.input[0]].data_type)
    assert TensorProto.INT8 in dq_weight_types
    assert "BatchNormalization" not in set(n.op_type for n in model.graph.node)
    assert info["graph_rewrites"]["bn_to_depthwise"] >= 1
    assert info["activations"] == "uint8"
    assert [e.domain for e in model.opset_import] == [""]


def test_keep_fp32_leaves_a_layer_unquantized(tmp_path, tiny):
    prepared, ranges, _ = _calibrated(tiny, tmp_path)
    out = str(tmp_path / "tiny_keep.onnx")
    qdq.quantize(prepared, out, ranges, "cpu", keep_fp32=["/conv2/Conv"])
    model = onnx.load(out)
    producer = dict((o, n) for n in model.graph.node for o in n.output)
    conv2 = [n for n in model.graph.node if n.name == "/conv2/Conv"][0]
    assert all(producer.get(i) is None or producer[i].op_type != "DequantizeLinear"
               for i in conv2.input)
    with pytest.raises(UserError, match="no node named 'nope'"):
        qdq.quantize(prepared, out, ranges, "cpu", keep_fp32=["nope"])


@pytest.fixture(scope="module")
def rn18_qdq(rn18_engine, tmp_path_factory):
    """Both flavors of the real SwiftNet-RN18 export (128x256) from one calibration."""
    work = tmp_path_factory.mktemp("rn18_qdq")
    prepared, ranges, _ = _calibrated(rn18_engine, work, count=8)
    paths = {}
    for flavor in ("cpu", "trt"):
        paths[flavor] = str(work / "rn18_{}.onnx".format(flavor))
        qdq.quantize(prepared, paths[flavor], ranges, flavor)
    return paths


def test_rn18_int8_agrees_with_fp32_on_generated_scenes(rn18_engine, rn18_qdq):
    measure = accuracy.Measure(rn18_engine, images=4)
    for flavor, path in sorted(rn18_qdq.items()):
        result = measure(path)
        # untrained weights give small logit margins: a trained model agrees far better
        assert result["metric"] == "agreement" and result["agreement"] >= 0.95, (flavor, result)
    model = onnx.load(rn18_qdq["trt"])
    assert_trt_qdq(model, 17)
    acts, _ = _zero_point_types(onnx.load(rn18_qdq["cpu"]))
    assert acts == {TensorProto.UINT8}


def test_cpu_int8_runs_the_stem_in_int8_pads_the_logits_and_trt_keeps_the_export(rn18_qdq):
    cpu = onnx.load(rn18_qdq["cpu"])
    producer = dict((o, n) for n in cpu.graph.node for o in n.output)
    stem = [n for n in cpu.graph.node if n.op_type == "Conv" and n.name.endswith("conv1/Conv")
            and "backbone/conv1" in n.name][0]
    assert producer[stem.input[0]].op_type == "DequantizeLinear"
    assert [d for d in [i for i in cpu.graph.initializer
                        if i.name == producer[stem.input[1]].input[0]][0].dims] == [64, 12, 4, 4]
    logits = [n for n in cpu.graph.node if n.op_type == "Conv" and "logits" in n.name][0]
    weights = dict((i.name, i) for i in cpu.graph.initializer)
    assert weights[producer[logits.input[1]].input[0]].dims[0] == 24  # 19 classes padded to 8s
    assert "Slice" in set(n.op_type for n in cpu.graph.node)
    trt_ops = set(n.op_type for n in onnx.load(rn18_qdq["trt"]).graph.node)
    assert "SpaceToDepth" not in trt_ops and "Slice" not in trt_ops


# -- TensorRT files ------------------------------------------------------------------------------

def test_calibration_cache_for_a_named_tensorrt_version(tmp_path):
    amax = {"/backbone/conv1/Conv_output_0": 1.6627, "x": 127.0}
    path = str(tmp_path / "model.calib")
    calibration_cache.write_calibration_cache(path, amax, "8.6.2", "ab" * 32, "entropy")
    lines = open(path).read().splitlines()
    assert lines[0] == "TRT-8602-EntropyCalibration2"
    assert "x: 3f800000" in lines  # 127/127 = 1.0 as big-endian float32
    value = dict(line.split(": ") for line in lines[1:])["/backbone/conv1/Conv_output_0"]
    assert abs(struct.unpack(">f", bytes.fromhex(value))[0] * 127 - 1.6627) < 1e-4
    header, table = calibration_cache.read_cache(path, onnx_sha256="ab" * 32, version="8.6.2")
    assert header == "TRT-8602-EntropyCalibration2" and set(table) == set(amax)
    assert calibration_cache.calibration_cache_header("10.3.0") == "TRT-100300-EntropyCalibration2"
    assert calibration_cache.calibration_cache_header("8.2.1") == "TRT-8201-EntropyCalibration2"


def test_stale_calibration_files_are_refused(tmp_path):
    cache = str(tmp_path / "m.calib")
    calibration_cache.write_calibration_cache(cache, {"x": 2.0}, "8.5.2", "aa" * 32, "minmax")
    with pytest.raises(UserError, match="another model"):
        calibration_cache.read_cache(cache, onnx_sha256="bb" * 32)
    with pytest.raises(UserError, match="8.6.2"):
        calibration_cache.read_cache(cache, onnx_sha256="aa" * 32, version="8.6.2")
    table = str(tmp_path / "m.amax.json")
    calibration_cache.write_amax_json(table, {"x": -2.0}, "aa" * 32, "minmax")
    assert calibration_cache.read_amax_json(table, onnx_sha256="aa" * 32) == {"x": 2.0}
    with pytest.raises(UserError, match="another model"):
        calibration_cache.read_amax_json(table, onnx_sha256="bb" * 32)
    untagged = tmp_path / "plain.json"
    untagged.write_text(json.dumps({"x": 1.0}))
    with pytest.raises(UserError, match="no '__calibration__' tag"):
        calibration_cache.read_amax_json(str(untagged), onnx_sha256="aa" * 32)


def test_int8_export_manifest_and_trt_files(tmp_path, tiny):
    out = str(tmp_path / "engines" / "tiny_int8.onnx")
    os.makedirs(os.path.dirname(out))
    data = int8.export_int8(tiny, out, "synthetic", int8.Int8Options(count=6, seed=4, method="percentile",
                            flavor="trt", agreement_images=2, progress=False, log=quiet)).to_dict()
    on_disk = manifest_mod.Manifest.load(out).to_dict()
    assert on_disk == json.loads(json.dumps(data))
    assert on_disk["precision"] == "int8"
    assert on_disk["artifact"]["sha256"] == manifest_mod.sha256_file(out)
    cal = on_disk["calibration"]
    assert cal["method"] == "percentile" and cal["images"] == 6 and cal["seed"] == 4
    assert len(cal["source_sha256"]) == 64 and cal["source"].startswith("synthetic")
    assert on_disk["quantization"]["flavor"] == "trt"
    assert on_disk["accuracy"]["metric"] == "agreement"
    assert 0.0 <= on_disk["accuracy"]["agreement"] <= 1.0
    trt = cal["tensorrt"]
    fp32_copy = os.path.join(os.path.dirname(out), trt["fp32_onnx"])
    assert trt["version"] == "8.5.2" and trt["fp32_onnx_sha256"] == manifest_mod.sha256_file(
        fp32_copy)
    manifest_mod.Manifest.load(fp32_copy)  # the FP32 model the cache is for, with its manifest
    cache = os.path.join(os.path.dirname(out), trt["cache"])
    header, table = calibration_cache.read_cache(cache, onnx_path=fp32_copy, version="8.5.2")
    amax = calibration_cache.read_amax_json(os.path.join(os.path.dirname(out), trt["amax_json"]),
                                    onnx_path=fp32_copy)
    assert set(table) == set(amax) and "r1" in amax
    # the frame's normalization and the logits stay out of INT8
    assert not {"c", "g", "m", "logits", "up"} & set(amax)
    for name in amax:
        assert abs(table[name] - amax[name]) <= 1e-5 * max(1.0, amax[name])
    with pytest.raises(UserError, match="another model"):  # the QDQ model is not the FP32 one
        calibration_cache.read_cache(cache, onnx_path=out, version="8.5.2")
    leftovers = [n for n in os.listdir(os.path.dirname(out)) if n.startswith("calib-") or
                 n.endswith(".tmp")]
    assert not leftovers
    # and the runtime runs it
    from runtime import open_engine
    engine = open_engine(out)
    try:
        frame = np.zeros((30, 50, 3), np.uint8)
        assert engine.segment(frame).class_map.shape == TINY_SIZE
    finally:
        engine.close()


def test_failed_int8_export_leaves_nothing_behind(tmp_path, tiny, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="is empty"):
        int8.export_int8(tiny, str(folder / "a.onnx"), str(empty), int8.Int8Options(count=4, progress=False,
                         log=quiet))
    assert os.listdir(str(folder)) == []

    def broken(*args, **kwargs):
        raise UserError("disk full")
    monkeypatch.setattr(calibration_cache, "write_amax_json", broken)
    with pytest.raises(UserError, match="disk full"):
        int8.export_int8(tiny, str(folder / "b.onnx"), "synthetic", int8.Int8Options(count=4, flavor="trt",
                         method="minmax", agreement_images=1, progress=False, log=quiet))
    assert os.listdir(str(folder)) == []


@pytest.mark.parametrize("flavor", ["cpu", "trt"])
def test_keep_fp32_search_reaches_max_drop(tmp_path, tiny, flavor):
    out = str(tmp_path / "sub" / "tiny_search.onnx")  # a folder that does not exist yet
    data = int8.export_int8(tiny, out, "synthetic", int8.Int8Options(count=4, method="minmax", flavor=flavor,
                            max_drop=0.0, agreement_images=2, check_latency=False, progress=False,
                            log=quiet)).to_dict()
    search = data["quantization"]["search"]
    assert data["accuracy"]["drop"] <= 0.0
    # 4 Conv and the Add (+ the BatchNormalization, a depthwise Conv in the CPU flavor)
    layers = 6 if flavor == "cpu" else 5
    assert search["layers"] == layers and len(search["ranking"]) == layers
    assert search["trials"][0]["kept"] == 0 and search["trials"][0]["drop"] > 0.0
    kept = data["quantization"]["fp32_nodes"]["keep_fp32"]
    assert kept == search["keep_fp32"] and 1 <= len(kept) <= layers
    assert len(search["trials"]) <= 2 * 3 + 2
    model = onnx.load(out)  # the kept layers read float tensors
    producer = dict((o, n) for n in model.graph.node for o in n.output)
    for node in model.graph.node:
        if node.name in kept:
            assert all(producer.get(i) is None or producer[i].op_type != "DequantizeLinear"
                       for i in node.input), node.name


# -- FP16 ----------------------------------------------------------------------------------------

def test_fp16_model_runs_in_ort_and_agrees(tmp_path, rn18_engine):
    out = str(tmp_path / "rn18_fp16.onnx")
    data = fp16.export_fp16(rn18_engine, out, agreement_images=2, progress=False, log=quiet).to_dict()
    assert data["precision"] == "fp16" and manifest_mod.Manifest.load(out).to_dict()["precision"] == "fp16"
    assert data["accuracy"]["agreement"] >= 0.99
    model = onnx.load(out)
    types = set(i.data_type for i in model.graph.initializer)
    assert TensorProto.FLOAT16 in types
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.UINT8
    # ArgMax and the class map's casts (ArgMax -> FLOAT -> UINT8, TensorRT 8.5+'s form) stay FP32
    assert {"/ArgMax", "/Cast_1", "/Cast_2"} <= set(data["fp16"]["fp32_nodes"]["postprocessing"])
    assert trt_rules.check(out, "8.6.2") == []


def test_fp16_without_onnxconverter_common_uses_onnxruntimes_copy(tmp_path, tiny, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_converter(name, *args, **kwargs):
        if name.startswith("onnxconverter_common"):
            raise ImportError("not installed")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_converter)
    half, info = fp16.convert(onnx.load(tiny), keep_fp32=["/conv1/Conv"])
    assert info["converter"] == "onnxruntime.transformers.float16"
    path = str(tmp_path / "tiny_fp16.onnx")
    onnx.save(half, path)
    import onnxruntime as ort
    frame = np.random.RandomState(1).randint(0, 256, (1,) + TINY_SIZE + (3,)).astype(np.uint8)
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {"frame": frame})[0]
    want = ort.InferenceSession(tiny, providers=["CPUExecutionProvider"]).run(
        None, {"frame": frame})[0]
    assert got.dtype == np.uint8 and (got == want).mean() >= 0.99
    conv1 = [n for n in half.graph.node if n.name == "/conv1/Conv"][0]
    weights = dict((i.name, i.data_type) for i in half.graph.initializer)
    assert weights[conv1.input[1]] == TensorProto.FLOAT  # kept in FP32


# -- rt-export -----------------------------------------------------------------------------------

def test_rt_export_int8_through_the_cli(run_cli_subprocess, tmp_path):
    out = tmp_path / "engines" / "rn18_int8.onnx"
    proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18", "--size", "128x256",
                              "--precision", "int8", "--calib", "synthetic", "--calib-count", 4,
                              "--calib-method", "minmax", "--parity-images", 1,
                              "--output", out)
    assert proc.returncode == 0, proc.stderr
    data = manifest_mod.Manifest.load(str(out)).to_dict()
    assert data["precision"] == "int8" and data["quantization"]["flavor"] == "cpu"
    assert data["calibration"]["images"] == 4 and data["calibration"]["method"] == "minmax"
    assert data["fp32_parity"]["argmax_agreement"] >= 0.999
    assert "latency_check" in data["quantization"]
    assert sorted(os.listdir(str(out.parent))) == ["rn18_int8.onnx", "rn18_int8.onnx.json"]
    assert "agreement with FP32" in proc.stderr


def test_rt_export_reduced_precision_flag_errors(run_cli_subprocess, tmp_path):
    proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18", "--precision", "int8",
                              "--output", tmp_path / "x.onnx")
    assert proc.returncode == 2 and "needs --calib" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18", "--calib", "x",
                              "--output", tmp_path / "x.onnx")
    assert proc.returncode == 2 and "--calib only apply" in proc.stderr


def test_export_reduced_checks_its_options_before_the_fp32_export(tmp_path):
    """A programmatic caller gets rt-export's one-line errors, before minutes of FP32 export."""
    pytest.importorskip("torch")
    from export.api import ReducedOptions, export_reduced
    logs = []
    for changes, needle in (({"calib_method": "median"}, "unknown calibration method"),
                            ({"flavor": "gpu"}, "unknown --flavor"),
                            ({"max_drop": float("nan")}, "--max-drop")):
        with pytest.raises(UserError, match=needle):
            export_reduced("swiftnet-rn18", None, (64, 128), str(tmp_path / "x.onnx"), "int8",
                           ReducedOptions(calib="synthetic", log=logs.append, **changes))
    assert logs == [] and os.listdir(str(tmp_path)) == []
