"""The plan builder against small fakes of ``tensorrt``.

No GPU here: these tests pin our logic (version strings, build flags, calibration caches, the plan
manifest, output checks) and the order of calls, written against the builder API of TensorRT 8.2 /
8.5-8.6 / 10.x as documented. Running a plan is libswiftrt's (runtime/native/src/backend_tensorrt.cpp,
tested against its own doubles in runtime/native/tests/test_tensorrt_raii.cpp). Only the
``gpu``-marked test touches real TensorRT, and it is skipped where TensorRT or a GPU is missing.
"""
import ctypes
import enum
import json
import struct
import sys
import types

import numpy as np
import pytest

from runtime import compare
from runtime import manifest as manifest_mod
from runtime.plan import builder as trt_build
from runtime.plan import calibration_cache, trt_version
from runtime.manifest import Manifest
from runtime.errors import UserError


# -- fakes ------------------------------------------------------------------------------

class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class FakeILogger(object):
    Severity = Severity

    def __init__(self):
        pass


class FakeLogger(FakeILogger):
    WARNING = Severity.WARNING

    def __init__(self, severity=Severity.WARNING):
        FakeILogger.__init__(self)
        self.severity = severity


class FakeCalibratorBase(object):
    def __init__(self):
        self.base_initialised = True


class DataType(enum.Enum):
    """tensorrt.DataType as of 10.x; ``data_types(version)`` gives a version's members."""
    FLOAT = "float32"
    HALF = "float16"
    INT32 = "int32"
    INT8 = "int8"
    UINT8 = "uint8"   # from 8.5
    INT64 = "int64"   # from 10.0


def data_types(version):
    """The DataType members TensorRT ``version`` has (no UINT8 before 8.5, no INT64 before 10)."""
    major_minor = trt_version.parse_version(version)[:2]
    names = ["FLOAT", "HALF", "INT32", "INT8"]
    if major_minor >= (8, 5):
        names.append("UINT8")
    if major_minor >= (10, 0):
        names.append("INT64")
    return types.SimpleNamespace(**dict((n, DataType[n]) for n in names))


class FakeTensor(object):
    def __init__(self, name, dtype=DataType.FLOAT):
        self.name, self.dtype = name, dtype
        self.dynamic_range = None


class FakeLayer(object):
    def __init__(self, name, kind, outputs):
        self.name, self.type, self._outputs = name, kind, outputs
        self.precision = None
        self.output_types = {}

    @property
    def num_outputs(self):
        return len(self._outputs)

    def get_output(self, i):
        return self._outputs[i]

    def set_output_type(self, i, dtype):
        self.output_types[i] = dtype


class FakeNetwork(object):
    def __init__(self, flags, qdq=False):
        self.flags = flags
        self.inputs = [FakeTensor("input")]
        conv_kind = "QUANTIZE" if qdq else "CONVOLUTION"
        self.layers = [
            FakeLayer("/backbone/conv1/Conv", conv_kind, [FakeTensor("/backbone/conv1/Conv_output_0")]),
            FakeLayer("/head/Shape", "SHAPE", [FakeTensor("/head/Shape_output_0", DataType.INT32)]),
            FakeLayer("/head/Resize", "RESIZE", [FakeTensor("logits")]),
        ]

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, i):
        return self.inputs[i]

    @property
    def num_layers(self):
        return len(self.layers)

    def get_layer(self, i):
        return self.layers[i]


class FakeTimingCache(object):
    def __init__(self, blob):
        self.blob = bytes(blob)

    def serialize(self):
        return self.blob + b"+timings"


