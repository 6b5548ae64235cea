"""An engine: a model artifact + its manifest + a backend, turning frames into class maps.

This is the "network" object of the three-object API (source, engine, output):

    engine = Engine("engines/swiftnet.onnx")
    result = engine.segment(frame_bgr)
    result.class_map  # (H, W) uint8 train ids at the network's resolution
    result.outlier_score  # (H, W) float32 1 - P(inlier) when the manifest has that output, else None
"""
import time

import numpy as np

from runtime import manifest as manifest_mod
from runtime import outlier as outlier_mod
from runtime.backends import check_threads, open_backend
from runtime.engine_base import EngineBase
from runtime.errors import ManifestError, UserError
from runtime.manifest import Manifest
from runtime.preprocess import Preprocessor
from runtime.result import Result, refuse_forecast_parts


def open_engine(path, backend=None, providers=None, threads=None, resize=None, current=False,
                verify=True, allow_legacy=False):
    """The engine for ``path``, run by libswiftrt (runtime/backends/native.py) unless asked not to.

    ``path``: an artifact, its manifest, a bundle's ``forecast.json`` or its folder.
    ``backend``: None or "native": the core picks by file (.onnx: ONNX Runtime, .plan:
    TensorRT); "onnxruntime", "openvino", "tensorrt": that backend inside the core;
    "python-onnxruntime" etc.: the Python engine (Engine, ForecastEngine) on that backend, kept
    only while the core replaces it (issue 26), e.g. for side-by-side benchmarks.
    ``current`` (bundles only): also segment the current frame (for side-by-side views).
    ``verify``: the Python engine checks each artifact's sha256 (cached; --no-verify); the core
    always does.
    ``allow_legacy``: also open manifests without their own digest and artifacts without a
    recorded sha256 (exported before both were written; runtime.manifest.Manifest.load).
    """
    check_threads(threads, "threads")  # every engine, whichever backend (rt-ros2's -p threads:=N)
    from runtime.backends import PYTHON_PREFIX
    if not (backend or "").startswith(PYTHON_PREFIX):
        from runtime.backends.native import open_native_engine
        return open_native_engine(path, backend=backend, providers=providers, threads=threads,
                                  resize=resize, current=current,
                                  allow_legacy=allow_legacy)
    backend = backend[len(PYTHON_PREFIX):]
    if manifest_mod.peek_task(path) == "forecast":
        from runtime.forecast import ForecastEngine
        return ForecastEngine(path, backend=backend, providers=providers, threads=threads,
                              resize=resize, current=current, verify=verify,
                              allow_legacy=allow_legacy)
    return Engine(path, backend=backend, providers=providers, threads=threads, resize=resize,
                  verify=verify, allow_legacy=allow_legacy)


