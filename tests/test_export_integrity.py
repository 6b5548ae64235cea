"""An export never destroys a good engine and never writes one that lies about itself.

Re-exports that fail (parity gate, Ctrl-C) leave the previous artifact and manifest byte for byte;
staging folders of killed runs are cleaned by the next run; NaN weights, untrained heads and class
lists that do not fit the network are refused or recorded. Real exports, real files.
"""
import hashlib
import os

import pytest

from runtime import manifest as manifest_mod
from runtime.artifacts import STAGING_PREFIX, publish
from runtime.errors import UserError

SIZE = (64, 128)


def quiet(_message):
    pass


def digest(path):
    with open(str(path), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def listing(folder):
    return sorted(os.listdir(str(folder)))


@pytest.fixture
def good_export(tmp_path):
    pytest.importorskip("torch")
    from export.api import export
    out = tmp_path / "m.onnx"
    export("swiftnet-rn18", None, SIZE, str(out), parity_images=1, log=quiet)
    return out


@pytest.mark.parametrize("failure", [UserError("parity gate failed: made up"), KeyboardInterrupt()])
def test_a_failed_re_export_leaves_the_previous_pair_untouched(good_export, monkeypatch, failure):
    from export import api, parity
    before = (digest(good_export), digest(str(good_export) + ".json"), listing(good_export.parent))

    def broken(*args, **kwargs):
        raise failure
    monkeypatch.setattr(parity, "run_parity", broken)
    with pytest.raises(type(failure)):
        api.export("swiftnet-rn18", None, SIZE, str(good_export), parity_images=1, log=quiet)
    after = (digest(good_export), digest(str(good_export) + ".json"), listing(good_export.parent))
    assert after == before  # same bytes, and no staging folder left behind
    manifest_mod.Manifest.load(str(good_export)).to_dict()


def test_stale_staging_folders_of_killed_runs_are_cleaned(good_export):
    from export.api import export
    stale = good_export.parent / "{}999999-onnx-x".format(STAGING_PREFIX)  # no such PID
    stale.mkdir()
    (stale / "junk.onnx").write_bytes(b"0" * 1024)
    export("swiftnet-rn18", None, SIZE, str(good_export), parity_images=1, log=quiet)
    assert listing(good_export.parent) == ["m.onnx", "m.onnx.json"]


def test_nan_weights_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    from export import checkpoints, models
    from export.api import export
    ckpt = str(tmp_path / "nan.pt")
    checkpoints.save_checkpoint(ckpt, models.create("swiftnet-rn18"), "swiftnet-rn18", {})
    payload = torch.load(ckpt, weights_only=True)  # save_checkpoint itself refuses NaN weights:
    next(iter(payload["state_dict"].values())).fill_(float("nan"))  # a file broken elsewhere
    torch.save(payload, ckpt)
    with pytest.raises(UserError, match="NaN/Inf"):
        export("swiftnet-rn18", ckpt, SIZE, str(tmp_path / "m.onnx"), parity_images=1, log=quiet)
    assert listing(tmp_path) == ["nan.pt"]


def test_parity_gate_refuses_non_finite_outputs(good_export):
    import numpy as np
    from export import parity
    with pytest.raises(parity.ParityError, match="NaN/Inf"):
        parity._refuse_non_finite(np.array([0.0, np.nan, np.inf]), "PyTorch's logits")


def test_a_head_without_weights_is_recorded_as_untrained(tmp_path):
    torch = pytest.importorskip("torch")
    from export import checkpoints, models
    from export.api import export
    torch.manual_seed(0)
    plain = str(tmp_path / "plain.pt")
    checkpoints.save_checkpoint(plain, models.create("swiftnet-rn18"), "swiftnet-rn18", {})
    messages = []
    data = export("swiftnet-rn18-ood", plain, SIZE, str(tmp_path / "ood.onnx"), parity_images=1,
                  log=messages.append).to_dict()
    assert data["source_checkpoint"]["trained"] is False
    assert data["source_checkpoint"]["untrained_parts"]
    assert data["outlier"]["head_trained"] is False
    assert any("UNTRAINED" in m for m in messages)
    assert manifest_mod.Manifest.load(str(tmp_path / "ood.onnx")).to_dict()["outlier"]["head_trained"] is False


def test_classes_must_match_the_networks_outputs(tmp_path):
    pytest.importorskip("torch")
    from export import checkpoints, models
    from export.api import export
    ckpt = str(tmp_path / "three.pt")
    classes = [{"id": i, "name": "c{}".format(i), "color": [i, i, i]} for i in range(3)]
    checkpoints.save_checkpoint(ckpt, models.create("swiftnet-rn18"), "swiftnet-rn18", {"classes": classes})
    with pytest.raises(UserError, match="3 classes but the network has 19 output channels"):
        export("swiftnet-rn18", ckpt, SIZE, str(tmp_path / "m.onnx"), parity_images=1, log=quiet)
    assert listing(tmp_path) == ["three.pt"]


def test_outputs_that_cannot_be_written_safely_are_refused_before_any_work(tmp_path, run_cli_subprocess):
    folder = tmp_path / "dir.onnx"
    folder.mkdir()
    link = tmp_path / "link.onnx"
    link.symlink_to(tmp_path / "elsewhere.onnx")
    for target, needle in ((folder, "not a regular file"), (link, "not a regular file")):
        proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18", "--size", "64x128",
                                  "--output", target)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert folder.is_dir() and os.listdir(str(folder)) == [] and os.path.islink(str(link))


