"""Errors a user can cause: one line on stderr, non-zero exit, no traceback unless --debug."""
import json
import os
import shutil

import pytest

from runtime.manifest import sha256_file, write_manifest_json


def assert_one_line_error(proc, *needles):
    assert proc.returncode != 0, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert lines and "error:" in lines[-1]
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def test_missing_checkpoint(run_cli_subprocess, tmp_path):
    proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18", "--checkpoint",
                              tmp_path / "nope.pt", "--output", tmp_path / "x.onnx")
    assert_one_line_error(proc, "nope.pt")
    assert not os.path.exists(str(tmp_path / "x.onnx"))


def test_corrupt_checkpoint(run_cli_subprocess, tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"this is not a checkpoint" * 10)
    proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18", "--checkpoint", bad,
                              "--output", tmp_path / "x.onnx")
    assert_one_line_error(proc, "corrupt.pt")


def test_unknown_arch(run_cli_subprocess, tmp_path):
    proc = run_cli_subprocess("export.cli", "--arch", "resnet-9000", "--output", tmp_path / "x.onnx")
    assert_one_line_error(proc, "resnet-9000")


def test_malformed_size(run_cli_subprocess, tmp_path):
    proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18", "--size", "256by512",
                              "--output", tmp_path / "x.onnx")
    assert_one_line_error(proc, "--size")


def test_debug_shows_traceback(run_cli_subprocess, tmp_path):
    proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18", "--size", "256by512",
                              "--output", tmp_path / "x.onnx", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


# The runtime side refuses bad engines through runtime.open_engine, which every runtime CLI uses.

def test_corrupt_onnx_is_refused(rn18_engine, tmp_path):
    from runtime import open_engine
    from runtime.errors import UserError
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 100)
    shutil.copy(rn18_engine + ".json", str(bad) + ".json")
    with pytest.raises(UserError, match="does not match its manifest"):
        open_engine(str(bad))                     # the sha256 check sees it first
    data = json.load(open(rn18_engine + ".json"))
    data["artifact"]["sha256"] = sha256_file(str(bad))   # a garbage file its manifest vouches for
    write_manifest_json(str(bad) + ".json", data)
    with pytest.raises(UserError, match="bad.onnx"):
        open_engine(str(bad))                     # the backend cannot load it: one line


def test_missing_manifest_is_refused(rn18_engine, tmp_path):
    from runtime import open_engine
    from runtime.errors import ManifestError
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(rn18_engine, str(lonely))
    with pytest.raises(ManifestError, match="no manifest"):
        open_engine(str(lonely))


def test_other_schema_version_is_refused(rn18_engine, tmp_path):
    from runtime import open_engine
    from runtime.errors import ManifestError
    copy = tmp_path / "old.onnx"
    shutil.copy(rn18_engine, str(copy))
    data = json.load(open(rn18_engine + ".json"))
    data["schema_version"] = 0
    write_manifest_json(str(copy) + ".json", data)
    with pytest.raises(ManifestError, match="schema version"):
        open_engine(str(copy))


def test_manifest_naming_a_tensor_the_model_lacks_is_refused(rn18_engine, tmp_path):
    from runtime import open_engine
    from runtime.errors import ManifestError
    copy = tmp_path / "renamed.onnx"
    shutil.copy(rn18_engine, str(copy))
    data = json.load(open(rn18_engine + ".json"))
    data["input"]["name"] = "image_rgb"
    write_manifest_json(str(copy) + ".json", data)
    with pytest.raises(ManifestError, match="image_rgb"):
        open_engine(str(copy))
