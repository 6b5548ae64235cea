"""Forecasting on the export side: single-level model, F2F training and the exported bundle."""
import os

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from export import checkpoints  # noqa: E402
from export.forecast_export import BundleOptions, export_bundle  # noqa: E402
from runtime import manifest  # noqa: E402
from runtime.errors import UserError  # noqa: E402


def test_single_level_model_loads_swiftnet_rn18_weights_without_its_skips(tmp_path):
    from export import models
    rn18 = models.create("swiftnet-rn18")
    path = str(tmp_path / "rn18.pt")
    checkpoints.save_checkpoint(path, rn18, "swiftnet-rn18")
    sl, info = checkpoints.load_checkpoint("swiftnet-rn18-sl", path)
    assert len(info["dropped_keys"]) == 18 and all(".bottleneck." in k for k in info["dropped_keys"])
    assert torch.equal(sl.backbone.layer4[1].conv2.weight, rn18.backbone.layer4[1].conv2.weight)
    assert torch.equal(sl.backbone.spp.spp.spp_fuse.conv.weight, rn18.backbone.spp.spp.spp_fuse.conv.weight)
    with torch.inference_mode():
        x = torch.randn(1, 3, 128, 256)
        assert sl.encode(x).shape == (1, 128, 4, 8)
        assert sl(x).shape == (1, 19, 128, 256)


def test_untrained_f2f_is_copy_last():
    from export import models
    f2f = models.create("f2f-8").eval()
    past = torch.randn(1, 512, 8, 16)
    assert torch.equal(f2f(past), past[:, 384:])


def test_forecaster_checkpoint_records_what_the_runtime_needs(forecaster_checkpoints):
    sl_path, f2f_path, result = forecaster_checkpoints
    model, info = checkpoints.load_checkpoint("f2f-8", f2f_path)
    meta = info["metadata"]["forecast"]
    assert meta["past_offsets"] == [-9, -6, -3, 0] and meta["horizon"] == 3 and meta["frame_rate"] == 15.0
    assert len(meta["feature_stats"]["mean"]) == 128 and min(meta["feature_stats"]["std"]) > 0
    assert meta["features_checkpoint"]["sha256"] == manifest.sha256_file(sl_path)
    assert model.depth == 3
    val = result["val"]
    for key in ("forecast", "copy_last", "oracle"):
        assert 0.0 <= val[key]["miou"] <= 1.0


def test_bundle_has_three_checked_stages_and_a_valid_bundle_manifest(forecast_bundle):
    bundle = manifest.Manifest.load(os.path.join(forecast_bundle, "forecast.json")).to_dict()
    assert bundle["task"] == "forecast" and bundle["horizon"] == 3 and bundle["frame_rate"] == 15.0
    assert bundle["feature_shape"] == [1, 128, 4, 8]
    assert bundle["parity"]["forecast_argmax_agreement"] >= 0.999
    assert bundle["parity"]["features_max_abs_error"] < 1e-3
    for stage, name in bundle["stages"].items():
        data = manifest.Manifest.load(os.path.join(forecast_bundle, name)).to_dict()
        assert data["task"] == "forecast_stage" and data["stage"] == stage
        assert data["artifact"]["sha256"] == manifest.sha256_file(os.path.join(forecast_bundle, name))
    ops = {n.op_type for n in onnx.load(os.path.join(forecast_bundle, "f2f.onnx")).graph.node}
    assert bundle["forecaster"]["deform_form"] == "matmul"  # the default: opset 13, every target
    assert "MatMul" in ops and not ops & {"GridSample", "DeformConv"}


def test_gather_form_bundle_for_tensorrt_8_2_runs_and_matches(forecaster_checkpoints, tmp_path):
    out = str(tmp_path / "tx2")
    bundle = export_bundle(forecaster_checkpoints[1], out, BundleOptions(deform_form="gather", opset=13,
                           parity_frames=10, log=lambda m: None)).to_dict()
    assert bundle["opset"] == 13 and bundle["parity"]["forecast_argmax_agreement"] >= 0.999
    model = onnx.load(os.path.join(out, "f2f.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"GridSample", "DeformConv"} and "Gather" in ops
    assert model.opset_import[0].version == 13


def test_bundle_refuses_a_features_checkpoint_it_was_not_trained_on(forecaster_checkpoints, tmp_path):
    from export import models
    from runtime.errors import UserError
    other = str(tmp_path / "other_sl.pt")
    torch.manual_seed(1)
    checkpoints.save_checkpoint(other, models.create("swiftnet-rn18-sl"), "swiftnet-rn18-sl")
    with pytest.raises(UserError, match="sha256"):
        export_bundle(forecaster_checkpoints[1], str(tmp_path / "b"),
                      BundleOptions(features_checkpoint=other, log=lambda m: None))


def test_rt_export_cli_errors_for_bundles_are_one_line(run_cli_subprocess, forecaster_checkpoints, tmp_path):
    proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18-f2f", "--checkpoint", forecaster_checkpoints[0],
                              "--output", str(tmp_path / "b"))
    assert proc.returncode == 2 and "not a forecaster checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18-f2f", "--checkpoint", forecaster_checkpoints[1],
                              "--deform-form", "grid_sample", "--opset", "13", "--output", str(tmp_path / "b"))
    assert proc.returncode == 2 and "cannot express" in proc.stderr