def test_publish_moves_artifact_and_manifest_together(tmp_path):
    work = tmp_path / "stage"
    work.mkdir()
    staged = work / "x.onnx"
    staged.write_bytes(b"new model")
    (tmp_path / "x.onnx").write_bytes(b"old model")
    (tmp_path / "x.onnx.json").write_text('{"old": true}')
    manifest = manifest_mod.Manifest.from_dict({
        "schema_version": 1, "arch": "x", "task": "segmentation", "precision": "fp32",
        "artifact": {"file": "staged.onnx", "format": "onnx"},
        "input": {"name": "frame", "shape": [1, 2, 2, 3], "dtype": "uint8", "layout": "NHWC",
                  "color_order": "BGR",
                  "normalization": {"in_graph": True, "scale": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1]}},
        "outputs": [{"name": "class_map", "shape": [1, 2, 2], "dtype": "uint8", "meaning": "class_map"}],
        "classes": [{"id": 0, "name": "road", "color": [128, 64, 128]}], "ignore_id": 255})
    published = publish(str(staged), manifest, str(tmp_path / "x.onnx"))
    assert (tmp_path / "x.onnx").read_bytes() == b"new model" and not staged.exists()
    assert published.artifact == {"file": "x.onnx", "format": "onnx", "sha256": digest(tmp_path / "x.onnx")}
    assert manifest_mod.Manifest.load(str(tmp_path / "x.onnx")).to_dict() == published.to_dict()
    assert '"old"' not in (tmp_path / "x.onnx.json").read_text()
    assert listing(work) == []  # the pending manifest was renamed, not copied


@pytest.mark.parametrize("flags, needle", [
    (["--iterations", "0"], "--iterations must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--lr", "nan"], "--lr must be a finite positive number"),
    (["--threads", "100000"], "--threads must be between 1 and"),
])
def test_rt_train_refuses_bad_numbers_in_one_line(run_cli_subprocess, tmp_path, flags, needle):
    proc = run_cli_subprocess("export.train", "--arch", "swiftnet-rn18", "--data", tmp_path,
                              "--output", tmp_path / "c.pt", *flags)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_diverged_training_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from export import checkpoints
    good = tmp_path / "c.pt"
    good.write_bytes(b"last good")
    with pytest.raises(UserError, match=r"diverged at step 7 .*keeps the last good checkpoint"):
        checkpoints.refuse_diverged(torch.tensor(float("nan")), 7, str(good))
    assert good.read_bytes() == b"last good"
    checkpoints.refuse_diverged(torch.tensor(1.5), 8, str(good))  # a finite loss goes on
