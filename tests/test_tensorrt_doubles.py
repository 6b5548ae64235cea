"""TensorRT paths against small fakes of ``tensorrt`` and ``pycuda.driver``.

No GPU here: these tests pin our logic (version dispatch, manifest checks, build flags,
calibration caches, output checks) and the order of calls, written against the API of
TensorRT 8.2 / 8.5-8.6 / 10.x as documented. Only the ``gpu``-marked test touches real
TensorRT, and it is skipped where TensorRT, pycuda or a GPU is missing.
"""
import enum
import json
import os
import struct
import sys
import threading
import types

import numpy as np
import pytest

from runtime import compare
from runtime import manifest as manifest_mod
from runtime.plan import builder as trt_build
from runtime.plan import calibration_cache
from runtime.manifest import Manifest
from runtime.backends import trt_api
from runtime.errors import ManifestError, UserError


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
    major_minor = trt_api.parse_version(version)[:2]
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
        major_minor = trt_api.parse_version(self.trt.__version__)[:2]
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

# name, is_input, shape, dtype
IO = [("input", True, (1, 3, 4, 4), DataType.FLOAT),
      ("logits", False, (1, 2, 4, 4), DataType.FLOAT)]


class FakeBindingEngine(object):
    """TensorRT 8.2: binding API only."""

    def __init__(self, io, trt):
        self.io, self.trt = io, trt

    @property
    def num_bindings(self):
        return len(self.io)

    def get_binding_name(self, i):
        return self.io[i][0]

    def binding_is_input(self, i):
        return self.io[i][1]

    def get_binding_shape(self, i):
        return list(self.io[i][2])

    def get_binding_dtype(self, i):
        return self.io[i][3]

    def create_execution_context(self):
        return FakeContext(self)


class FakeTensorEngine(object):
    """TensorRT 10.x: tensor API only."""

    def __init__(self, io, trt):
        self.io, self.trt = io, trt
        self._by_name = {row[0]: row for row in io}

    @property
    def num_io_tensors(self):
        return len(self.io)

    def get_tensor_name(self, i):
        return self.io[i][0]

    def get_tensor_mode(self, name):
        return self.trt.TensorIOMode.INPUT if self._by_name[name][1] else self.trt.TensorIOMode.OUTPUT

    def get_tensor_shape(self, name):
        return list(self._by_name[name][2])

    def get_tensor_dtype(self, name):
        return self._by_name[name][3]

    def create_execution_context(self):
        return FakeContext(self)


class FakeBothEngine(FakeBindingEngine, FakeTensorEngine):
    """TensorRT 8.5/8.6: both APIs."""

    def __init__(self, io, trt):
        FakeTensorEngine.__init__(self, io, trt)


class FakeContext(object):
    """Computes logits = 2 * input[:, :2] in the fake device memory."""

    def __init__(self, engine):
        self.engine = engine
        self.addresses = {}
        self.calls = []

    def _compute(self, pointers):
        memory = self.engine.trt.cuda.memory
        x = np.frombuffer(bytes(memory[pointers["input"]]), np.float32).reshape(1, 3, 4, 4)
        y = (2 * x[:, :2]).astype(np.float32)
        memory[pointers["logits"]][:] = y.tobytes()

    def _log(self):
        cuda = self.engine.trt.cuda
        if cuda is not None:
            cuda.log.append("execute")

    def execute_async_v2(self, bindings, stream_handle):
        self.calls.append(("v2", stream_handle))
        self._log()
        names = [row[0] for row in self.engine.io]
        self._compute(dict(zip(names, bindings)))
        return True

    def set_tensor_address(self, name, pointer):
        self.addresses[name] = pointer

    def execute_async_v3(self, stream_handle):
        self.calls.append(("v3", stream_handle))
        self._log()
        self._compute(self.addresses)
        return True


