"""The Python engine's outputs on fixed frames, kept as the reference the core must reproduce.

Why: issue 26 made libswiftrt the only engine. Before the Python engine (runtime/engine.py,
runtime/forecast.py with runtime/backends/onnxruntime.py and openvino.py) left, its answers on
a fixed set of generated frames were recorded in tests/fixtures/reference_outputs.npz, for every
artifact kind (segmentation FP32 and INT8, outlier, forecast bundle) and both CPU backends (ONNX
Runtime, OpenVINO). tests/test_reference_outputs.py runs the same frames through the core and
holds it to them: class maps >= 99.99 % identical pixels, outlier scores within 1e-3, forecast
maps >= 99.9 % (and the same warm-up frames and picked past frames).

This module gives the frames, the engines and the fixture's reader. The engines are the
deterministic exports of runtime/native/tests/make_engines.py (the demo checkpoints at 128x256,
INT8 calibrated on generated scenes with a fixed seed); the frames come from export.scenes with
fixed seeds (``frames()``, ``stream()``). The file stores class maps as uint8, outlier scores as
uint16 (score * 65535, an error of at most 8e-6) and is compressed. It was written by this
module's recorder (commit 981c510, ``PYTHONPATH=. python tests/reference_outputs.py``), which
left with the Python engine: regenerating it needs a checkout of that commit.
"""
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "reference_outputs.npz")
ENGINES = os.path.join(REPO, "build", "native-engines")
SIZE = (128, 256)
KINDS = ("seg", "int8", "ood", "bundle")   # make_engines.py names
BACKENDS = ("onnxruntime", "openvino")
SCORE_SCALE = 65535.0
# Frames 8 and 13 of the 15 Hz stream are dropped: the ring must pick around the gaps.
STREAM_LENGTH, STREAM_FPS, STREAM_DROPPED = 20, 15.0, (8, 13)


def frames(kind):
    """The fixed BGR frames of a single-frame engine: camera-sized ones the engine resizes,
    and one at the network's own size; outlier scenes for the outlier engine."""
    from export.scenes import render_scene
    if kind == "ood":
        return [render_scene(62, i, size=(256, 512), outliers=True)[0] for i in range(3)]
    sizes = [(512, 1024), (512, 1024), (300, 500), SIZE]
    return [render_scene(61, i, size=s)[0] for i, s in enumerate(sizes)]


def stream():
    """(frames, capture times) of the bundle's stream: one generated drive at 15 Hz, two dropped."""
    from export.scenes import render_sequence
    shots = [image for image, _, _ in render_sequence(63, 0, length=STREAM_LENGTH, size=(256, 512),
                                                       fps=STREAM_FPS, split="val")]
    keep = [i for i in range(STREAM_LENGTH) if i not in STREAM_DROPPED]
    return [shots[i] for i in keep], [i / STREAM_FPS for i in keep]


def engines(out=ENGINES):
    """{kind: path} of the deterministic test exports (made when missing or stale)."""
    sys.path.insert(0, os.path.join(REPO, "runtime", "native", "tests"))
    try:
        import make_engines
    finally:
        sys.path.pop(0)
    return make_engines.make(out, SIZE, set(KINDS) | {"logits"})


def load(path=FIXTURE):
    """(meta dict, {"kind/backend/name": array})."""
    with np.load(path) as data:
        arrays = dict((k, data[k]) for k in data.files)
    return json.loads(str(arrays.pop("meta"))), arrays
