"""Artifacts prove what they are: the sha256 in the manifest is checked when an engine or a
bundle stage is opened (cached by inode, size, mtime and ctime), the core checks it always (--no-verify changes nothing); manifests that are
FIFOs, devices, huge or absurdly deep are refused in one line without blocking."""
import json
import os
import shutil
import time

import pytest

from runtime import manifest as manifest_mod
from runtime.errors import ManifestError
from tests import forecast_bundles as fb
from tests.test_output_safety import assert_one_line_refusal, digest, run
from tests.test_segment_cli import write_video


def flip_middle_byte(path):
    """Change one weight byte: the model still loads and runs, with other numbers."""
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.seek(size // 2)
        byte = handle.read(1)
        handle.seek(size // 2)
        handle.write(bytes([byte[0] ^ 0x5A]))


@pytest.fixture
def engine_copy(tmp_path, rn18_engine):
    for suffix in ("", ".json"):
        shutil.copy(rn18_engine + suffix, str(tmp_path / ("e.onnx" + suffix)))
    return str(tmp_path / "e.onnx")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "v.mp4", 6)


def test_a_changed_engine_is_refused_even_with_no_verify(engine_copy, video):
    flip_middle_byte(engine_copy)
    before = digest([engine_copy, engine_copy + ".json", video])
    for module, args in (("runtime.cli.segment", ["-e", engine_copy, "--video", video]),
                         ("runtime.cli.bench", ["-e", engine_copy, "-n", "1", "--rounds", "1"]),
                         ("runtime.cli.eval", ["--engine", engine_copy, "--data", os.path.dirname(video)])):
        assert_one_line_refusal(run(module, *args), "does not match", "sha256")
    # libswiftrt checks every artifact, --no-verify or not: a changed file never runs.
    assert_one_line_refusal(run("runtime.cli.segment", "-e", engine_copy, "--video", video, "-q",
                                "--no-verify"), "does not match", "sha256")
    assert digest([engine_copy, engine_copy + ".json", video]) == before


@pytest.mark.parametrize("recorded", ["0" * 64, "abc", 12345, "G" * 64, ["x"]])
def test_malformed_or_all_zero_hashes_are_refused(engine_copy, video, recorded):
    with open(engine_copy + ".json") as handle:
        data = json.load(handle)
    data["artifact"]["sha256"] = recorded
    manifest_mod.write_manifest_json(engine_copy + ".json", data)
    assert_one_line_refusal(run("runtime.cli.segment", "-e", engine_copy, "--video", video),
                            "malformed or all-zero artifact sha256")


def verify(path):
    """The Python side's check of an artifact (rt-plan, calibration; the core has its own)."""
    manifest_mod.Manifest.load(path).verify_artifact(path)


def test_the_hash_is_cached_by_inode_size_mtime_and_ctime(engine_copy, monkeypatch, tmp_path):
    monkeypatch.setenv("SWIFTRT_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real = manifest_mod.sha256_file
    monkeypatch.setattr(manifest_mod, "sha256_file", lambda p: calls.append(p) or real(p))
    verify(engine_copy)
    verify(engine_copy)
    assert len(calls) == 1                       # the second open costs no hashing
    stamp = os.stat(engine_copy).st_mtime_ns + 10 ** 9
    os.utime(engine_copy, ns=(stamp, stamp))     # same bytes, new mtime: hashed again, still fine
    verify(engine_copy)
    assert len(calls) == 2
    flip_middle_byte(engine_copy)
    os.utime(engine_copy, ns=(stamp, stamp))     # same size and mtime (touch -r): the ctime moved
    with pytest.raises(ManifestError, match="does not match"):
        verify(engine_copy)
    assert len(calls) == 3


def test_a_swapped_bundle_stage_is_refused(tmp_path):
    """The issue's case: another bundle's f2f.onnx (same inputs and outputs) runs silently and
    forecasts something else; the stage's sha256 catches it."""
    good = fb.build_bundle(tmp_path / "good", (-4, -2, 0), frame_rate=15.0)
    other = fb.build_bundle(tmp_path / "other", (-4, -2, 0), frame_rate=15.0, f2f="copy-oldest")
    shutil.copy(os.path.join(os.path.dirname(other), "f2f.onnx"),
                os.path.join(os.path.dirname(good), "f2f.onnx"))
    video = fb.write_video(tmp_path / "v.mp4", 12, 15.0)
    proc = run("runtime.cli.segment", "-e", good, "--video", video, "-q")
    assert_one_line_refusal(proc, "f2f.onnx does not match its manifest")
    assert_one_line_refusal(run("runtime.cli.segment", "-e", good, "--video", video, "-q",
                                "--no-verify"), "f2f.onnx does not match its manifest")


def _hostile_manifest(engine_copy, kind):
    path = engine_copy + ".json"
    os.remove(path)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        with open(path, "w") as handle:
            handle.write('{"pad": "' + "x" * (5 << 20) + '"}')
    elif kind == "deep":
        with open(path, "w") as handle:
            handle.write("[" * 100000 + "]" * 100000)
    elif kind == "deep-but-parsable":
        with open(path, "w") as handle:
            handle.write('{"a": ' + "[" * 40 + "]" * 40 + "}")
    elif kind == "device":
        os.symlink("/dev/zero", path)


@pytest.mark.parametrize("kind,words", [("fifo", "not a regular file"), ("device", "not a regular file"),
                                        ("huge", "larger than"), ("deep", "nested"),
                                        ("deep-but-parsable", "nested deeper")])
def test_hostile_manifests_are_refused_without_blocking(engine_copy, video, kind, words):
    _hostile_manifest(engine_copy, kind)
    started = time.monotonic()
    proc = run("runtime.cli.segment", "-e", engine_copy, "--video", video, timeout=60)
    assert_one_line_refusal(proc, words)
    assert time.monotonic() - started < 30


def test_a_fifo_as_engine_is_refused_without_blocking(tmp_path, rn18_engine, video):
    fifo = str(tmp_path / "f.onnx")
    os.mkfifo(fifo)
    shutil.copy(rn18_engine + ".json", fifo + ".json")
    for extra in ([], ["--no-verify"]):
        proc = run("runtime.cli.segment", "-e", fifo, "--video", video, *extra, timeout=60)
        assert_one_line_refusal(proc, "not a regular file")