class FakeRuntime(object):
    def __init__(self, trt, logger):
        self.trt = trt
        trt.runtime_created = True

    def deserialize_cuda_engine(self, data):
        self.trt.deserialized.append(bytes(data))
        major_minor = trt_api.parse_version(self.trt.__version__)[:2]
        if major_minor < (8, 5):
            engine = FakeBindingEngine(IO, self.trt)
        elif major_minor < (10, 0):
            engine = FakeBothEngine(IO, self.trt)
        else:
            engine = FakeTensorEngine(IO, self.trt)
        self.trt.engine = engine
        return engine


def make_trt(version="8.6.2.3", fast_fp16=True, fast_int8=True, no_gpu=False, parse_ok=True,
             qdq=False, cuda=None, build_fails=False, dla_cores=0):
    trt = types.ModuleType("tensorrt")
    trt.dla_cores = dla_cores
    trt.DeviceType = enum.Enum("DeviceType", "GPU DLA")
    trt.__version__ = version
    trt.fast_fp16, trt.fast_int8, trt.no_gpu, trt.parse_ok, trt.qdq = (
        fast_fp16, fast_int8, no_gpu, parse_ok, qdq)
    trt.build_fails = build_fails
    trt.cuda = cuda
    trt.parsed, trt.deserialized, trt.plugins = [], [], []
    trt.runtime_created = False
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
    trt.Runtime = lambda logger: FakeRuntime(trt, logger)
    return trt


class FakeAllocation(object):
    def __init__(self, cuda, nbytes):
        self.cuda = cuda
        cuda.next_ptr += 256
        self.ptr = cuda.next_ptr
        cuda.memory[self.ptr] = bytearray(nbytes)

    def __int__(self):
        return self.ptr

    def free(self):
        del self.cuda.memory[self.ptr]
        self.cuda.freed.append(self.ptr)


def make_cuda(name="Orin", capability=(8, 7), devices=1, event_ms=(0.25,)):
    """A fake ``pycuda.driver``; ``cuda.log`` records push/pop, h2d/d2h, sync (and the fake
    TensorRT context's "execute"); the n-th Event created reports ``event_ms[n % len]``."""
    cuda = types.ModuleType("pycuda.driver")
    cuda.memory, cuda.freed, cuda.next_ptr = {}, [], 0x1000
    cuda.stack = []  # context stack of the fake
    cuda.threads = set()
    cuda.log = []
    cuda.events = []

    class Ctx(object):
        def push(self):
            cuda.stack.append(self)
            cuda.threads.add(threading.current_thread().name)
            cuda.log.append("push")

    class Context(object):
        @staticmethod
        def pop():
            cuda.stack.pop()
            cuda.log.append("pop")

    class Device(object):
        def __init__(self, n):
            self.n = n

        @staticmethod
        def count():
            return devices

        def name(self):
            return name

        def compute_capability(self):
            return capability

        def retain_primary_context(self):
            return Ctx()

    class Stream(object):
        handle = 0xBEEF

        def synchronize(self):
            assert cuda.stack, "stream synchronized without a current context"
            cuda.synced = True
            cuda.log.append("sync")

    class Event(object):
        def __init__(self):
            self.ms = event_ms[len(cuda.events) % len(event_ms)]
            cuda.events.append(self)

        def record(self, stream=None):
            assert cuda.stack, "event recorded without a current context"

        def time_since(self, other):
            return self.ms

    def memcpy_htod_async(dest, src, stream=None):
        assert cuda.stack, "copy without a current context"
        cuda.memory[int(dest)][:] = np.ascontiguousarray(src).tobytes()
        cuda.log.append("h2d")

    def memcpy_dtoh_async(dest, src, stream=None):
        assert cuda.stack, "copy without a current context"
        dest[...] = np.frombuffer(bytes(cuda.memory[int(src)]), dest.dtype).reshape(dest.shape)
        cuda.log.append("d2h")

    cuda.init = lambda: None
    cuda.Device, cuda.Context, cuda.Stream, cuda.Event = Device, Context, Stream, Event
    cuda.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)
    cuda.mem_alloc = lambda nbytes: FakeAllocation(cuda, nbytes)
    cuda.memcpy_htod_async, cuda.memcpy_dtoh_async = memcpy_htod_async, memcpy_dtoh_async
    return cuda