class FakeConfig(object):
    """Refuses attributes the TensorRT version does not have (as pybind11 objects do)."""
    ATTRS = ("flags", "int8_calibrator", "timing_cache", "ignore_mismatch", "pools", "default_device_type",
             "DLA_core")

    def __init__(self):
        object.__setattr__(self, "flags", [])
        object.__setattr__(self, "int8_calibrator", None)
        object.__setattr__(self, "timing_cache", None)
        object.__setattr__(self, "ignore_mismatch", None)
        object.__setattr__(self, "pools", {})

    def __setattr__(self, name, value):
        if name not in self.ATTRS:
            raise AttributeError("'IBuilderConfig' object has no attribute '{}'".format(name))
        object.__setattr__(self, name, value)

    def set_flag(self, flag):
        self.flags.append(flag)

    def can_run_on_DLA(self, layer):
        """IBuilderConfig::canRunOnDLA: shape arithmetic (and ArgMax, Cast) is GPU-only."""
        return layer.type not in ("SHAPE", "TOPK", "CAST")

    def create_timing_cache(self, blob):
        return FakeTimingCache(blob)

    def set_timing_cache(self, cache, ignore_mismatch):
        if cache.blob == b"stale":  # made by another TensorRT or GPU
            return False
        self.timing_cache, self.ignore_mismatch = cache, ignore_mismatch
        return True

    def get_timing_cache(self):
        return self.timing_cache


class FakeConfig82(FakeConfig):
    ATTRS = FakeConfig.ATTRS + ("max_workspace_size",)


class FakeConfigPools(FakeConfig):
    def set_memory_pool_limit(self, pool, size):
        self.pools[pool] = size


class FakeParser(object):
    """Parses like TensorRT's ONNX parser of ``trt.__version__``: a file that is not ONNX, or a
    graph that breaks that version's rules (runtime.plan.trt_rules, from onnx-tensorrt's
    operators.md and sources), fails with errors in TensorRT's format."""

    def __init__(self, trt, network, logger):
        self.trt, self.network = trt, network
        self.errors = []

    def parse_from_file(self, path):
        from runtime.plan import trt_rules
        self.trt.parsed.append(path)
        if not self.trt.parse_ok:
            self.errors = ["In node 3 (importResize): UNSUPPORTED_NODE:\n mode"]
            return False
        try:
            found = trt_rules.check(path, self.trt.__version__)
        except UserError as exc:
            self.errors = ["ModelImporter.cpp:735: Failed to parse ONNX model: {}".format(exc)]
            return False
        self.errors = ["In node -1 (importModel): UNSUPPORTED_NODE: {}".format(v) for v in found]
        return not self.errors

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, i):
        return self.errors[i]


class FakeBuilder(object):
    def __init__(self, trt, logger):
        if trt.no_gpu:
            logger.log(Severity.ERROR, "6: CUDA initialization failure with error: 35")
            raise TypeError("pybind11::init(): factory function returned nullptr")
        self.trt, self.logger = trt, logger
        self.platform_has_fast_fp16 = trt.fast_fp16
        self.platform_has_fast_int8 = trt.fast_int8
        self.num_DLA_cores = trt.dla_cores  # Xavier/Orin AGX: 2; TX2, Nano, Orin Nano: 0

    def create_network(self, flags):
        self.trt.network = FakeNetwork(flags, qdq=self.trt.qdq)
        return self.trt.network

    def create_builder_config(self):
        major_minor = trt_version.parse_version(self.trt.__version__)[:2]
        self.trt.config = FakeConfigPools() if major_minor >= (8, 4) else FakeConfig82()
        return self.trt.config

    def build_serialized_network(self, network, config):
        self.trt.built_with = (network, config)
        if self.trt.build_fails:
            self.logger.log(Severity.ERROR, "10: [optimizer.cpp::computeCosts::3728] Error Code 10:\n"
                                            "Internal Error (Could not find any implementation)")
            return None
        return b"PLAN-BYTES"


NPTYPES = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32,
           DataType.INT8: np.int8, DataType.UINT8: np.uint8, DataType.INT64: np.int64}

