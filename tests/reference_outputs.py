"""The Python engine's outputs on fixed frames, kept as the reference the core must reproduce.

    PYTHONPATH=. .venv/bin/python tests/reference_outputs.py [--out tests/fixtures/reference_outputs.npz]

Why: issue 26 makes libswiftrt the only engine. Before the Python engine (runtime/engine.py,
runtime/forecast.py with runtime/backends/onnxruntime.py and openvino.py) leaves, its answers on
a fixed set of generated frames are recorded here, for every artifact kind (segmentation FP32
and INT8, outlier, forecast bundle) and both CPU backends (ONNX Runtime, OpenVINO).
tests/test_reference_outputs.py runs the same frames through the core and holds it to them:
class maps >= 99.99 % identical pixels, outlier scores within 1e-3, forecast maps >= 99.9 %
(and the same warm-up frames and picked past frames).

The engines are the deterministic exports of runtime/native/tests/make_engines.py (the demo
checkpoints at 128x256, INT8 calibrated on generated scenes with a fixed seed); the frames come
from export.scenes with fixed seeds (``frames()``, ``stream()``). The file stores class maps as
uint8, outlier scores as uint16 (score * 65535, an error of at most 8e-6) and is compressed.
Regenerating it needs the Python engine, i.e. a checkout from before it was removed.
"""
import argparse
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


def record_python(path, kind, backend):
    """{array name: array} of the Python engine on ``kind``'s frames with ``backend``."""
    from runtime.engine import open_engine
    engine = open_engine(path, backend=backend, threads=2)
    try:
        if kind == "bundle":
            shots, times = stream()
            steps = [engine.step(f, t) for f, t in zip(shots, times)]
            picked = np.full((len(steps), len(engine.offsets_s)), np.nan)
            for i, s in enumerate(steps):
                if s.is_forecast:
                    picked[i] = s.picked_times
            return {"is_forecast": np.array([s.is_forecast for s in steps]),
                    "picked_times": picked,
                    "forecast_maps": np.stack([s.class_map for s in steps if s.is_forecast])}
        results = [engine.segment(f) for f in frames(kind)]
        out = {"class_maps": np.stack([r.class_map for r in results])}
        if kind == "ood":
            scores = np.stack([r.outlier_score for r in results])
            out["scores_u16"] = np.round(np.clip(scores, 0, 1) * SCORE_SCALE).astype(np.uint16)
        return out
    finally:
        engine.close()


def load(path=FIXTURE):
    """(meta dict, {"kind/backend/name": array})."""
    with np.load(path) as data:
        arrays = dict((k, data[k]) for k in data.files)
    return json.loads(str(arrays.pop("meta"))), arrays


def main(argv=None):
    import onnxruntime
    import openvino
    from runtime.manifest import cached_sha256
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=FIXTURE)
    parser.add_argument("--engines", default=ENGINES)
    args = parser.parse_args(argv)
    paths = engines(args.engines)
    arrays = {}
    meta = {"size": list(SIZE), "onnxruntime": onnxruntime.__version__,
            "openvino": openvino.__version__.split("-")[0], "engine_sha256": {}}
    for kind in KINDS:
        artifact = paths[kind] if kind != "bundle" else os.path.join(paths[kind], "forecast.json")
        meta["engine_sha256"][kind] = cached_sha256(artifact)
        for backend in BACKENDS:
            for name, array in record_python(paths[kind], kind, backend).items():
                arrays["{}/{}/{}".format(kind, backend, name)] = array
            print("recorded", kind, backend)
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        os.makedirs(folder)
    np.savez_compressed(args.out, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    print("wrote {} ({} KB)".format(args.out, os.path.getsize(args.out) // 1024))


if __name__ == "__main__":
    sys.path.insert(0, REPO)
    main()