class FakeCudaLib(object):
    """The CUDA driver library for CudaGraph: every cu* call is logged and succeeds."""

    def __init__(self, log, fail=()):
        self.log, self.fail = log, set(fail)

    def __getattr__(self, name):
        if not name.startswith("cu"):
            raise AttributeError(name)

        def call(*args):
            self.log.append(name)
            return 999 if name in self.fail else 0
        return call


def install(monkeypatch, trt, cuda):
    """Make ``import tensorrt`` and ``import pycuda.driver`` find the fakes."""
    package = types.ModuleType("pycuda")
    package.driver = cuda
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)


def plan_files(tmp_path, version="8.6.2", gpu="Orin", capability="8.7"):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"PLAN-BYTES")
    manifest = Manifest.from_dict(onnx_manifest()).derive(
        artifact={"file": "model.plan", "format": "tensorrt"},
        tensorrt={"version": version, "gpu": gpu, "compute_capability": capability})
    return str(plan), manifest


# -- version dispatch -------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("8.2.1.8", (8, 2, 1)), ("8.5.2.2", (8, 5, 2)), ("8.6.2", (8, 6, 2)), ("10.3.0", (10, 3, 0)),
    ("10.3.0.post12", (10, 3, 0)), ("8.6", (8, 6, 0)), ("10", (10, 0, 0))])
def test_parse_version(text, expected):
    assert trt_api.parse_version(text) == expected


def test_parse_version_rejects_garbage():
    with pytest.raises(ValueError):
        trt_api.parse_version("unknown")


@pytest.mark.parametrize("version, api", [
    ("8.2.1", "binding"), ("8.4.3", "binding"), ("8.5.2", "tensor"), ("8.6.2", "tensor"),
    ("10.3.0", "tensor"), ("7.1.3", "binding")])
def test_io_api(version, api):
    assert trt_api.io_api(version) == api


@pytest.mark.parametrize("engine_class, api", [
    (FakeBindingEngine, "binding"), (FakeTensorEngine, "tensor"), (FakeBothEngine, "tensor")])
def test_list_io_both_kinds(engine_class, api):
    trt = make_trt()
    io = trt_api.list_io(trt, engine_class(IO, trt), api)
    assert io == [("input", True, (1, 3, 4, 4), np.dtype("float32")),
                  ("logits", False, (1, 2, 4, 4), np.dtype("float32"))]


def test_binding_api_on_a_tensor_only_engine_fails_loudly():
    trt = make_trt("10.3.0")
    with pytest.raises(AttributeError):
        trt_api.list_io(trt, FakeTensorEngine(IO, trt), "binding")


def test_list_io_refuses_dynamic_shapes():
    trt = make_trt()
    io = [("input", True, (-1, 3, 4, 4), DataType.FLOAT)] + IO[1:]
    with pytest.raises(UserError, match="dynamic shapes"):
        trt_api.list_io(trt, FakeTensorEngine(io, trt), "tensor")


def test_bind_and_execute_binding_api():
    calls = []
    context = types.SimpleNamespace(
        execute_async_v2=lambda bindings, stream_handle: calls.append((bindings, stream_handle)) or True)
    trt_api.bind_and_execute("binding", context, ["a", "b"], [11, 22], 7)
    assert calls == [([11, 22], 7)]


def test_bind_and_execute_tensor_api():
    addresses, calls = {}, []
    context = types.SimpleNamespace(
        set_tensor_address=lambda name, ptr: addresses.__setitem__(name, ptr),
        execute_async_v3=lambda stream_handle: calls.append(stream_handle) or True)
    trt_api.bind_and_execute("tensor", context, ["a", "b"], [11, 22], 7)
    assert addresses == {"a": 11, "b": 22} and calls == [7]