def _float16_weights(model):
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_reduced_precision_bundle_converts_features_and_decoder_and_keeps_f2f_fp32(
        forecaster_checkpoints, tmp_path, precision):
    from runtime import open_engine
    out = str(tmp_path / precision)
    bundle = export_bundle(forecaster_checkpoints[1], out, BundleOptions(precision=precision,
                           calib="synthetic", calib_count=4, calib_method="percentile", parity_frames=10,
                           log=lambda m: None)).to_dict()
    assert bundle["precision"] == precision
    agreement = bundle["parity"][precision]["forecast_agreement_vs_fp32"]
    assert (0.0 <= agreement <= 1.0) if precision == "int8" else agreement > 0.95
    for stage, converted in (("features", True), ("f2f", False), ("decoder", True)):
        data = manifest.Manifest.load(os.path.join(out, stage + ".onnx")).to_dict()
        assert data["precision"] == (precision if converted else "fp32")
        model = onnx.load(os.path.join(out, stage + ".onnx"))
        if precision == "int8":
            assert ("QuantizeLinear" in [n.op_type for n in model.graph.node]) == converted
        else:
            assert _float16_weights(model) == converted
            assert model.graph.input[0].type.tensor_type.elem_type == (
                onnx.TensorProto.UINT8 if stage == "features" else onnx.TensorProto.FLOAT)
    runtime_bundle = open_engine(out)   # the core runs what was exported
    try:
        frame = np.zeros((128, 256, 3), np.uint8)
        steps = [runtime_bundle.step(frame, k / runtime_bundle.frame_rate)
                 for k in range(1 - runtime_bundle.past_offsets[0])]
        assert steps[-1].is_forecast and not steps[0].is_forecast
        class_map = steps[-1].class_map
        assert class_map.shape == (128, 256) and class_map.dtype == np.uint8
    finally:
        runtime_bundle.close()


def test_forecaster_training_continues_from_init_and_refuses_another_future(
        forecaster_checkpoints, forecast_sequences, tmp_path):
    from export.train_forecast import ForecasterOptions, train_forecaster
    sl_path, f2f_path, _ = forecaster_checkpoints
    logs = []
    out = str(tmp_path / "continued.pt")
    # a learning rate of 0: the written weights are exactly the init's (BN statistics move)
    train_forecaster("f2f-8", forecast_sequences, out, sl_path, ForecasterOptions(horizon=3, iterations=1,
                     finetune_iterations=0, batch_size=2, lr=0.0, depth=3, init=f2f_path, progress=False,
                     log=logs.append))
    start, _ = checkpoints.load_checkpoint("f2f-8", f2f_path)
    continued, _ = checkpoints.load_checkpoint("f2f-8", out)
    params = dict(continued.named_parameters())
    for key, value in start.named_parameters():
        assert torch.equal(value, params[key]), key
    assert any("starting from" in line for line in logs)
    with pytest.raises(UserError, match="another past offsets"):
        train_forecaster("f2f-8", forecast_sequences, out, sl_path, ForecasterOptions(horizon=3,
                         iterations=1, offsets=(-6, -4, -2, 0), finetune_iterations=0, depth=3,
                         init=f2f_path, progress=False, log=lambda m: None))
    with pytest.raises(UserError, match="does not fit"):
        train_forecaster("f2f-8", forecast_sequences, out, sl_path, ForecasterOptions(horizon=3,
                         iterations=1, finetune_iterations=0, depth=4, init=f2f_path, progress=False,
                         log=lambda m: None))


def test_forecaster_trains_on_several_sequence_folders_of_one_kind(forecaster_checkpoints, forecast_sequences,
                                                                   tmp_path):
    from export.train_forecast import ForecasterOptions, train_forecaster
    from export import scenes as synthetic
    sl_path = forecaster_checkpoints[0]
    out = str(tmp_path / "more.pt")
    result = train_forecaster("f2f-8", forecast_sequences, out, sl_path, ForecasterOptions(horizon=3,
                              iterations=1, finetune_iterations=0, batch_size=2, depth=3,
                              extra_train=[forecast_sequences], progress=False, log=lambda m: None))
    assert result["train_sequences"] == 6  # 3 drives, twice
    shorter = str(tmp_path / "shorter")
    synthetic.write_sequences(shorter, "train", count=1, length=12, fps=15, seed=23, size=(128, 256))
    with pytest.raises(UserError, match="differ in sequence length"):
        train_forecaster("f2f-8", forecast_sequences, out, sl_path, ForecasterOptions(horizon=3,
                         iterations=1, finetune_iterations=0, depth=3, extra_train=[shorter],
                         progress=False, log=lambda m: None))
