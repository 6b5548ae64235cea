"""Native TensorRT backend: a serialized plan run with pycuda (Python 3.6+, no torch).

One engine, one execution context, one CUDA stream, page-locked host buffers and device
buffers allocated once. Every call pushes the device's *primary* CUDA context (the one
TensorRT's runtime API uses) and pops it again, so the backend can be created in one
thread and run from another. Version differences live in ``trt_api``.
"""
import os
import threading
import time

import numpy as np

from runtime.backends import trt_api
from runtime.backends.base import Backend, TensorInfo
from runtime.errors import UserError

NO_TENSORRT = ("TensorRT is not installed here (it comes with JetPack: python3-libnvinfer) "
               "— use an .onnx engine with ONNX Runtime")
NO_PYCUDA = ("pycuda is not installed here (pip install pycuda on the device; it builds with "
             "nvcc on PATH) — or use an .onnx engine with ONNX Runtime")


def import_tensorrt():
    """The ``tensorrt`` module, or a one-line UserError."""
    try:
        import tensorrt
    except (ImportError, OSError):
        raise UserError(NO_TENSORRT)
    return tensorrt


def import_pycuda():
    """``pycuda.driver``, or a one-line UserError."""
    try:
        import pycuda.driver as cuda
    except (ImportError, OSError):
        raise UserError(NO_PYCUDA)
    return cuda


class TensorRTBackend(Backend):
    """Runs a TensorRT plan on one GPU; ``last_timings`` has the stages of the last run (ms)."""

    name = "tensorrt"

    def __init__(self, path, manifest=None, device=0):
        trt = import_tensorrt()
        cuda = import_pycuda()
        self._trt, self._cuda = trt, cuda
        self.path = str(path)
        self.device = int(device)
        self._closed = False
        self._lock = threading.Lock()
        self._ctx = None
        self._device_buffers = []
        self.last_timings = {}
        if not os.path.exists(self.path):
            raise UserError("engine not found: {}".format(self.path))
        self.version = trt_api.version_string(trt.__version__)
        self.api = trt_api.io_api(trt.__version__)

        try:
            cuda.init()
            count = cuda.Device.count()
        except Exception as exc:  # pycuda raises its own RuntimeError/LogicError types
            raise UserError("no usable CUDA GPU here ({}): TensorRT plans need the GPU they "
                            "were built for".format(_first_line(exc)))
        if self.device >= count:
            raise UserError("CUDA device {} does not exist here ({} device(s))".format(
                self.device, count))
        dev = cuda.Device(self.device)
        self.gpu_name = dev.name()
        self.compute_capability = trt_api.compute_capability(dev.compute_capability())
        if manifest is not None:  # before deserializing: TensorRT's own refusal is cryptic
            trt_api.check_plan(manifest, self.path, self.version, self.gpu_name,
                               self.compute_capability)

        self._ctx = dev.retain_primary_context()
        self._ctx.push()
        try:
            self._load(trt, cuda)
        except BaseException:
            self._release_buffers()
            self._pop()
            self._ctx = None
            raise
        self._pop()

    # -- set-up ---------------------------------------------------------------------------

    def _load(self, trt, cuda):
        self._logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(self._logger, "")  # plugin-backed layers (DeformConv on 10.x)
        self._runtime = trt.Runtime(self._logger)
        with open(self.path, "rb") as handle:
            self._engine = self._runtime.deserialize_cuda_engine(handle.read())
        if self._engine is None:
            raise UserError("TensorRT {} could not load {} (see its log above): rebuild the plan "
                            "here with rt-export".format(self.version, self.path))
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise UserError("TensorRT could not create an execution context for {} (out of GPU "
                            "memory?)".format(self.path))
        self._io = trt_api.list_io(trt, self._engine, self.api)
        self._names = [name for name, _, _, _ in self._io]
        self._host = {}
        self._pointers = []
        for name, _, shape, dtype in self._io:
            host = cuda.pagelocked_empty(shape, dtype)
            buf = cuda.mem_alloc(max(int(host.nbytes), 1))
            self._device_buffers.append(buf)
            self._host[name] = host
            self._pointers.append(buf)
        self._device = dict(zip(self._names, self._pointers))
        self.inputs = [TensorInfo(n, s, d.name) for n, is_in, s, d in self._io if is_in]
        self.outputs = [TensorInfo(n, s, d.name) for n, is_in, s, d in self._io if not is_in]
        self._stream = cuda.Stream()
        self._events = [cuda.Event() for _ in range(4)]

    # -- inference ------------------------------------------------------------------------

    def run(self, feeds):
        if self._closed:
            raise RuntimeError("TensorRT backend used after close()")
        with self._lock:
            self._ctx.push()
            try:
                return self._run(feeds)
            finally:
                self._pop()

    def _run(self, feeds):
        cuda, stream = self._cuda, self._stream
        for info in self.inputs:
            if info.name not in feeds:
                raise ValueError("missing input '{}' (the plan has {})".format(
                    info.name, ", ".join(i.name for i in self.inputs)))
            value = np.asarray(feeds[info.name])
            if tuple(value.shape) != info.shape:
                raise ValueError("input '{}' has shape {}, the plan expects {}".format(
                    info.name, tuple(value.shape), info.shape))
            np.copyto(self._host[info.name], value, casting="same_kind")
        start, copied_in, computed, copied_out = self._events
        start.record(stream)
        for info in self.inputs:
            cuda.memcpy_htod_async(self._device[info.name], self._host[info.name], stream)
        copied_in.record(stream)
        t0 = time.perf_counter()
        trt_api.bind_and_execute(self.api, self._context, self._names, self._pointers,
                                 stream.handle)
        enqueue = (time.perf_counter() - t0) * 1e3
        computed.record(stream)
        for info in self.outputs:
            cuda.memcpy_dtoh_async(self._host[info.name], self._device[info.name], stream)
        copied_out.record(stream)
        stream.synchronize()
        self.last_timings = {"h2d": copied_in.time_since(start),
                             "compute": computed.time_since(copied_in),
                             "d2h": copied_out.time_since(computed), "enqueue": enqueue}
        return {info.name: self._host[info.name].copy() for info in self.outputs}

    # -- reporting and clean-up -----------------------------------------------------------

    def describe(self):
        return {"backend": self.name, "version": self.version, "gpu": self.gpu_name,
                "compute_capability": self.compute_capability, "device": self.device,
                "io_api": self.api}

    def close(self):
        if self._closed or self._ctx is None:
            self._closed = True
            return
        with self._lock:
            self._closed = True
            self._ctx.push()
            try:
                self._release_buffers()
            finally:
                self._pop()
                self._ctx = None  # drop our reference to the primary context

    def _release_buffers(self):
        # Context before engine before runtime; device memory while the context is current.
        for attr in ("_context", "_engine", "_runtime"):
            if hasattr(self, attr):
                setattr(self, attr, None)
        for buf in self._device_buffers:
            buf.free()
        self._device_buffers = []
        self._pointers = []
        self._device = {}

    def _pop(self):
        self._cuda.Context.pop()


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