def test_bind_and_execute_reports_failure():
    context = types.SimpleNamespace(execute_async_v3=lambda stream_handle: False,
                                    set_tensor_address=lambda name, ptr: None)
    with pytest.raises(RuntimeError, match="could not enqueue"):
        trt_api.bind_and_execute("tensor", context, ["a"], [1], 0)


# -- plan compatibility -----------------------------------------------------------------

def test_plan_check_passes_on_the_same_device():
    block = {"version": "8.6.2", "gpu": "Orin", "compute_capability": "8.7"}
    assert trt_api.plan_mismatch(block, "8.6.2.3", "orin", (8, 7)) is None


def test_plan_check_message():
    block = {"version": "8.5.2.2", "gpu": "Xavier", "compute_capability": "7.2"}
    problem = trt_api.plan_mismatch(block, "8.6.2", "Orin", (8, 7))
    assert problem == ("plan was built with TensorRT 8.5.2 for Xavier (sm 7.2); "
                       "this is TensorRT 8.6.2 on Orin (sm 8.7)")


@pytest.mark.parametrize("block", [
    {"version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7"},     # other TensorRT
    {"version": "8.6.2", "gpu": "Xavier", "compute_capability": "7.2"},    # other GPU
    {"version": "8.6.2", "gpu": "Orin", "compute_capability": "7.2"},      # other sm
    {"version": "8.6.1", "gpu": "Orin", "compute_capability": "8.7"}])     # other patch
def test_plan_check_refuses(block):
    with pytest.raises(ManifestError, match="rebuild it here"):
        trt_api.check_plan(block, "m.plan", "8.6.2", "Orin", (8, 7))


def test_plan_check_needs_the_block():
    with pytest.raises(ManifestError, match="'tensorrt' block"):
        trt_api.check_plan(None, "m.plan", "8.6.2", "Orin", (8, 7))


def test_plan_check_skips_unrecorded_gpu():
    block = {"version": "8.6.2", "gpu": None, "compute_capability": None}
    assert trt_api.plan_mismatch(block, "8.6.2", "Orin", (8, 7)) is None


@pytest.mark.parametrize("value, expected", [
    ((7, 2), "7.2"), ([8, 7], "8.7"), (62, "6.2"), ("8.7", "8.7"), ("sm_87", "8.7"), (None, None)])
def test_compute_capability(value, expected):
    assert trt_api.compute_capability(value) == expected


# -- backend on fakes -------------------------------------------------------------------

@pytest.mark.parametrize("built, gpu, cc", [
    ("8.5.2", "Orin", "8.7"),       # other TensorRT
    ("8.6.2", "Xavier", "7.2")])    # other GPU
def test_backend_refuses_mismatch_before_deserializing(tmp_path, monkeypatch, built, gpu, cc):
    cuda = make_cuda("Orin", (8, 7))
    trt = make_trt("8.6.2", cuda=cuda)
    install(monkeypatch, trt, cuda)
    path, manifest = plan_files(tmp_path, built, gpu, cc)
    from runtime.backends.tensorrt import TensorRTBackend
    with pytest.raises(ManifestError) as info:
        TensorRTBackend(path, manifest=manifest)
    assert "this is TensorRT 8.6.2 on Orin (sm 8.7)" in str(info.value)
    assert "\n" not in str(info.value)
    assert not trt.runtime_created and trt.deserialized == []
    assert cuda.stack == []


