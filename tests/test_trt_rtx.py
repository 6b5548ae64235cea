"""The real-parser gate: NVIDIA's TensorRT-RTX parses and builds every 10.x artifact kind.

TensorRT-RTX (the optional extra ``trt-rtx``, installed by ``make venv``) is NVIDIA's 10.x ONNX
importer and builder, and runs without a GPU. Every kind of artifact exported for TensorRT
10.3 (FP32, FP16, INT8 Q/DQ, the outlier head, each forecast-bundle stage with each
``--deform-form``) is parsed and built by it; the planted corpus (tests/trt_corpus.py) goes
through both the static rules and RTX, and the only disagreements are the ones listed in
``RTX_DISAGREES`` and explained in docs/tensorrt.md ("TensorRT-RTX").
"""
import os

import pytest

from runtime import manifest as manifest_mod
from runtime.errors import UserError
from runtime.plan import rtx, trt_rules
from tests.trt_corpus import CORPUS

pytestmark = pytest.mark.skipif(not rtx.available(), reason="TensorRT-RTX is not installed (pip install "
                                                            "'.[trt-rtx]'; make venv installs it)")
SIZE = (64, 128)
TARGET = "10.3.0"

# corpus graph -> why the rules (TensorRT 10.3) and RTX disagree; docs/tensorrt.md says the same.
RTX_DISAGREES = {
    "argmax_to_uint8": "RTX casts INT64 to UINT8; 10.3's header: UINT8 converts only to/from FLOAT/HALF",
    "argmax_int32_to_uint8": "RTX casts INT32 to UINT8; 10.3's header: UINT8 converts only to/from FLOAT/HALF",
    "uint8_input_to_int32": "RTX casts UINT8 to INT32; 10.3's header: UINT8 converts only to/from FLOAT/HALF",
    "convtranspose_weights_axis0": "RTX builds per-channel weights on any axis; the guide: output channels",
    "conv_weights_axis1": "RTX builds per-channel weights on any axis; the guide: output channels",
    "deformconv_uneven_pads": "RTX looks up the DeformConv plugin (which it lacks) before the pads",
}


def quiet(_message):
    pass


def _rtx_block(path):
    return manifest_mod.Manifest.load(path).to_dict()["tensorrt_compat"]["tensorrt_rtx"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """One 10.3 export of each segmentation artifact kind, at 64x128."""
    pytest.importorskip("torch")
    from calib.fp16 import export_fp16
    from calib.int8 import Int8Options, export_int8
    from export.api import export
    folder = tmp_path_factory.mktemp("rtx")
    paths = {"fp32": str(folder / "m_fp32.onnx"), "fp16": str(folder / "m_fp16.onnx"),
             "int8": str(folder / "m_int8.onnx"), "outlier": str(folder / "ood_fp32.onnx")}
    export("swiftnet-rn18", None, SIZE, paths["fp32"], parity_images=1, trt_version=TARGET, log=quiet)
    export_fp16(paths["fp32"], paths["fp16"], agreement_images=1, progress=False, log=quiet)
    export_int8(paths["fp32"], paths["int8"], "synthetic", Int8Options(count=2, method="minmax",
                flavor="trt", agreement_images=1, check_latency=False, progress=False, log=quiet))
    export("swiftnet-rn18-ood", None, SIZE, paths["outlier"], parity_images=1, trt_version=TARGET, log=quiet)
    return paths


@pytest.mark.parametrize("kind", ["fp32", "fp16", "int8", "outlier"])
def test_every_10x_artifact_kind_is_parsed_and_built(exports, kind):
    path = exports[kind]
    result = rtx.check(path)
    assert result.parsed and result.built, result.summary()
    block = _rtx_block(path)  # the export ran RTX too and recorded its verdict
    assert block["parsed"] and block["built"] and block["version"] == result.version


@pytest.mark.slow
@pytest.mark.parametrize("form", ["gather", "grid_sample", "onnx"])  # matmul: tests/test_trt_rules.py
def test_every_forecast_stage_and_deform_form_is_parsed_and_built(tmp_path, forecaster_checkpoints, form):
    from export.forecast_export import BundleOptions, export_bundle
    out = str(tmp_path / "bundle")
    export_bundle(forecaster_checkpoints[1], out, BundleOptions(parity_frames=6, deform_form=form,
                  trt_version=TARGET, log=quiet))
    for stage in ("features.onnx", "f2f.onnx", "decoder.onnx"):
        result = rtx.check(os.path.join(out, stage))
        if stage == "f2f.onnx" and form == "onnx":
            # DeformConv imports through the ModulatedDeformConv2d plugin, which RTX does not ship:
            # its importer accepted everything up to that lookup.
            assert result.plugin_missing == "ModulatedDeformConv2d" and not result.parsed, result.errors
            continue
        assert result.parsed and result.built, (stage, result.summary())
        assert _rtx_block(os.path.join(out, stage))["built"] is True


def test_planted_corpus_rules_against_rtx(tmp_path):
    """Each planted graph: the rules' 10.3 verdict against RTX's. Disagreements are exactly the
    explained ones, so a new one (or one that went away) fails here."""
    disagree = {}
    for name, (build, _expected) in sorted(CORPUS.items()):
        path = build(tmp_path / (name + ".onnx"))
        rules_accept = not trt_rules.check(path, TARGET)
        result = rtx.check(path)
        if rules_accept != result.accepted:
            disagree[name] = (rules_accept, result.summary())
    assert set(disagree) == set(RTX_DISAGREES), disagree
    # in every listed case the rules are the stricter side: nothing RTX refuses passes the rules
    assert all(not rules_accept for rules_accept, _ in disagree.values()), disagree


def test_rtx_reports_the_node_and_reason(tmp_path):
    path = CORPUS["uint8_transpose"][0](tmp_path / "m.onnx")
    result = rtx.check(path)
    assert not result.parsed and result.errors[0].startswith("Transpose '/Transpose': ")
    assert "UInt8" in result.errors[0]
    with pytest.raises(UserError, match=r"rejected by TensorRT-RTX .*: parser: Transpose '/Transpose'"):
        rtx.require_accepted(path, trt_rules.family(TARGET))
    assert rtx.require_accepted(path, "8.6") is None  # RTX's importer is 10.x: no verdict on 8.x


def test_rt_plan_check_only_runs_rtx(run_cli_subprocess, exports):
    proc = run_cli_subprocess("runtime.cli.plan", exports["int8"], "--check-only", "--trt-version", TARGET)
    assert proc.returncode == 0, proc.stderr
    assert "legal for TensorRT 10.3.0" in proc.stdout and "TensorRT-RTX" in proc.stdout
    assert "parsed and built" in proc.stdout
