"""The Triton Python-backend model that runs a swiftrt engine (copied as ``1/model.py`` by
runtime.serving.triton.write_repository; Triton imports it, nothing in swiftrt does).

It opens the engine in its version folder with runtime.open_engine and talks to it through
the engine protocol (runtime.engine_base): preprocess -> infer_at -> postprocess /
outlier_score / finish_frame, the calls rt-segment's pipeline makes, so a served frame gets
the class map rt-segment gives it. Tensor names come from runtime.serving.triton.ServingIO
(the manifest's). A request Triton passes but the engine cannot take (an empty or huge frame)
is answered with an error; the model and the server stay up.
"""
import json
import os
import sys
import time

import numpy as np

import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend

MAX_SIDE = 16384  # like rt-segment's capture limit: a larger frame is a broken request


def _parameter(config, key):
    value = (config.get("parameters") or {}).get(key) or {}
    return value.get("string_value") or None


class TritonPythonModel(object):
    """One swiftrt engine per model instance (stateless), or per stream (forecast bundles)."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        python_path = _parameter(config, "python_path")
        if python_path and python_path not in sys.path:
            sys.path.insert(0, python_path)
        import runtime
        from runtime.serving.triton import (FRAME_INPUT, FRAME_TIME_INPUT, SEQUENCE_IDLE_US,
                                            ServingIO)
        self.idle_s = SEQUENCE_IDLE_US / 1e6
        self.frame_input, self.time_input = FRAME_INPUT, FRAME_TIME_INPUT
        version = os.path.join(args["model_repository"], args["model_version"])
        self.engine_path = os.path.join(version, _parameter(config, "engine"))
        threads = _parameter(config, "threads")
        self.options = {"backend": _parameter(config, "backend"),
                        "threads": int(threads) if threads else None}
        self.open_engine = runtime.open_engine
        self.engine = self.open_engine(self.engine_path, **self.options)
        self.io = ServingIO(self.engine.manifest)
        self.streams = {}  # forecast bundles: correlation id -> engine (its own ring buffer)
        self.last_seen = {}  # correlation id -> time.monotonic() of its last frame
        if self.io.stateful:
            self.streams[0] = self.engine

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._run(request)))
            except Exception as exc:  # answer this request with the error; serve the next
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(
                        "swiftrt: {}".format(str(exc).strip().splitlines()[0] if str(exc).strip()
                                             else type(exc).__name__))))
        return responses

    def _frames(self, request):
        frames = pb_utils.get_input_tensor_by_name(request, self.frame_input).as_numpy()
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError("{} must be uint8 [batch, H, W, 3] BGR frames, got {} {}".format(
                self.frame_input, frames.dtype, list(frames.shape)))
        if not (0 < frames.shape[1] <= MAX_SIDE and 0 < frames.shape[2] <= MAX_SIDE):
            raise ValueError("{}: a frame is {}x{} pixels; each side must be 1..{}".format(
                self.frame_input, frames.shape[2], frames.shape[1], MAX_SIDE))
        return frames

    def _run(self, request):
        frames = self._frames(request)
        if self.io.stateful:
            return self._forecast(request, frames[0])
        maps, scores = [], []
        for frame in frames:
            outputs = self._infer(self.engine, frame, None)
            maps.append(self.engine.postprocess(outputs))
            if self.io.outlier is not None:
                scores.append(self.engine.outlier_score(outputs))
            self.engine.finish_frame(outputs)
        tensors = [pb_utils.Tensor(self.io.class_map, np.ascontiguousarray(np.stack(maps)))]
        if self.io.outlier is not None:
            tensors.append(pb_utils.Tensor(self.io.outlier,
                                           np.ascontiguousarray(np.stack(scores), np.float32)))
        return tensors

    @staticmethod
    def _infer(engine, frame, frame_time):
        tensor, _fitted, _fit = engine.preprocess(np.ascontiguousarray(frame))
        return engine.infer_at(tensor, frame_time)

    def _control(self, request, name):
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        return None if tensor is None else int(tensor.as_numpy().reshape(-1)[0])

    def _forecast(self, request, frame):
        """One frame of the stream named by the request's correlation id."""
        corrid = self._control(request, "CORRID") or 0
        self._drop_idle(corrid)
        engine = self.streams.get(corrid)
        if engine is None:
            engine = self.streams[corrid] = self.open_engine(self.engine_path, **self.options)
        if self._control(request, "START"):
            engine.reset()
        time_tensor = pb_utils.get_input_tensor_by_name(request, self.time_input)
        frame_time = float(time_tensor.as_numpy().reshape(-1)[0]) if time_tensor is not None else None
        try:
            outputs = self._infer(engine, frame, frame_time)
            forecast = engine.postprocess(outputs)
            engine.finish_frame(outputs)
        finally:
            if self._control(request, "END") and corrid != 0:
                self.streams.pop(corrid).close()
                self.last_seen.pop(corrid, None)
        if forecast is None:  # warming up: no forecast yet, an empty map says so
            forecast = np.zeros((0, 0), np.uint8)
        return [pb_utils.Tensor(self.io.class_map, np.ascontiguousarray(forecast[None]))]

    def _drop_idle(self, current):
        """Close the streams Triton's sequence batcher has dropped (idle longer than its
        max_sequence_idle_microseconds: no END will come for them)."""
        now = time.monotonic()
        self.last_seen[current] = now
        for corrid, seen in list(self.last_seen.items()):
            if corrid != current and now - seen > self.idle_s:
                del self.last_seen[corrid]
                engine = self.streams.pop(corrid, None)
                if engine is not None and engine is not self.engine:
                    engine.close()

    def finalize(self):
        for engine in set(self.streams.values()) | {self.engine}:
            engine.close()
