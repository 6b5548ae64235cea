"""rt-eval on a forecast bundle: forecast vs copy-last vs oracle on generated sequences."""
import json
import os

import cv2
import pytest

from runtime import forecast_eval
from runtime.data.cityscapes import find_pairs, group_sequences, read_label
from runtime.metrics import ConfusionMatrix


class _Rates(object):
    past_offsets, horizon, frame_rate = [-9, -6, -3, 0], 9, 15.0


def test_offsets_are_converted_by_time_for_other_sequence_rates():
    assert forecast_eval.frame_offsets(_Rates(), 15.0) == ([-9, -6, -3, 0], 9, False)
    assert forecast_eval.frame_offsets(_Rates(), 30.0) == ([-18, -12, -6, 0], 18, True)
    assert forecast_eval.frame_offsets(_Rates(), None) == ([-9, -6, -3, 0], 9, False)


def test_rt_eval_scores_forecast_copy_last_and_oracle(forecast_bundle, forecast_sequences, tmp_path,
                                                      run_cli_subprocess):
    out = str(tmp_path / "eval.json")
    proc = run_cli_subprocess("runtime.cli.eval", "--engine", os.path.join(forecast_bundle, "forecast.json"),
                              "--data", forecast_sequences, "--split", "val", "--reference", forecast_bundle,
                              "--json", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    result = json.load(open(out))
    # 2 val sequences of 16 frames, offsets down to -9, horizon 3: t = 9..12 -> 4 samples each.
    assert result["samples"] == 8 and result["horizon"] == {"frames": 3, "s": 0.2}
    assert result["reference"]["agreement"] == 1.0 and result["reference"]["miou_drop_pp"] == 0.0
    assert "copy-last" in proc.stdout and "oracle" in proc.stdout

    # The oracle is the bundle's own segmentation of frame t + 3 (the core's current
    # segmentation), scored at full resolution.
    from runtime import open_engine
    bundle = open_engine(forecast_bundle, current=True)
    names = [c["name"] for c in bundle.classes]
    matrix = ConfusionMatrix(len(names), 255)
    for frames in group_sequences(find_pairs(forecast_sequences, "val")).values():
        bundle.reset()
        maps = [bundle.step(cv2.imread(image_path), k / bundle.frame_rate).current_map.copy()
                for k, (image_path, _) in enumerate(frames)]
        for t in range(9, 13):
            label = read_label(frames[t + 3][1])
            matrix.update(cv2.resize(maps[t + 3], label.shape[::-1], interpolation=cv2.INTER_NEAREST), label)
    bundle.close()
    assert result["oracle"]["miou"] == pytest.approx(matrix.miou(), abs=1e-12)
    assert result["gain_over_copy_last_pp"] == pytest.approx(
        100 * (result["forecast"]["miou"] - result["copy_last"]["miou"]))


def test_rt_eval_on_images_without_sequences_is_a_clear_error(forecast_bundle, tmp_path, run_cli_subprocess):
    os.makedirs(str(tmp_path / "leftImg8bit" / "val"))
    proc = run_cli_subprocess("runtime.cli.eval", "--engine", forecast_bundle, "--data", str(tmp_path))
    assert proc.returncode == 2 and "no sequences" in proc.stderr and "Traceback" not in proc.stderr
