"""rt-plan / rt-export --output X.plan: our logic around the TensorRT build, with test doubles.

The real build needs TensorRT and a GPU, and the post-build check runs the plan through libswiftrt's
TensorRT backend, which this machine's core lacks (compiled only, docs/native.md). Here the builder
is replaced by a function that writes a file and the "plan" is a stand-in with libswiftrt's engine
interface (the ONNX model on the core's ONNX Runtime backend, its outputs optionally corrupted), so
that the post-build check, the manifest and the clean-up are exercised for real.
"""
import os

import numpy as np
import pytest

from runtime import manifest as manifest_mod
from runtime.errors import UserError
from tests.conftest import REPO


def fake_build(onnx_path, plan_path, **options):
    with open(str(plan_path), "wb") as handle:
        handle.write(b"serialized engine")
    return {"tensorrt_version": "8.6.2", "gpu": "Orin", "compute_capability": "8.7",
            "precision": options["precision"], "flags": [options["precision"].upper()],
            "workspace_mb": options["workspace_mb"], "int8_mode": options.get("int8_mode")}


class StandIn(object):
    """A 'plan' that runs the ONNX model (or bundle) itself through the core, optionally
    corrupting its outputs (a dict of arrays -> a dict of arrays)."""

    def __init__(self, onnx_path, corrupt=None):
        from runtime.plan.check import open_reference
        self.inner = open_reference(onnx_path)
        self.corrupt = corrupt
        self.closed = False

    def run(self, frame, **options):
        outputs = self.inner.run(frame, **options)
        return self.corrupt(outputs) if self.corrupt else outputs

    def run_batch(self, frames, **options):
        self.batches = getattr(self, "batches", 0) + 1
        outputs = self.inner.run_batch(frames, **options)
        return [self.corrupt(o) for o in outputs] if self.corrupt else outputs

    @property
    def last_result(self):
        return self.inner.last_result

    def close(self):
        self.inner.close()
        self.closed = True


def build(onnx_path, tmp_path, corrupt=None, precision="fp16", reference=None, **kwargs):
    """build_plan with fake_build; the plan is a StandIn; ``reference``: a stand-in for the ONNX
    model's run."""
    from runtime.plan.build import build_plan
    plan = str(tmp_path / "swiftnet_{}.plan".format(precision))
    stand_in = {}

    def open_plan(path, manifest):
        # as the core does: the plan's sidecar beside it, and the plan the one it describes
        manifest_mod.Manifest.load(path).verify_artifact(path)
        stand_in["backend"] = StandIn(onnx_path, corrupt)
        return stand_in["backend"]
    if reference is not None:
        kwargs["open_reference"] = lambda path: reference
    data = build_plan(onnx_path, plan, precision=precision, check_count=2, build=fake_build,
                      open_plan=open_plan, log=lambda message: None, **kwargs)
    return plan, data, stand_in["backend"]


def shift_classes(outputs):
    return dict(outputs, class_map=(outputs["class_map"] + 1) % 19)


def test_a_good_plan_gets_a_manifest_the_runtime_checks(rn18_engine, tmp_path):
    plan, data, backend = build(rn18_engine, tmp_path)
    assert backend.closed
    on_disk = manifest_mod.Manifest.load(plan).to_dict()
    assert on_disk["artifact"]["format"] == "tensorrt"
    assert on_disk["artifact"]["sha256"] == manifest_mod.sha256_file(plan)
    assert on_disk["tensorrt"]["version"] == "8.6.2" and on_disk["tensorrt"]["gpu"] == "Orin"
    assert on_disk["precision"] == "fp16"
    check = on_disk["post_build_check"]
    assert check["ok"] and check["images"] == 2
    assert check["outputs"]["class_map"]["mismatch"] == 0.0
    assert "libswiftrt" in check["compared"]


def test_a_plan_that_disagrees_is_removed(rn18_engine, tmp_path):
    with pytest.raises(UserError, match="class decisions differ"):
        build(rn18_engine, tmp_path, corrupt=shift_classes)
    assert not os.path.exists(str(tmp_path / "swiftnet_fp16.plan"))
    assert not os.path.exists(str(tmp_path / "swiftnet_fp16.plan.json"))


def test_a_failed_rebuild_leaves_the_previous_plan_untouched(rn18_engine, tmp_path):
    plan, _, _ = build(rn18_engine, tmp_path)
    before = [open(p, "rb").read() for p in (plan, plan + ".json")]
    with pytest.raises(UserError, match="nothing written"):
        build(rn18_engine, tmp_path, corrupt=shift_classes)
    assert [open(p, "rb").read() for p in (plan, plan + ".json")] == before
    assert sorted(os.listdir(str(tmp_path))) == sorted(os.path.basename(p) for p in (plan, plan + ".json"))


