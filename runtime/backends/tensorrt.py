"""Native TensorRT backend: a serialized plan run with pycuda (Python 3.6+, no torch).

One engine, one execution context, one CUDA stream, page-locked host buffers and device
buffers allocated once. Every call pushes the device's *primary* CUDA context (the one
TensorRT's runtime API uses) and pops it again, so the backend can be created in one
thread and run from another. Version differences live in ``trt_api``.

``run`` is inference; ``load_inputs`` / ``run_timed`` / ``capture_graph`` are for rt-bench
(--no-transfers, --cuda-graph). Both go through one H2D -> execute -> D2H step (``_step``),
timed with CUDA events.
"""
import contextlib
import os
import threading
import time

import numpy as np

from runtime.backends import cuda_graph, trt_api
from runtime.backends.base import Backend, TensorInfo
from runtime.errors import UserError, first_line

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
        self._graphs = []
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
                            "were built for".format(first_line(exc)))
        if self.device >= count:
            raise UserError("CUDA device {} does not exist here ({} device(s))".format(
                self.device, count))
        dev = cuda.Device(self.device)
        self.gpu_name = dev.name()
        self.compute_capability = trt_api.compute_capability(dev.compute_capability())
        if manifest is not None:  # before deserializing: TensorRT's own refusal is cryptic
            trt_api.check_plan(manifest.tensorrt, self.path, self.version, self.gpu_name,
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
        """One inference: copy ``feeds`` in, H2D, execute, D2H; the outputs (copies)."""
        with self._current():
            self._stage(feeds)
            self._step(transfers=True)
            return {info.name: self._host[info.name].copy() for info in self.outputs}

    # -- benchmarking (rt-bench --no-transfers / --cuda-graph) ----------------------------

    def load_inputs(self, feeds):
        """Put ``feeds`` in the pinned input buffers and on the device once, for run_timed."""
        with self._current():
            self._stage(feeds)
            self._copy_in()
            self._stream.synchronize()

    def run_timed(self, transfers=True, graph=None):
        """One inference on the inputs already loaded (``load_inputs``); its timings (ms).

        ``transfers=False``: no H2D/D2H (the inputs stay on the device, the outputs are
        left there), timings ``compute`` and ``enqueue``; with transfers also ``h2d`` and
        ``d2h``. ``graph``: a ``capture_graph()`` launched instead of the enqueue.
        """
        with self._current():
            return dict(self._step(transfers=transfers, graph=graph))

    def capture_graph(self, cuda_lib=None):
        """The enqueue captured once as a CUDA graph (for ``run_timed(graph=...)``).

        The caller closes it; ``close()`` closes any graph still open.
        """
        with self._current():
            self._enqueue()           # TensorRT's lazy set-up happens before any capture
            self._stream.synchronize()
            graph = cuda_graph.CudaGraph(self._stream.handle, self._enqueue, lib=cuda_lib,
                                         context=self._pushed)
            self._graphs.append(graph)
            return graph

    # -- the one enqueue path -------------------------------------------------------------

    @contextlib.contextmanager
    def _pushed(self):
        """Our context current (pushed, popped again), without the lock (graph destruction)."""
        self._ctx.push()
        try:
            yield
        finally:
            self._pop()

    @contextlib.contextmanager
    def _current(self):
        """Hold the lock with our context current (pushed, popped again on the way out)."""
        if self._closed:
            raise RuntimeError("TensorRT backend used after close()")
        with self._lock:
            self._ctx.push()
            try:
                yield
            finally:
                self._pop()

    def _stage(self, feeds):
        """Check ``feeds`` and copy them into the pinned input buffers."""
        for info in self.inputs:
            if info.name not in feeds:
                raise ValueError("missing input '{}' (the plan has {})".format(
                    info.name, ", ".join(i.name for i in self.inputs)))
            value = np.asarray(feeds[info.name])
            if tuple(value.shape) != info.shape:
                raise ValueError("input '{}' has shape {}, the plan expects {}".format(
                    info.name, tuple(value.shape), info.shape))
            np.copyto(self._host[info.name], value, casting="same_kind")

    def _copy_in(self):
        for info in self.inputs:
            self._cuda.memcpy_htod_async(self._device[info.name], self._host[info.name],
                                         self._stream)

    def _copy_out(self):
        for info in self.outputs:
            self._cuda.memcpy_dtoh_async(self._host[info.name], self._device[info.name],
                                         self._stream)

    def _enqueue(self):
        trt_api.bind_and_execute(self.api, self._context, self._names, self._pointers,
                                 self._stream.handle)

    def _step(self, transfers=True, graph=None):
        """[H2D ->] execute (or launch ``graph``) [-> D2H], synchronize; sets last_timings.

        Timed with CUDA events on the stream, plus the host-side enqueue time. Needs the
        lock and the context (``_current``).
        """
        stream = self._stream
        start, copied_in, computed, copied_out = self._events
        start.record(stream)
        if transfers:
            self._copy_in()
        copied_in.record(stream)
        t0 = time.perf_counter()
        if graph is not None:
            graph.launch(stream.handle)
        else:
            self._enqueue()
        enqueue = (time.perf_counter() - t0) * 1e3
        computed.record(stream)
        if transfers:
            self._copy_out()
        copied_out.record(stream)
        stream.synchronize()
        timings = {"compute": computed.time_since(copied_in), "enqueue": enqueue}
        if transfers:
            timings.update(h2d=copied_in.time_since(start), d2h=copied_out.time_since(computed))
        self.last_timings = timings
        return timings

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
        # Graphs, then context before engine before runtime; device memory while the
        # context is current.
        for graph in self._graphs:
            graph.close()
        self._graphs = []
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
