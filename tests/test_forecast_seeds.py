"""benchmarks/forecast_seeds.py: the seed study reuses finished runs and reports paired differences."""
import importlib.util
import json
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "forecast_seeds.py")


def _load():
    spec = importlib.util.spec_from_file_location("forecast_seeds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(folder, arch, seed, miou, moving, gain):
    with open(os.path.join(str(folder), "{}-mid_s{}_test.json".format(arch, seed)), "w") as f:
        json.dump({"forecast": {"miou": miou, "moving_miou": moving}, "gain_over_copy_last_pp": gain}, f)


def test_finished_runs_are_reused_and_differences_paired_by_seed(tmp_path, monkeypatch, capsys):
    seeds = _load()
    monkeypatch.setattr(seeds.subprocess, "call", lambda *a, **k: pytest.fail("a finished run was run again"))
    _result(tmp_path, "f2f-8", 0, 0.45, 0.42, 5.5)
    _result(tmp_path, "f2f-8", 1, 0.44, 0.40, 4.5)
    _result(tmp_path, "f2f-8-conv", 0, 0.44, 0.41, 4.5)
    _result(tmp_path, "f2f-8-conv", 1, 0.445, 0.40, 5.0)
    seeds.main(["--seeds", "0", "1", "--output", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| mean ± sd | 44.50 ± 0.71 % (41.00 %) / +5.00 pp | 44.25 ± 0.35 % (40.50 %) / +4.75 pp |" in out
    assert "mIoU +1.00 -0.50 (mean +0.25 pp), moving +1.00 +0.00 (mean +0.50 pp)" in out


def test_a_failing_step_ends_in_one_line_naming_its_log(tmp_path, monkeypatch):
    seeds = _load()
    monkeypatch.setattr(seeds.subprocess, "call", lambda *a, **k: 1)
    with pytest.raises(SystemExit) as error:
        seeds.main(["--seeds", "0", "--jobs", "1", "--output", str(tmp_path)])
    message = str(error.value)
    assert message.startswith("forecast_seeds: ") and "failed: see" in message and "\n" not in message
    assert os.path.exists(os.path.join(str(tmp_path), "f2f-8-mid_s0.log"))