class Engine(EngineBase):
    """Loads an artifact with its manifest and runs frames through it (runtime.engine_base).

    ``verify``: refuse an artifact whose sha256 is not its manifest's (a swapped or damaged
    file would otherwise run and give wrong answers); cached, so it costs one hash per
    file version (runtime.manifest.cached_sha256).
    """

    def __init__(self, path, backend=None, providers=None, threads=None, resize=None,
                 verify=True, manifest=None, allow_legacy=False):
        """``manifest``: the artifact's Manifest, for an artifact without a manifest file
        beside it (a candidate being measured); ``path`` is then the artifact itself.
        ``allow_legacy``: see open_engine."""
        self.path = str(path)
        if manifest is None:
            self.manifest = Manifest.load(self.path, allow_legacy=allow_legacy)
            self.artifact = manifest_mod.resolve(self.path)[0]
        else:
            self.manifest, self.artifact = manifest, self.path
        refuse_forecast_parts(self.path, self.manifest)
        if verify:
            self.manifest.verify_artifact(self.artifact)
        self.backend = open_backend(self.artifact, self.manifest, backend=backend,
                                    providers=providers, threads=threads)
        self._check_io()
        self.preprocessor = Preprocessor(self.manifest.input, resize=resize)
        self.batch_size = self.manifest.batch
        self.input_name = self.manifest.input.name
        self.size = self.preprocessor.size
        self.classes = self.manifest.classes
        self.class_map_output = self.manifest.output("class_map")
        self.logits_output = self.manifest.output("logits")
        if self.class_map_output is None and self.logits_output is None:
            raise ManifestError("{}: no output with meaning 'class_map' or 'logits'".format(self.path))
        self.outlier_output = outlier_mod.score_output(self.manifest)
        self.outlier_threshold = (outlier_mod.default_threshold(self.manifest)
                                  if self.outlier_output is not None else None)

    def _check_io(self):
        """Refuse an artifact whose tensors are not the ones its manifest describes (names,
        static dims, input dtype): a wrong manifest must be one line here, not an error of
        the backend at the first frame."""
        inputs = dict((t.name, t) for t in self.backend.inputs)
        described = self.manifest.input
        expected = described.name
        if expected not in inputs:
            raise ManifestError("{}: manifest input '{}' is not in the model (it has {})".format(
                self.path, expected, ", ".join(sorted(inputs))))
        self._check_tensor(inputs[expected], described, "input")
        if str(inputs[expected].dtype) in manifest_mod.DTYPES and \
                str(inputs[expected].dtype) != described.dtype:
            raise ManifestError("{}: input '{}' is {} in the model but {} in its manifest".format(
                self.path, expected, inputs[expected].dtype, described.dtype))
        outputs = dict((t.name, t) for t in self.backend.outputs)
        for out in self.manifest.outputs:
            if out.name not in outputs:
                raise ManifestError("{}: manifest output '{}' is not in the model (it has {})".format(
                    self.path, out.name, ", ".join(sorted(outputs))))
            self._check_tensor(outputs[out.name], out, "output")

    def _check_tensor(self, tensor, described, what):
        dims, want = list(tensor.shape), described.shape
        if len(dims) != len(want) or any(isinstance(d, int) and d != w for d, w in zip(dims, want)):
            raise ManifestError("{}: {} '{}' is {} in the model but {} in its manifest".format(
                self.path, what, described.name, dims, want))

    def infer(self, tensor):
        """Input tensor -> {output name: array} (complete when it returns). A batch-1 tensor
        given to a batch-N artifact runs in slot 0 (the other slots are padding)."""
        if len(tensor) != self.batch_size:
            return self.infer_batch([tensor])[0]
        return self.backend.run({self.input_name: tensor})

    def infer_batch(self, tensors):
        """Batch-1 tensors (None: an empty slot) -> one output dict per tensor (None for None).

        A batch-N artifact runs up to N of them per call: filled slots in order, the rest
        zeros whose outputs are ignored; a batch-1 artifact runs them one by one."""
        if self.batch_size == 1:
            return EngineBase.infer_batch(self, tensors)
        results = [None] * len(tensors)
        filled = [i for i, tensor in enumerate(tensors) if tensor is not None]
        n = self.batch_size
        for start in range(0, len(filled), n):
            chunk = filled[start:start + n]
            first = tensors[chunk[0]]
            batch = np.zeros((n,) + tuple(first.shape[1:]), dtype=first.dtype)
            for slot, i in enumerate(chunk):
                batch[slot] = tensors[i][0]
            outputs = self.backend.run({self.input_name: batch})
            for slot, i in enumerate(chunk):
                results[i] = dict((name, value[slot:slot + 1]) for name, value in outputs.items())
        return results

    def postprocess(self, outputs):
        """Raw outputs -> (H, W) uint8 class map."""
        if self.class_map_output is not None:
            class_map = outputs[self.class_map_output.name][0]
        else:
            class_map = np.argmax(outputs[self.logits_output.name][0], axis=0)
        return class_map.astype(np.uint8, copy=False)

    def outlier_score(self, outputs):
        """Raw outputs -> (H, W) float32 outlier score, or None when the engine has none."""
        if self.outlier_output is None:
            return None
        return outlier_mod.score_map(outputs, self.outlier_output)

    def segment(self, frame):
        """Run one BGR frame through preprocess, inference and postprocess, timing each."""
        t0 = time.perf_counter()
        tensor, fitted, fit = self.preprocess(frame)
        t1 = time.perf_counter()
        outputs = self.infer(tensor)
        t2 = time.perf_counter()
        class_map = self.postprocess(outputs)
        score = self.outlier_score(outputs)
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                   "postprocess": (t3 - t2) * 1e3}
        return Result(fitted, class_map, outputs, timings, fit, score, fitted=fitted)

    def describe(self):
        info = dict(self.backend.describe())
        info.update({"engine": self.artifact, "arch": self.manifest.arch,
                     "task": self.manifest.task,
                     "precision": self.manifest.precision, "input_size": list(self.size)})
        return info

    def close(self):
        self.backend.close()