def make_trt(version="8.6.2.3", fast_fp16=True, fast_int8=True, no_gpu=False, parse_ok=True,
             qdq=False, build_fails=False, dla_cores=0):
    trt = types.ModuleType("tensorrt")
    trt.dla_cores = dla_cores
    trt.DeviceType = enum.Enum("DeviceType", "GPU DLA")
    trt.__version__ = version
    trt.fast_fp16, trt.fast_int8, trt.no_gpu, trt.parse_ok, trt.qdq = (
        fast_fp16, fast_int8, no_gpu, parse_ok, qdq)
    trt.build_fails = build_fails
    trt.parsed, trt.plugins = [], []
    trt.ILogger, trt.Logger = FakeILogger, FakeLogger
    trt.IInt8EntropyCalibrator2 = FakeCalibratorBase
    trt.BuilderFlag = enum.Enum("BuilderFlag", "FP16 INT8 OBEY_PRECISION_CONSTRAINTS STRICT_TYPES GPU_FALLBACK")
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", "WORKSPACE")
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag",
                                                     {"EXPLICIT_BATCH": 0})
    trt.LayerType = types.SimpleNamespace(QUANTIZE="QUANTIZE", DEQUANTIZE="DEQUANTIZE",
                                          CONVOLUTION="CONVOLUTION")
    trt.TensorIOMode = enum.Enum("TensorIOMode", "NONE INPUT OUTPUT")
    trt.DataType = data_types(version)
    trt.float32, trt.float16, trt.int32, trt.int8 = (DataType.FLOAT, DataType.HALF, DataType.INT32,
                                                     DataType.INT8)
    if hasattr(trt.DataType, "UINT8"):
        trt.uint8 = DataType.UINT8
    if hasattr(trt.DataType, "INT64"):
        trt.int64 = DataType.INT64
    trt.nptype = lambda dtype: NPTYPES[dtype]
    trt.init_libnvinfer_plugins = lambda logger, namespace: trt.plugins.append(namespace)
    trt.Builder = lambda logger: FakeBuilder(trt, logger)
    trt.OnnxParser = lambda network, logger: FakeParser(trt, network, logger)
    return trt


# -- version dispatch -------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("8.2.1.8", (8, 2, 1)), ("8.5.2.2", (8, 5, 2)), ("8.6.2", (8, 6, 2)), ("10.3.0", (10, 3, 0)),
    ("10.3.0.post12", (10, 3, 0)), ("8.6", (8, 6, 0)), ("10", (10, 0, 0))])
def test_parse_version(text, expected):
    assert trt_version.parse_version(text) == expected


def test_parse_version_rejects_garbage():
    with pytest.raises(ValueError):
        trt_version.parse_version("unknown")


@pytest.mark.parametrize("value, expected", [
    ((7, 2), "7.2"), ([8, 7], "8.7"), (62, "6.2"), ("8.7", "8.7"), ("sm_87", "8.7"), (None, None)])
def test_compute_capability(value, expected):
    assert trt_version.compute_capability(value) == expected


class FakeCudaDriver(object):
    """libcuda for cuda_gpu_info: one device, or ``status`` from every call."""

    def __init__(self, name=b"Orin", capability=(8, 7), status=0):
        self.name, self.capability, self.status = name, capability, status

    def cuInit(self, flags):
        return self.status

    def cuDeviceGet(self, device, ordinal):
        return self.status

    def cuDeviceGetName(self, buffer, size, device):
        ctypes.memmove(buffer, self.name, len(self.name))
        return self.status

    def cuDeviceGetAttribute(self, value, attribute, device):
        value._obj.value = self.capability[attribute - trt_build.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR]
        return self.status


def test_the_gpu_is_asked_of_the_cuda_driver(capsys):
    """The plan manifest's gpu / compute_capability come from libcuda (no pycuda); without a
    usable driver they stay unrecorded, with one warning."""
    assert trt_build.cuda_gpu_info(lib=FakeCudaDriver()) == {"name": "Orin", "compute_capability": "8.7"}
    assert trt_build.cuda_gpu_info(lib=FakeCudaDriver(status=100)) == {"name": None,
                                                                      "compute_capability": None}
    assert "cannot tell the GPU (cuInit returned CUDA error 100)" in capsys.readouterr().err


# -- calibration caches -----------------------------------------------------------------

@pytest.mark.parametrize("version, header", [
    ("8.2.1", "TRT-8201-EntropyCalibration2"), ("8.5.2.2", "TRT-8502-EntropyCalibration2"),
    ("8.6.2", "TRT-8602-EntropyCalibration2"), ("10.3.0", "TRT-100300-EntropyCalibration2")])
def test_calibration_cache_header(version, header):
    assert calibration_cache.calibration_cache_header(version) == header