def test_nan_outlier_scores_fail_the_build(rn18_engine, tmp_path):
    """Class maps cannot hold a NaN; outlier scores can, and they fail the check."""
    def with_scores(value):
        def corrupt(outputs):
            return dict(outputs, outlier_score=np.full(outputs["class_map"].shape, value, np.float32))
        return corrupt
    with pytest.raises(UserError, match="NaN"):
        build(rn18_engine, tmp_path, corrupt=with_scores(np.nan),
              reference=StandIn(rn18_engine, with_scores(0.0)))
    assert not os.path.exists(str(tmp_path / "swiftnet_fp16.plan"))


def test_without_the_cores_tensorrt_the_build_is_refused_before_it_starts(rn18_engine, tmp_path):
    """Where libswiftrt was built without TensorRT (this machine), the check cannot run: one
    line says so before TensorRT spends minutes building, and nothing is written."""
    from runtime.plan.build import build_plan
    from runtime.plan.check import core_backends
    if "tensorrt" in core_backends():
        pytest.skip("this libswiftrt has its TensorRT backend")
    built = []
    with pytest.raises(UserError, match="built without it .*SWIFTRT_WITH_TENSORRT=ON") as error:
        build_plan(rn18_engine, str(tmp_path / "x.plan"), build=lambda *a, **k: built.append(a),
                   log=lambda message: None)
    assert "\n" not in str(error.value) and not built and not os.listdir(str(tmp_path))


def test_a_core_without_a_cpu_backend_cannot_check_plans(rn18_engine, tmp_path, monkeypatch):
    """A core with TensorRT but no ONNX Runtime (or OpenVINO) backend has nothing to run the ONNX
    model on: refused in one line before the build."""
    from runtime.plan import check
    from runtime.plan.build import build_plan
    monkeypatch.setattr(check, "core_backends", lambda: ["tensorrt"])
    with pytest.raises(UserError, match="ONNX Runtime backend.*backends: tensorrt"):
        build_plan(rn18_engine, str(tmp_path / "x.plan"), build=fake_build, log=lambda message: None)
    assert os.listdir(str(tmp_path)) == []


def test_int8_from_an_fp32_onnx_needs_calibration_files(rn18_engine, tmp_path):
    with pytest.raises(UserError, match="--calib-cache or --amax-json"):
        build(rn18_engine, tmp_path, precision="int8")


def test_without_tensorrt_the_cli_says_so_in_one_line(rn18_engine, tmp_path, run_cli_subprocess):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    proc = run_cli_subprocess("export.cli", "--onnx", rn18_engine, "--precision", "fp16",
                              "--output", tmp_path / "x.plan")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "TensorRT is not installed" in proc.stderr.strip().splitlines()[-1]
    assert not os.path.exists(str(tmp_path / "x.plan"))


def test_a_forecast_bundle_gets_a_plan_per_stage(forecast_bundle, tmp_path):
    """The device-side build of an exported bundle: three plans, forecast.json naming them,
    checked as one bundle (the core runs bundles, not stages) on a stream of forecasts."""
    from runtime.plan.build import build_bundle_plans

    built, opened = [], []

    def recording_build(onnx_path, plan_path, **options):
        built.append((os.path.basename(onnx_path), options["precision"]))
        return fake_build(onnx_path, plan_path, **options)

    def open_plan(path, manifest):
        opened.append(os.path.basename(path))
        for plan in manifest_mod.Manifest.load(path).stages.values():  # all published by now
            plan = os.path.join(os.path.dirname(path), plan)
            manifest_mod.Manifest.load(plan).verify_artifact(plan)
        return StandIn(forecast_bundle)

    out = tmp_path / "plans"
    data = build_bundle_plans(forecast_bundle, str(out), precision="fp16", check_count=2,
                              build=recording_build, open_plan=open_plan, log=lambda m: None)
    assert sorted(built) == [("decoder.onnx", "fp16"), ("f2f.onnx", "fp32"), ("features.onnx", "fp16")]
    assert opened == ["forecast.json"]
    on_disk = manifest_mod.Manifest.load(str(out / "forecast.json")).to_dict()
    assert on_disk["stages"] == {"features": "features.plan", "f2f": "f2f.plan", "decoder": "decoder.plan"}
    assert on_disk == data.to_dict() and on_disk["precision"] == "fp16"
    check = on_disk["post_build_check"]
    assert check["ok"] and check["images"] == 2
    assert check["outputs"]["forecast_map"]["mismatch"] == 0.0
    for stage in ("features", "f2f", "decoder"):
        stage_manifest = manifest_mod.Manifest.load(str(out / (stage + ".plan"))).to_dict()
        assert stage_manifest["artifact"]["format"] == "tensorrt"
        assert stage_manifest["tensorrt"]["version"] == "8.6.2"
        assert stage_manifest["task"] == "forecast_stage" and stage_manifest["stage"] == stage


