"""swiftrt device runtime: libswiftrt (the C core) through ctypes, numpy + OpenCV around it, never torch.

Three objects, in the spirit of jetson-inference (see docs/streaming.md, "Embedding"):
``runtime.sources`` (where frames come from), the engine ``runtime.open_engine`` returns (the
network, run by the core), ``runtime.outputs`` (where results go). This module stays light on
purpose: the export side imports ``runtime.manifest`` without pulling OpenCV.
"""
__version__ = "0.1.0"


def open_engine(path, backend=None, providers=None, threads=None, resize=None, current=False,
                verify=True, allow_legacy=False):
    """The engine for ``path``, run by libswiftrt (runtime/backends/native.py): a NativeEngine,
    or a NativeForecastEngine for a forecast bundle.

    ``path``: an artifact, its manifest, a bundle's ``forecast.json`` or its folder.
    ``backend``: None, "native" or "auto": the core picks by file (.onnx: ONNX Runtime, .plan:
    TensorRT); "onnxruntime", "openvino", "tensorrt": that backend of the core.
    ``providers``: ONNX Runtime execution providers (e.g. ["tensorrt", "cuda", "cpu"]).
    ``current`` (bundles only): also segment the current frame (for side-by-side views).
    ``verify``: kept for the callers' --no-verify; the core always checks each artifact's sha256.
    ``allow_legacy``: also open manifests without their own digest and artifacts without a
    recorded sha256 (exported before both were written; runtime.manifest.Manifest.load).
    """
    from runtime.backends import check_threads  # lazy: keeps this module light
    from runtime.backends.native import open_native_engine
    check_threads(threads, "threads")  # every engine an application opens (rt-ros2's -p threads:=N)
    return open_native_engine(path, backend=backend, providers=providers, threads=threads,
                              resize=resize, current=current, allow_legacy=allow_legacy)