def test_amax_hex_is_big_endian_scale():
    # the reference's example line value 3c567fc8 is a scale of ~0.01309, amax ~1.6627
    assert calibration_cache.amax_to_hex(127 * struct.unpack(">f", bytes.fromhex("3c567fc8"))[0]) == "3c567fc8"
    assert abs(calibration_cache.hex_to_amax("3c567fc8") - 1.66268) < 1e-4
    assert calibration_cache.amax_to_hex(127.0) == struct.pack(">f", 1.0).hex() == "3f800000"


def test_calibration_cache_round_trip(tmp_path):
    amax = {"input": 2.64, "/backbone/conv1/Conv_output_0": 1.6627, "logits": 17.5}
    path = tmp_path / "model.cache"
    calibration_cache.write_calibration_cache(path, amax, "8.5.2", "ab" * 32, method="entropy")
    lines = path.read_text().splitlines()
    assert lines[0] == "TRT-8502-EntropyCalibration2"
    assert "/backbone/conv1/Conv_output_0: 3c56805b" in lines
    assert json.loads((tmp_path / "model.cache.json").read_text()) == {
        "onnx_sha256": "ab" * 32, "tensorrt_version": "8.5.2", "method": "entropy"}
    data = calibration_cache.read_calibration_cache(path, expected_sha256="ab" * 32,
                                            expected_version="8.5.2.2")
    header, table = calibration_cache.parse_calibration_cache(data)
    assert header == "TRT-8502-EntropyCalibration2" and set(table) == set(amax)
    for name, value in amax.items():
        assert abs(table[name] - value) <= 1e-6 * value


def test_calibration_cache_refuses_another_model(tmp_path):
    path = tmp_path / "model.cache"
    calibration_cache.write_calibration_cache(path, {"x": 1.0}, "8.6.2", "aa" * 32)
    with pytest.raises(UserError, match="another model"):
        calibration_cache.read_calibration_cache(path, expected_sha256="bb" * 32)


def test_calibration_cache_refuses_another_tensorrt(tmp_path):
    path = tmp_path / "model.cache"
    calibration_cache.write_calibration_cache(path, {"x": 1.0}, "8.5.2", "aa" * 32)
    with pytest.raises(UserError, match="TRT-8602-EntropyCalibration2"):
        calibration_cache.read_calibration_cache(path, "aa" * 32, expected_version="8.6.2")


def test_calibration_cache_needs_its_sidecar(tmp_path):
    path = tmp_path / "model.cache"
    path.write_text("TRT-8602-EntropyCalibration2\nx: 3c567fc8\n")
    with pytest.raises(UserError, match="sidecar"):
        calibration_cache.read_calibration_cache(path)


# -- building on fakes ------------------------------------------------------------------

