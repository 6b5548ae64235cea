"""benchmarks/accuracy_tables.py: cached steps are reused; mean ± sd and every per-split value reported."""
import importlib.util
import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "accuracy_tables.py")


def _load():
    spec = importlib.util.spec_from_file_location("accuracy_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path, data):
    with open(str(path), "w") as handle:
        json.dump(data, handle)


def test_cached_results_give_mean_sd_and_per_split_values(tmp_path, monkeypatch, capsys):
    tables = _load()
    monkeypatch.setattr(tables.subprocess, "call", lambda *a, **k: pytest.fail("a cached step was run again"))
    data, work = tmp_path / "data", tmp_path / "work"
    for seed in tables.TEST_IMAGE_SEEDS:
        (data / "test_s{}".format(seed)).mkdir(parents=True)
        _write(data / "test_s{}".format(seed) / "synth_test.json", {})
    (work / "engines").mkdir(parents=True)
    (work / "results").mkdir()
    values = {"seg": {"fp32": [0.80, 0.79, 0.81], "int8": [0.80, 0.79, 0.80]},
              "ood": {"fp32": [0.795, 0.785, 0.805], "int8": [0.79, 0.785, 0.80]}}
    aps = {"fp32": [0.82, 0.78, 0.80], "int8": [0.815, 0.78, 0.795]}
    for name, arch, checkpoint, _, precisions in tables.MODELS[:2]:
        for precision in precisions:
            tag = "{}_{}_{}".format(name, tables.sha256_file(os.path.join(REPO, checkpoint))[:10], precision)
            _write(work / "engines" / (tag + ".onnx.json"), {})
            for i, seed in enumerate(tables.TEST_IMAGE_SEEDS):
                result = {"miou": values[name][precision][i]}
                if name == "ood":
                    result.update({"inlier_miou": values[name][precision][i],
                                   "outlier": {"ap": aps[precision][i], "fpr_at_95_tpr": 0.02, "auroc": 0.99}})
                _write(work / "results" / "{}.onnx__test_s{}.json".format(tag, seed), result)
    out = tmp_path / "accuracy.md"
    assert tables.main(["--models", "seg", "ood", "--work", str(work), "--data-root", str(data),
                        "--output", str(out)]) == 0
    text = out.read_text()
    assert text == capsys.readouterr().out.split("\naccuracy_tables:")[0]
    assert "| swiftnet-rn18 | FP32 | 80.00 ± 1.00 % | 80.00 / 79.00 / 81.00 |" in text
    assert "| swiftnet-rn18-ood | FP32 | 80.00 ± 2.00 % | 82.00 / 78.00 / 80.00 | 78.00 % |" in text
    assert "INT8 AP drop vs FP32: 0.33 ± 0.29 pp (per split 0.50 / 0.00 / 0.50)" in text
    assert "minus the plain model (FP32, same pixels): -0.50 ± 0.00 pp" in text


def test_a_failing_step_ends_the_script_naming_its_log(tmp_path, monkeypatch):
    tables = _load()
    monkeypatch.setattr(tables.subprocess, "call", lambda *a, **k: 1)
    with pytest.raises(SystemExit) as error:
        tables.main(["--models", "seg", "--work", str(tmp_path / "work"), "--data-root", str(tmp_path / "data"),
                     "--output", str(tmp_path / "a.md")])
    message = str(error.value)
    assert message.startswith("accuracy_tables: ") and "failed, see" in message and "accuracy.log" in message