@pytest.mark.parametrize("version, call", [("8.2.1.8", "v2"), ("8.6.2.3", "v3"), ("10.3.0", "v3")])
def test_backend_runs_on_fakes(tmp_path, monkeypatch, version, call):
    cuda = make_cuda("Orin", (8, 7))
    trt = make_trt(version, cuda=cuda)
    install(monkeypatch, trt, cuda)
    path, manifest = plan_files(tmp_path, version, "Orin", "8.7")
    from runtime.backends.tensorrt import TensorRTBackend
    backend = TensorRTBackend(path, manifest=manifest)
    assert trt.deserialized == [b"PLAN-BYTES"] and trt.plugins == [""]
    assert [(t.name, t.shape, t.dtype) for t in backend.inputs] == [("input", (1, 3, 4, 4), "float32")]
    assert [(t.name, t.shape, t.dtype) for t in backend.outputs] == [("logits", (1, 2, 4, 4), "float32")]
    x = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    out = backend.run({"input": x})
    np.testing.assert_array_equal(out["logits"], 2 * x[:, :2])
    assert trt.engine is not None
    context_calls = backend._context.calls
    assert context_calls == [(call, 0xBEEF)]
    assert set(backend.last_timings) == {"h2d", "compute", "d2h", "enqueue"}
    assert cuda.stack == []                     # every push popped
    # outputs are copies: the next run does not change them
    backend.run({"input": x + 1})
    np.testing.assert_array_equal(out["logits"], 2 * x[:, :2])
    info = backend.describe()
    assert info["backend"] == "tensorrt" and info["gpu"] == "Orin"
    assert info["compute_capability"] == "8.7" and info["version"] == trt_api.version_string(version)
    backend.close()
    assert cuda.memory == {} and len(cuda.freed) == 2 and cuda.stack == []
    backend.close()                             # idempotent


def test_backend_runs_from_a_worker_thread(tmp_path, monkeypatch):
    cuda = make_cuda()
    trt = make_trt("8.6.2", cuda=cuda)
    install(monkeypatch, trt, cuda)
    path, manifest = plan_files(tmp_path)
    from runtime.backends.tensorrt import TensorRTBackend
    backend = TensorRTBackend(path, manifest=manifest)
    results = []
    x = np.ones((1, 3, 4, 4), np.float32)
    worker = threading.Thread(target=lambda: results.append(backend.run({"input": x})),
                              name="worker")
    worker.start()
    worker.join()
    np.testing.assert_array_equal(results[0]["logits"], 2 * np.ones((1, 2, 4, 4)))
    assert "worker" in cuda.threads and cuda.stack == []
    backend.close()


def test_backend_checks_input_shape(tmp_path, monkeypatch):
    cuda = make_cuda()
    trt = make_trt("8.6.2", cuda=cuda)
    install(monkeypatch, trt, cuda)
    path, manifest = plan_files(tmp_path)
    from runtime.backends.tensorrt import TensorRTBackend
    backend = TensorRTBackend(path, manifest=manifest)
    with pytest.raises(ValueError, match="expects"):
        backend.run({"input": np.zeros((1, 3, 8, 8), np.float32)})
    assert cuda.stack == []


def _fake_backend(tmp_path, monkeypatch, version="8.6.2", event_ms=(0.25,)):
    cuda = make_cuda(event_ms=event_ms)
    trt = make_trt(version, cuda=cuda)
    install(monkeypatch, trt, cuda)
    path, manifest = plan_files(tmp_path, version)
    from runtime.backends.tensorrt import TensorRTBackend
    return TensorRTBackend(path, manifest=manifest), cuda


def test_run_is_one_step_of_h2d_execute_d2h(tmp_path, monkeypatch):
    backend, cuda = _fake_backend(tmp_path, monkeypatch, event_ms=(0.5, 1.0, 2.0, 0.25))
    del cuda.log[:]
    backend.run({"input": np.ones((1, 3, 4, 4), np.float32)})
    assert cuda.log == ["push", "h2d", "execute", "d2h", "sync", "pop"]
    assert backend.last_timings["h2d"] == 1.0 and backend.last_timings["compute"] == 2.0
    assert backend.last_timings["d2h"] == 0.25 and backend.last_timings["enqueue"] >= 0
    backend.close()