def onnx_file(tmp_path, opset=13):
    """A real (tiny) ONNX model with the I/O of ``IO``: float input -> Conv -> Resize -> logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    weight = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "/backbone/conv1/weight")
    scales = numpy_helper.from_array(np.ones(4, np.float32), "/head/scales")
    nodes = [helper.make_node("Conv", ["input", weight.name], ["/backbone/conv1/Conv_output_0"],
                              name="/backbone/conv1/Conv"),
             helper.make_node("Resize", ["/backbone/conv1/Conv_output_0", "", scales.name], ["logits"],
                              name="/head/Resize", mode="linear")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                              [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [weight, scales])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return str(path)


def gpu_orin():
    return {"name": "Orin", "compute_capability": (8, 7)}


@pytest.mark.parametrize("version, flags", [("8.2.1.8", 1), ("8.6.2.3", 1), ("10.3.0", 0)])
def test_build_dispatch(tmp_path, version, flags):
    trt = make_trt(version)
    plan, cache = tmp_path / "m.plan", tmp_path / "timing.cache"
    info = trt_build.build_engine(onnx_file(tmp_path), plan, precision="fp16", workspace_mb=256,
                                  timing_cache=cache, trt=trt, gpu_info=gpu_orin)
    config = trt.config
    if version.startswith("8.2"):
        assert config.max_workspace_size == 256 << 20 and config.pools == {}
    else:
        assert config.pools == {trt.MemoryPoolType.WORKSPACE: 256 << 20}
        assert not hasattr(config, "max_workspace_size")
    assert trt.network.flags == flags
    assert trt.plugins == [""] and trt.parsed == [onnx_file(tmp_path)]
    assert config.flags == [trt.BuilderFlag.FP16]
    assert config.timing_cache.blob == b"" and config.ignore_mismatch is False
    assert cache.read_bytes() == b"+timings" and plan.read_bytes() == b"PLAN-BYTES"
    assert info["tensorrt_version"] == trt_version.version_string(version)
    assert info["gpu"] == "Orin" and info["compute_capability"] == "8.7"
    assert info["flags"] == ["FP16"] and info["workspace_mb"] == 256
    assert info["precision"] == "fp16" and info["int8_mode"] is None
    # a second build loads the saved timing cache
    trt_build.build_engine(onnx_file(tmp_path), plan, timing_cache=cache, trt=trt, gpu_info=gpu_orin)
    assert trt.config.timing_cache.blob == b"+timings"


def test_stale_timing_cache_is_replaced(tmp_path, capsys):
    trt = make_trt("8.5.2")
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"stale")
    trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", timing_cache=cache, trt=trt,
                           gpu_info=gpu_orin)
    assert trt.config.timing_cache.blob == b"" and cache.read_bytes() == b"+timings"
    assert "another TensorRT or GPU" in capsys.readouterr().err


def test_build_fp32_sets_no_precision_flag(tmp_path):
    trt = make_trt("8.6.2")
    trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", precision="fp32", trt=trt,
                           gpu_info=gpu_orin)
    assert trt.config.flags == []


def test_build_without_fast_fp16_warns(tmp_path, capsys):
    trt = make_trt("8.6.2", fast_fp16=False)
    info = trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", trt=trt,
                                  gpu_info=gpu_orin)
    assert trt.config.flags == [] and info["flags"] == []
    assert "no fast FP16" in capsys.readouterr().err


def test_int8_refused_on_tx2(tmp_path):
    trt = make_trt("8.2.1.8", fast_int8=False)
    with pytest.raises(UserError, match="TX2 has no fast INT8.*build fp16") as info:
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", precision="int8",
                               trt=trt, gpu_info=gpu_orin)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "m.plan").exists()


def test_int8_refused_without_fast_int8(tmp_path):
    trt = make_trt("8.6.2", fast_int8=False, qdq=True)
    with pytest.raises(UserError, match="no fast INT8"):
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", precision="int8",
                               trt=trt, gpu_info=gpu_orin)


def test_int8_qdq(tmp_path):
    trt = make_trt("8.6.2", qdq=True)
    info = trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", precision="int8",
                                  int8_mode="qdq", trt=trt, gpu_info=gpu_orin)
    assert trt.config.flags == [trt.BuilderFlag.FP16, trt.BuilderFlag.INT8]
    assert trt.config.int8_calibrator is None
    assert info["int8_mode"] == "qdq" and info["flags"] == ["FP16", "INT8"]


def test_int8_qdq_needs_qdq_nodes(tmp_path):
    trt = make_trt("10.3.0", qdq=False)
    with pytest.raises(UserError, match="no QuantizeLinear"):
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", precision="int8",
                               trt=trt, gpu_info=gpu_orin)


def test_int8_from_calibration_cache(tmp_path):
    onnx = onnx_file(tmp_path)
    cache = tmp_path / "model.cache"
    calibration_cache.write_calibration_cache(cache, {"input": 2.0}, "8.5.2", manifest_mod.sha256_file(onnx))
    trt = make_trt("8.5.2.2")
    trt_build.build_engine(onnx, tmp_path / "m.plan", precision="int8", int8_mode="cache",
                           calib_cache=cache, trt=trt, gpu_info=gpu_orin)
    calibrator = trt.config.int8_calibrator
    assert isinstance(calibrator, FakeCalibratorBase) and calibrator.base_initialised
    assert calibrator.read_calibration_cache() == cache.read_bytes()
    assert calibrator.get_batch(["input"]) is None and calibrator.get_batch_size() == 1


def test_int8_cache_for_another_tensorrt_is_refused(tmp_path):
    onnx = onnx_file(tmp_path)
    cache = tmp_path / "model.cache"
    calibration_cache.write_calibration_cache(cache, {"input": 2.0}, "8.5.2", manifest_mod.sha256_file(onnx))
    with pytest.raises(UserError, match="TensorRT 8.6.2"):
        trt_build.build_engine(onnx, tmp_path / "m.plan", precision="int8", int8_mode="cache",
                               calib_cache=cache, trt=make_trt("8.6.2"), gpu_info=gpu_orin)


def test_int8_from_amax_ranges(tmp_path, capsys):
    from runtime.plan.calibration_cache import write_amax_json
    from runtime.manifest import sha256_file
    model = onnx_file(tmp_path)
    amax_path = tmp_path / "amax.json"
    write_amax_json(str(amax_path), {"input": 2.5, "/backbone/conv1/Conv_output_0": -1.5,
                                     "not_in_network": 3.0}, sha256_file(model), "minmax")
    trt = make_trt("10.3.0")
    info = trt_build.build_engine(model, tmp_path / "m.plan", precision="int8",
                                  int8_mode="ranges", amax_json=amax_path, trt=trt,
                                  gpu_info=gpu_orin)
    net = trt.network
    assert net.inputs[0].dynamic_range == (-2.5, 2.5)
    assert net.layers[0].get_output(0).dynamic_range == (-1.5, 1.5)
    assert net.layers[2].get_output(0).dynamic_range is None
    assert info["ranges"]["set"] == 2 and "logits" in info["ranges"]["missing"]
    assert "no INT8 range" in capsys.readouterr().err


def test_amax_table_of_another_model_is_refused(tmp_path):
    from runtime.plan.calibration_cache import write_amax_json
    amax_path = tmp_path / "amax.json"
    write_amax_json(str(amax_path), {"other": 1.0}, "0" * 64, "minmax")
    with pytest.raises(UserError, match="made for another model"):
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", precision="int8",
                               int8_mode="ranges", amax_json=amax_path, trt=make_trt("8.6.2"),
                               gpu_info=gpu_orin)


def test_fp32_layers(tmp_path):
    trt = make_trt("8.6.2")
    info = trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan",
                                  fp32_layers=("/head/",), trt=trt, gpu_info=gpu_orin)
    shape_layer, resize = trt.network.layers[1], trt.network.layers[2]
    assert resize.precision == trt.float32 and resize.output_types == {0: trt.float32}
    assert shape_layer.precision == trt.float32 and shape_layer.output_types == {}  # INT32 kept
    assert trt.network.layers[0].precision is None
    assert trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS in trt.config.flags
    assert info["fp32_layers"] == ["/head/Shape", "/head/Resize"]


def test_fp32_layers_unknown_name(tmp_path):
    with pytest.raises(UserError, match="no layer name contains '/nope/'"):
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", fp32_layers=("/nope/",),
                               trt=make_trt("8.6.2"), gpu_info=gpu_orin)


def test_parse_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="cannot parse .*UNSUPPORTED_NODE: mode") as info:
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan",
                               trt=make_trt("8.2.1", parse_ok=False), gpu_info=gpu_orin)
    assert "\n" not in str(info.value)


def test_build_failure_names_tensorrts_error(tmp_path, capsys):
    with pytest.raises(UserError, match="could not build .*Could not find any implementation") as info:
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan",
                               trt=make_trt("8.6.2", build_fails=True), gpu_info=gpu_orin)
    assert "\n" not in str(info.value) and not (tmp_path / "m.plan").exists()
    assert "[TensorRT]" in capsys.readouterr().err   # errors are printed as they happen too


def test_no_gpu_is_explained(tmp_path):
    with pytest.raises(UserError, match="error 35") as info:
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan",
                               trt=make_trt("10.3.0", no_gpu=True), gpu_info=gpu_orin)
    assert "\n" not in str(info.value)


def test_build_without_tensorrt(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(UserError, match="TensorRT is not installed"):
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan")


def test_build_argument_checks(tmp_path):
    with pytest.raises(UserError, match="precision"):
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", precision="bf16",
                               trt=make_trt())
    with pytest.raises(UserError, match="not found"):
        trt_build.build_engine(tmp_path / "missing.onnx", tmp_path / "m.plan", trt=make_trt())
    with pytest.raises(UserError, match="calibration cache"):
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", precision="int8",
                               int8_mode="cache", trt=make_trt())


# -- plan manifest ----------------------------------------------------------------------

def onnx_manifest():
    return {
        "schema_version": manifest_mod.SCHEMA_VERSION, "arch": "swiftnet_rn18",
        "task": "segmentation",
        "artifact": {"file": "model.onnx", "format": "onnx", "sha256": "00" * 32},
        "input": {"name": "input", "shape": [1, 3, 4, 4], "dtype": "float32", "layout": "NCHW",
                  "color_order": "RGB",
                  "normalization": {"in_graph": False, "scale": 255.0, "mean": [0.485, 0.456, 0.406],
                                    "std": [0.229, 0.224, 0.225]}},
        "outputs": [{"name": "logits", "shape": [1, 2, 4, 4], "dtype": "float32",
                     "meaning": "logits"}],
        "classes": [{"id": 0, "name": "road", "color": [128, 64, 128]},
                    {"id": 1, "name": "car", "color": [0, 0, 142]}],
        "ignore_id": 255, "precision": "fp32"}


def test_plan_manifest_is_what_the_runtime_checks(tmp_path):
    trt = make_trt("8.6.2.3")
    plan = tmp_path / "m.plan"
    info = trt_build.build_engine(onnx_file(tmp_path), plan, trt=trt, gpu_info=gpu_orin)
    source = Manifest.from_dict(onnx_manifest())
    data = trt_build.plan_manifest(source, plan, info)
    assert source.artifact_format == "onnx"          # the ONNX manifest is not touched
    assert data.artifact == {"file": "m.plan", "format": "tensorrt",
                             "sha256": manifest_mod.sha256_file(plan)}
    assert data.precision == "fp16"
    assert data.tensorrt == {"version": "8.6.2", "gpu": "Orin", "compute_capability": "8.7",
                             "flags": ["FP16"], "workspace_mb": 1024, "int8_mode": None}
    data.write(plan)
    # libswiftrt refuses the plan on another TensorRT or GPU from exactly this block
    assert Manifest.load(str(plan)).tensorrt == data.tensorrt


# -- output check -----------------------------------------------------------------------

def test_check_outputs_identical():
    rng = np.random.RandomState(0)
    ref = {"logits": rng.randn(1, 19, 8, 16).astype(np.float32),
           "class_map": rng.randint(0, 19, (1, 8, 16)).astype(np.uint8)}
    result = compare.check_outputs(ref, {k: v.copy() for k, v in ref.items()})
    assert result["ok"] and result["problems"] == []
    assert result["outputs"]["logits"]["mismatch"] == 0.0
    assert result["outputs"]["logits"]["max_abs_error"] == 0.0


def test_check_outputs_small_noise_passes_atol_fails():
    rng = np.random.RandomState(1)
    ref = rng.randn(1, 19, 8, 16).astype(np.float32)
    cand = ref + np.float32(1e-3) * rng.randn(*ref.shape).astype(np.float32)
    assert compare.check_outputs({"logits": ref}, {"logits": cand}, max_mismatch=0.05)["ok"]
    strict = compare.check_outputs({"logits": ref}, {"logits": cand}, atol=1e-6)
    assert not strict["ok"] and "max abs error" in strict["problems"][0]


def test_check_outputs_nan():
    ref = np.zeros((1, 2, 4, 4), np.float32)
    cand = ref.copy()
    cand[0, 0, 0, 0] = np.nan
    cand[0, 1, 0, 0] = np.inf
    result = compare.check_outputs({"logits": ref}, {"logits": cand})
    assert not result["ok"] and "2 NaN/Inf" in result["problems"][0]


def test_check_outputs_argmax_disagreement():
    ref = np.zeros((1, 2, 4, 4), np.float32)
    ref[:, 0] = 1.0
    cand = ref.copy()
    cand[0, 1, :2] = 2.0          # 8 of 16 pixels change class
    result = compare.check_outputs({"logits": ref}, {"logits": cand}, max_mismatch=0.1)
    assert not result["ok"] and result["outputs"]["logits"]["mismatch"] == 0.5


def test_check_outputs_class_map_and_structure():
    ref = {"class_map": np.zeros((1, 4, 4), np.uint8), "extra": np.zeros(3, np.float32)}
    cand = {"class_map": np.zeros((1, 4, 4), np.uint8)}
    cand["class_map"][0, 0, 0] = 1
    result = compare.check_outputs(ref, cand, max_mismatch=0.0)
    assert not result["ok"]
    assert any("missing" in p for p in result["problems"])
    assert result["outputs"]["class_map"]["mismatch"] == 1 / 16
    shape = compare.check_outputs({"x": np.zeros((2, 2))}, {"x": np.zeros((2, 3))})
    assert "shape" in shape["problems"][0]


def test_check_outputs_score_maps_are_not_argmaxed():
    ref = np.random.RandomState(2).rand(1, 8, 16).astype(np.float32)  # outlier score (N, H, W)
    result = compare.check_outputs({"score": ref}, {"score": ref[:, ::-1].copy()})
    assert "mismatch" not in result["outputs"]["score"] and result["ok"]


# -- real TensorRT (skipped without it) -------------------------------------------------

def _real_gpu_available():
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError):
        return False
    return trt_build.cuda_gpu_info()["name"] is not None


@pytest.mark.gpu
def test_real_build(tmp_path):
    """TensorRT's own builder on this GPU: the plan and the manifest block the core checks."""
    if not _real_gpu_available():
        pytest.skip("needs TensorRT and an NVIDIA GPU")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.RandomState(0).randn(2, 3, 1, 1).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["logits"])], "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, 8, 8])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx_path = str(tmp_path / "tiny.onnx")
    onnx.save(model, onnx_path)
    plan = tmp_path / "tiny.plan"
    info = trt_build.build_engine(onnx_path, plan, precision="fp32", workspace_mb=64,
                                  timing_cache=tmp_path / "timing.cache")
    assert plan.stat().st_size > 0 and (tmp_path / "timing.cache").stat().st_size > 0
    gpu = trt_build.cuda_gpu_info()
    assert info["gpu"] == gpu["name"] and info["compute_capability"] == gpu["compute_capability"]


