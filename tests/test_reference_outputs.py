"""The core reproduces the Python engine's recorded outputs (tests/fixtures/reference_outputs.npz).

For every artifact kind (segmentation FP32 and INT8, outlier, forecast bundle) and each CPU
backend the core has (ONNX Runtime, OpenVINO): the same fixed frames through libswiftrt, held to
the reference recorded from the Python engine with the same backend (tests/reference_outputs.py):
class maps >= 99.99 % identical pixels, outlier scores within 1e-3, forecasts >= 99.9 % with the
same warm-up and picked frames.
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_outputs as ref  # noqa: E402

sys.path.pop(0)

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def reference():
    return ref.load()


@pytest.fixture(scope="module")
def engines():
    pytest.importorskip("torch")
    from runtime import libswiftrt
    if not os.path.exists(libswiftrt.library_path()):
        pytest.fail("libswiftrt is not built: run `make native-lib`")
    return ref.engines()


def _core_backend(backend):
    """Skip a backend this libswiftrt was built without (the version line names those it has)."""
    from runtime import libswiftrt
    if backend not in libswiftrt.version().split("backends:")[1]:
        pytest.skip("this libswiftrt was built without its {} backend".format(backend))
    return backend


def _agreement(a, b):
    return float(np.count_nonzero(a == b)) / a.size


def _same_engine(reference, kind, path):
    """Why a mismatch may not be the core's fault: the export is not the one recorded."""
    from runtime.manifest import cached_sha256
    recorded = reference[0]["engine_sha256"][kind]
    return "engine re-exported differently ({} != recorded {})".format(
        cached_sha256(path)[:12], recorded[:12]) if cached_sha256(path) != recorded else ""


@pytest.mark.parametrize("backend", ref.BACKENDS)
@pytest.mark.parametrize("kind", ["seg", "int8", "ood"])
def test_single_frame_engines_reproduce_the_reference(reference, engines, kind, backend):
    from runtime.backends.native import CoreEngine
    _, arrays = reference
    key = "{}/{}/".format(kind, backend)
    core = CoreEngine(engines[kind], threads=2, backend=_core_backend(backend))
    try:
        for i, frame in enumerate(ref.frames(kind)):
            out = core.run(frame, outlier=(kind == "ood"))
            expected = arrays[key + "class_maps"][i]
            assert out["class_map"].shape == expected.shape
            assert _agreement(out["class_map"], expected) >= 0.9999, (
                kind, backend, i, _same_engine(reference, kind, engines[kind]))
            if kind == "ood":
                score = arrays[key + "scores_u16"][i].astype(np.float32) / ref.SCORE_SCALE
                assert np.abs(out["outlier_score"] - score).max() <= 1e-3, (backend, i)
    finally:
        core.close()
    # The reference itself is not trivial: several classes in every kind.
    assert len(np.unique(arrays[key + "class_maps"])) > 3


@pytest.mark.parametrize("backend", ref.BACKENDS)
def test_forecast_bundle_reproduces_the_reference(reference, engines, backend):
    from runtime.backends.native import CoreEngine
    _, arrays = reference
    key = "bundle/{}/".format(backend)
    core = CoreEngine(engines["bundle"], threads=2, backend=_core_backend(backend))
    try:
        shots, times = ref.stream()
        maps = iter(arrays[key + "forecast_maps"])
        is_forecast = []
        for i, (frame, t) in enumerate(zip(shots, times)):
            out = core.run(frame, timestamp=t, class_map=False, forecast=True)
            r = core.last_result
            is_forecast.append(bool(r.is_forecast))
            if r.is_forecast:
                picked = [r.picked_times[j] for j in range(r.picked_count)]
                assert picked == list(arrays[key + "picked_times"][i]), i
                assert _agreement(out["forecast_map"], next(maps)) >= 0.999, i
        assert is_forecast == list(arrays[key + "is_forecast"])
        assert sum(is_forecast) >= 5
    finally:
        core.close()
