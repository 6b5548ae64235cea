"""A CUDA graph captured from one enqueue on a stream (CUDA driver API via ctypes).

Used by the TensorRT backend (``TensorRTBackend.capture_graph``) for rt-bench --cuda-graph,
like trtexec --useCudaGraph. Python 3.6+, no pycuda graph API needed.
"""
import ctypes

from runtime.errors import UserError


def libcuda():
    """The CUDA driver library (tests replace this with a fake)."""
    return ctypes.CDLL("libcuda.so.1")


class CudaGraph(object):
    """One CUDA graph captured from ``enqueue()`` on a stream.

    CUDA >= 11.4 instantiates with cuGraphInstantiateWithFlags; CUDA 10.x (TX2) with the
    5-argument cuGraphInstantiate. The CUDA context must be current while capturing;
    ``context`` (a function returning a context manager that makes it current) is used to
    destroy the graph in that context whoever closes it (rt-bench closes it between runs).
    """

    CAPTURE_MODE_THREAD_LOCAL = 1

    def __init__(self, stream_handle, enqueue, lib=None, context=None):
        self.lib = lib if lib is not None else libcuda()
        self.context = context
        self.exec_ = None
        stream = ctypes.c_void_p(int(stream_handle))
        begin = getattr(self.lib, "cuStreamBeginCapture_v2", None) or self.lib.cuStreamBeginCapture
        self._check(begin(stream, ctypes.c_int(self.CAPTURE_MODE_THREAD_LOCAL)), "begin capture")
        graph = ctypes.c_void_p()
        try:
            enqueue()
        finally:
            status = self.lib.cuStreamEndCapture(stream, ctypes.byref(graph))
        self._check(status, "end capture")
        exec_ = ctypes.c_void_p()
        with_flags = getattr(self.lib, "cuGraphInstantiateWithFlags", None)
        if with_flags is not None:
            status = with_flags(ctypes.byref(exec_), graph, ctypes.c_ulonglong(0))
        else:
            status = self.lib.cuGraphInstantiate(ctypes.byref(exec_), graph, None, None,
                                                 ctypes.c_size_t(0))
        self.lib.cuGraphDestroy(graph)
        self._check(status, "instantiate")
        self.exec_ = exec_

    def _check(self, status, what):
        if status:
            raise UserError("CUDA graph {} failed (CUresult {}): run without --cuda-graph".format(
                what, status))

    def launch(self, stream_handle):
        if self.exec_ is None:
            raise RuntimeError("CUDA graph launched after close()")
        self._check(self.lib.cuGraphLaunch(self.exec_, ctypes.c_void_p(int(stream_handle))),
                    "launch")

    def close(self):
        """Destroy the graph exec in its context; a failure is reported (it leaks GPU memory)."""
        if self.exec_ is None:
            return
        exec_, self.exec_ = self.exec_, None
        if self.context is None:
            status = self.lib.cuGraphExecDestroy(exec_)
        else:
            with self.context():
                status = self.lib.cuGraphExecDestroy(exec_)
        self._check(status, "destroy")