def test_an_illegal_graph_stops_before_the_parser(rn18_engine, tmp_path):
    """The default export (uint8 I/O) on TensorRT 8.2: our check refuses it in one line,
    naming the node and the rule, before TensorRT's parser is even created."""
    trt = make_trt("8.2.1.8")
    plan = tmp_path / "m.plan"
    with pytest.raises(UserError, match=r"not legal for TensorRT 8\.2\.1: .*(UINT8|opset)") as info:
        trt_build.build_engine(rn18_engine, plan, precision="fp16", trt=trt, gpu_info=gpu_orin)
    assert "\n" not in str(info.value)
    assert trt.parsed == [] and not plan.exists()


def test_the_fake_parser_rejects_what_the_real_one_would(rn18_engine, tmp_path):
    """The double parses with TensorRT's rules: an 8.6 parser takes the default export, an 8.2
    parser does not, and bytes that are not ONNX fail like a real parse."""
    ok = make_trt("8.6.2.3")
    parser = FakeParser(ok, None, None)
    assert parser.parse_from_file(rn18_engine) and parser.num_errors == 0
    old = make_trt("8.2.1.8")
    parser = FakeParser(old, None, None)
    assert not parser.parse_from_file(rn18_engine)
    assert any("UINT8" in parser.get_error(i) for i in range(parser.num_errors))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\xff not onnx")
    parser = FakeParser(ok, None, None)
    assert not parser.parse_from_file(str(junk)) and "Failed to parse" in parser.get_error(0)
    assert not hasattr(old.DataType, "UINT8") and hasattr(ok.DataType, "UINT8")
    assert not hasattr(ok.DataType, "INT64") and hasattr(make_trt("10.3.0").DataType, "INT64")
