"""The one small interface every inference backend implements.

A backend owns a loaded model and runs it: ``run(feeds) -> {name: array}``.
Pre- and postprocessing live outside (runtime/preprocess.py, runtime/engine.py),
so ONNX Runtime and TensorRT differ only here.
"""


class TensorInfo(object):
    """Name, shape and numpy dtype of one model input or output."""

    __slots__ = ("name", "shape", "dtype")

    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype

    def __repr__(self):
        return "TensorInfo({!r}, {}, {})".format(self.name, self.shape, self.dtype)


class Backend(object):
    """Base class: subclasses set ``name``, ``inputs``, ``outputs`` and implement ``run``."""

    name = "abstract"
    inputs = ()   # list of TensorInfo
    outputs = ()  # list of TensorInfo

    def run(self, feeds):
        """Run one inference; ``feeds`` maps input names to arrays. Returns {output name: array}.

        The call is complete when it returns (results are on the host), so that
        timing around it measures the whole inference. The arrays are the caller's to keep
        (fresh, or copies of buffers the backend reuses): the pipeline postprocesses frame n
        while frame n+1 runs.
        """
        raise NotImplementedError

    def describe(self):
        """Backend name, versions and devices, for reports."""
        return {"backend": self.name}

    def close(self):
        """Release resources (GPU buffers, sessions)."""