def test_a_plan_bundle_that_forecasts_otherwise_is_removed(forecast_bundle, tmp_path):
    from runtime.plan.build import build_bundle_plans

    def shift_forecast(outputs):
        return dict(outputs, forecast_map=(outputs["forecast_map"] + 1) % 19)

    out = tmp_path / "plans"
    with pytest.raises(UserError, match="forecast_map: .* class decisions differ.*nothing written"):
        build_bundle_plans(forecast_bundle, str(out), check_count=1, build=fake_build,
                           open_plan=lambda path, m: StandIn(forecast_bundle, shift_forecast),
                           log=lambda m: None)
    assert not out.exists()


def test_an_int8_plan_bundle_needs_an_int8_export(forecast_bundle, tmp_path):
    from runtime.plan.build import build_bundle_plans
    with pytest.raises(UserError, match="--precision int8 --flavor trt"):
        build_bundle_plans(forecast_bundle, str(tmp_path / "p"), precision="int8", build=fake_build,
                           log=lambda m: None)
    with pytest.raises(UserError, match="bundle's own folder"):
        build_bundle_plans(forecast_bundle, forecast_bundle, build=fake_build, log=lambda m: None)
    used = tmp_path / "used"
    used.mkdir()
    (used / "forecast.json").write_text("{}")
    with pytest.raises(UserError, match="is not empty"):
        build_bundle_plans(forecast_bundle, str(used), build=fake_build, log=lambda m: None)
    assert sorted(os.listdir(str(used))) == ["forecast.json"]
    assert not (tmp_path / "p").exists()  # the refused INT8 build left no folder behind


# -- the check's inputs, made on the device ------------------------------------------------

def test_the_shipped_check_frames_are_the_generators_road_scenes(tmp_path):
    """The device has no scene generator: the default check runs on scenes shipped with the
    package (setup.cfg package data), and they are the generator's check scenes (JPEG)."""
    import configparser
    import cv2
    from export.scenes import write_check_frames
    from runtime.plan.check_inputs import CHECK_FRAMES, shipped_frames
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    assert "check_frames/*.jpg" in cfg["options.package_data"]["runtime.plan"]
    regenerated = write_check_frames(str(tmp_path))
    shipped = shipped_frames(len(regenerated))
    assert len(os.listdir(CHECK_FRAMES)) == len(regenerated)
    for path, frame in zip(regenerated, shipped):
        again = cv2.imread(path, cv2.IMREAD_COLOR)
        assert frame.shape == again.shape == (256, 512, 3)
        assert np.abs(frame.astype(np.int16) - again).mean() < 1.0  # JPEG coders may differ by 1
    # more checks than scenes: mirrored, still different inputs
    more = shipped_frames(6)
    assert np.array_equal(more[4], shipped[0][:, ::-1]) and not np.array_equal(more[4], more[0])


def test_the_check_runs_on_the_users_frames(rn18_engine, tmp_path):
    import cv2
    from export.scenes import render_scene
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / "f{}.png".format(i)), render_scene(1, i, size=(200, 300))[0])
    _, manifest, _ = build(rn18_engine, tmp_path, check_images=str(frames))
    check = manifest.to_dict()["post_build_check"]
    assert check["ok"] and check["images"] == 2
    assert check["inputs"] == "frames of {}".format(frames)
    _, manifest, _ = build(rn18_engine, tmp_path / "default")
    assert manifest.to_dict()["post_build_check"]["inputs"] == "the shipped road scenes"
    with pytest.raises(UserError, match="--check-images"):
        build(rn18_engine, tmp_path, check_images=str(tmp_path / "missing"))


def test_a_plan_the_core_refuses_to_run_fails_the_build(rn18_engine, tmp_path):
    """The core refuses a frame whose logits hold NaN or Inf (SRT_ERROR_BACKEND, see
    test_native): the check records it as the plan's problem and nothing is written."""
    def refused(outputs):
        raise RuntimeError("srt_engine_run: the model's logits hold NaN or Inf: no class map for this frame "
                           "(SRT_ERROR_BACKEND)")
    with pytest.raises(UserError, match="the plan's run failed: .*NaN or Inf"):
        build(rn18_engine, tmp_path, corrupt=refused)
    assert not os.path.exists(str(tmp_path / "swiftnet_fp16.plan"))