@pytest.mark.parametrize("version", ["8.2.1.8", "10.3.0"])
def test_run_timed_without_transfers(tmp_path, monkeypatch, version):
    backend, cuda = _fake_backend(tmp_path, monkeypatch, version, event_ms=(0.5, 0.5, 2.0, 0.25))
    x = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    del cuda.log[:]
    backend.load_inputs({"input": x})
    assert cuda.log == ["push", "h2d", "sync", "pop"]  # copied in once
    del cuda.log[:]
    timings = backend.run_timed(transfers=False)
    assert sorted(timings) == ["compute", "enqueue"] and timings["compute"] == 2.0
    assert cuda.log == ["push", "execute", "sync", "pop"]
    assert backend.last_timings == timings and cuda.stack == []
    # the outputs stay on the device; with transfers they come back into the pinned buffer
    del cuda.log[:]
    timings = backend.run_timed(transfers=True)
    assert sorted(timings) == ["compute", "d2h", "enqueue", "h2d"]
    assert cuda.log == ["push", "h2d", "execute", "d2h", "sync", "pop"]
    np.testing.assert_array_equal(backend._host["logits"], 2 * x[:, :2])
    backend.close()
    with pytest.raises(RuntimeError, match="after close"):
        backend.run_timed()
    assert cuda.stack == []


def test_load_inputs_checks_the_feeds(tmp_path, monkeypatch):
    backend, cuda = _fake_backend(tmp_path, monkeypatch)
    with pytest.raises(ValueError, match="missing input 'input'"):
        backend.load_inputs({"frame": np.zeros((1, 3, 4, 4), np.float32)})
    with pytest.raises(ValueError, match="expects"):
        backend.load_inputs({"input": np.zeros((1, 3, 8, 8), np.float32)})
    assert cuda.stack == []
    backend.close()


def test_capture_graph_and_launch(tmp_path, monkeypatch):
    backend, cuda = _fake_backend(tmp_path, monkeypatch)
    backend.load_inputs({"input": np.ones((1, 3, 4, 4), np.float32)})
    del cuda.log[:]
    graph = backend.capture_graph(cuda_lib=FakeCudaLib(cuda.log))
    capture = cuda.log[cuda.log.index("cuStreamBeginCapture_v2"):]
    assert capture[:3] == ["cuStreamBeginCapture_v2", "execute", "cuStreamEndCapture"]
    assert "cuGraphInstantiateWithFlags" in capture and "cuGraphDestroy" in capture
    assert cuda.log[0] == "push" and cuda.log[-1] == "pop" and cuda.stack == []
    del cuda.log[:]
    timings = backend.run_timed(transfers=False, graph=graph)
    assert cuda.log == ["push", "cuGraphLaunch", "sync", "pop"]
    assert sorted(timings) == ["compute", "enqueue"]
    del cuda.log[:]
    backend.close()                             # closes a graph still open, in the context
    assert cuda.log == ["push", "push", "cuGraphExecDestroy", "pop", "pop"] and cuda.stack == []
    graph.close()                               # idempotent
    assert cuda.log.count("cuGraphExecDestroy") == 1


def test_graph_closed_by_its_user_is_destroyed_in_the_context_and_checked(tmp_path, monkeypatch):
    backend, cuda = _fake_backend(tmp_path, monkeypatch)
    backend.load_inputs({"input": np.ones((1, 3, 4, 4), np.float32)})
    graph = backend.capture_graph(cuda_lib=FakeCudaLib(cuda.log))
    del cuda.log[:]
    graph.close()                               # as rt-bench does between runs
    assert cuda.log == ["push", "cuGraphExecDestroy", "pop"] and cuda.stack == []
    failing = backend.capture_graph(cuda_lib=FakeCudaLib(cuda.log, fail=["cuGraphExecDestroy"]))
    with pytest.raises(UserError, match="CUDA graph destroy failed"):
        failing.close()
    assert cuda.stack == []
    backend.close()


