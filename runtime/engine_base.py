"""The engine protocol: what the pipeline, rt-ros2's node, rt-bench and the report ask of an engine.

Every engine derives from ``EngineBase``: the core's NativeEngine (one network) and
NativeForecastEngine (a bundle of three, with a ring buffer), runtime/backends/native.py, and test
doubles. The defaults are those of a stateless engine, so the
pipeline calls every method on every engine instead of probing which ones exist:

- ``preprocess(frame)`` -> (input tensor, fitted frame, Fit); ``infer(tensor)`` -> {name: array}
  (fresh arrays: the next frame's inference overlaps this frame's postprocessing);
  ``postprocess(outputs)`` -> (H, W) uint8 class map (None while a forecaster warms up);
  ``outlier_score(outputs)`` -> (H, W) float32 or None.
- ``infer_at(tensor, frame_time)``: used by the pipeline instead of ``infer``; ``frame_time`` is
  the frame's media time for files with a frame rate, its capture time for live sources, None
  when unknown. A stateless engine ignores it.
- ``reset()``: a run starts (a stateful engine forgets the previous stream).
- ``finish_frame(outputs)``: called once per processed frame, in order; what it returns is the
  frame result's ``details`` (e.g. a ForecastFrame) and is handed to the visualizer.
- ``stream_summary()``: a dict merged into Pipeline.summary() (the report).
- ``dummy_input(seed)``: a random input of the right shape and dtype (warm-up, benchmarks).
- ``segment_batch(frames)``: several cameras' frames at once (None where a camera has no new
  frame) -> one Result per frame (None for None). ``infer_batch(tensors)`` is its inference:
  a loop over ``infer`` by default; an engine whose artifact takes a batch of ``batch_size``
  frames (rt-export --batch N) runs them in one call, padding missing slots.

Attributes: ``path``, ``manifest``, ``batch_size`` (frames one inference takes),
``classes``, ``size`` (network input (H, W)), ``outlier_output`` (the manifest's outlier
score output, None without one), ``outlier_threshold``, ``horizon_s`` (forecasters: how far ahead, s) and ``stateful`` (its
output depends on earlier frames: a forecast bundle).
"""
import time

import numpy as np

from runtime.errors import UserError
from runtime.result import Result


class EngineBase(object):
    """The methods and attributes every engine has, with a stateless engine's defaults."""

    path = None
    manifest = None
    classes = ()
    size = None                # (H, W) of the network input
    preprocessor = None        # runtime.core_preprocess.Preprocessor
    outlier_output = None      # the manifest's outlier score output, None without one
    outlier_threshold = None
    horizon_s = None           # forecasters: seconds between a frame and its forecast
    stateful = False           # output depends on earlier frames (reset() starts a stream)
    batch_size = 1             # frames one inference takes (the artifact's first input dim)

    def preprocess(self, frame):
        """BGR frame -> (input tensor, fitted frame, Fit)."""
        return self.preprocessor(frame)

    def infer(self, tensor):
        """Input tensor -> {output name: array} (complete when it returns)."""
        raise NotImplementedError

    def infer_at(self, tensor, frame_time):
        """``infer`` for the frame at ``frame_time`` (s or None); stateless engines ignore it."""
        return self.infer(tensor)

    def postprocess(self, outputs):
        """Raw outputs -> (H, W) uint8 class map."""
        raise NotImplementedError

    def outlier_score(self, outputs):
        """Raw outputs -> (H, W) float32 outlier score, or None when the engine has none."""
        return None

    def finish_frame(self, outputs):
        """What the engine says of a processed frame (FrameResult.details), or None."""
        return None

    def reset(self):
        """A new stream starts (a Pipeline calls it when a run starts)."""

    def stream_summary(self):
        """Extra blocks for Pipeline.summary() (the report), e.g. a forecaster's counters."""
        return {}

    def dummy_input(self, seed=0):
        """A random input tensor of the right shape and dtype (for warm-up and benchmarks)."""
        h, w = self.size
        frame = np.random.RandomState(seed).randint(0, 256, size=(h, w, 3)).astype(np.uint8)
        return self.preprocessor.to_tensor(frame)

    def infer_batch(self, tensors):
        """Several inputs (None: an empty slot) -> one {output name: array} per input (None
        for None). A loop over ``infer``; batched engines override it."""
        return [None if tensor is None else self.infer(tensor) for tensor in tensors]

    def segment_batch(self, frames):
        """Several cameras' BGR frames, None where a camera has no new frame -> one
        runtime.result.Result per frame (None for None), each as ``segment`` would give it.

        Frames may have different sizes (each is fitted to the input on its own). The
        inference time of the batch is every Result's ``inference`` timing. A stateful
        engine (a forecast bundle: one feature ring) takes one camera only: open one engine
        per camera for it."""
        if self.stateful and sum(frame is not None for frame in frames) > 1:
            raise UserError("{} keeps one stream's state (a forecast bundle's feature ring): "
                            "run one engine per camera".format(self.path))
        t0 = time.perf_counter()
        prepared = [None if frame is None else self.preprocess(frame) for frame in frames]
        filled = max(1, sum(p is not None for p in prepared))
        t1 = time.perf_counter()
        outputs = self.infer_batch([None if p is None else p[0] for p in prepared])
        t2 = time.perf_counter()
        results = []
        for item, out in zip(prepared, outputs):
            if item is None:
                results.append(None)
                continue
            _, fitted, fit = item
            s0 = time.perf_counter()
            class_map = self.postprocess(out)
            score = self.outlier_score(out)
            timings = {"preprocess": (t1 - t0) * 1e3 / filled,
                       "inference": (t2 - t1) * 1e3,
                       "postprocess": (time.perf_counter() - s0) * 1e3}
            results.append(Result(fitted, class_map, out, timings, fit, score, fitted=fitted))
        return results

    def describe(self):
        """Engine, backend and versions, for reports."""
        return {}

    def close(self):
        """Release the backends."""