def test_capture_graph_failure_is_one_line(tmp_path, monkeypatch):
    backend, cuda = _fake_backend(tmp_path, monkeypatch)
    lib = FakeCudaLib(cuda.log, fail=["cuStreamEndCapture"])
    with pytest.raises(UserError, match="CUDA graph end capture failed") as info:
        backend.capture_graph(cuda_lib=lib)
    assert "\n" not in str(info.value) and cuda.stack == []
    backend.close()


def test_cuda_graph_without_flags_uses_the_cuda10_instantiate():
    from runtime.backends.cuda_graph import CudaGraph

    class Cuda10Lib(FakeCudaLib):
        def __getattr__(self, name):
            if name in ("cuStreamBeginCapture_v2", "cuGraphInstantiateWithFlags"):
                raise AttributeError(name)
            return FakeCudaLib.__getattr__(self, name)

    log = []
    graph = CudaGraph(5, lambda: log.append("enqueue"), lib=Cuda10Lib(log))
    assert log == ["cuStreamBeginCapture", "enqueue", "cuStreamEndCapture", "cuGraphInstantiate",
                   "cuGraphDestroy"]
    graph.launch(5)
    graph.close()
    with pytest.raises(RuntimeError, match="after close"):
        graph.launch(5)


def test_missing_tensorrt_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail
    from runtime.backends.tensorrt import TensorRTBackend
    with pytest.raises(UserError) as info:
        TensorRTBackend(str(tmp_path / "m.plan"))
    assert str(info.value) == ("TensorRT is not installed here (it comes with JetPack: "
                               "python3-libnvinfer) — use an .onnx engine with ONNX Runtime")


def test_missing_pycuda_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", make_trt())
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    from runtime.backends.tensorrt import TensorRTBackend
    with pytest.raises(UserError, match="pycuda is not installed") as info:
        TensorRTBackend(str(tmp_path / "m.plan"))
    assert "\n" not in str(info.value)


def test_open_backend_reaches_tensorrt(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    from runtime.backends import open_backend
    with pytest.raises(UserError, match="TensorRT is not installed"):
        open_backend(str(tmp_path / "m.plan"), Manifest.from_dict(onnx_manifest()).derive(
            artifact={"file": "m.plan", "format": "tensorrt"}))


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
    assert info["tensorrt_version"] == trt_api.version_string(version)
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
    loaded = Manifest.load(str(plan))
    trt_api.check_plan(loaded.tensorrt, str(plan), "8.6.2.3", "Orin", (8, 7))
    with pytest.raises(ManifestError):
        trt_api.check_plan(loaded.tensorrt, str(plan), "10.3.0", "Orin", (8, 7))


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
        import pycuda.driver as cuda
        cuda.init()
        return cuda.Device.count() > 0
    except Exception:
        return False


@pytest.mark.gpu
def test_real_build_and_run(tmp_path):
    if not _real_gpu_available():
        pytest.skip("needs TensorRT, pycuda and an NVIDIA GPU")
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from runtime.backends.tensorrt import TensorRTBackend

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
    source = onnx_manifest()
    source["input"]["shape"] = [1, 3, 8, 8]
    source["outputs"][0]["shape"] = [1, 2, 8, 8]
    data = trt_build.plan_manifest(Manifest.from_dict(source), plan, info)
    backend = TensorRTBackend(str(plan), manifest=data)
    try:
        x = np.random.RandomState(1).randn(1, 3, 8, 8).astype(np.float32)
        out = backend.run({"input": x})
        expected = np.einsum("oc,nchw->nohw", weight[:, :, 0, 0], x)
        check = compare.check_outputs({"logits": expected}, out, atol=1e-3)
        assert check["ok"], check["problems"]
        assert set(backend.last_timings) == {"h2d", "compute", "d2h", "enqueue"}
    finally:
        backend.close()


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
