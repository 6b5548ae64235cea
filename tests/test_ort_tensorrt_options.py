"""ONNX Runtime's TensorRT execution provider: precision from the manifest, engines cached per artifact.

The provider itself needs a GPU (not here); these pin the options we hand it, which the ORT
documentation names (trt_fp16_enable, trt_int8_enable, trt_engine_cache_enable/_path,
trt_timing_cache_enable from ORT 1.11, trt_timing_cache_path from 1.17).
"""
import os

from runtime.backends.onnxruntime import default_cache_root, tensorrt_options


def manifest(precision, sha="ab" * 32):
    """What tensorrt_options reads of a manifest: (precision, artifact sha256)."""
    return precision, sha


def test_precision_follows_the_manifest(tmp_path):
    for precision, fp16, int8 in (("fp32", False, False), ("fp16", True, False), ("int8", True, True)):
        options = tensorrt_options(*manifest(precision), "1.16.3", str(tmp_path))
        assert (options["trt_fp16_enable"], options["trt_int8_enable"]) == (fp16, int8)


def test_engines_are_cached_per_artifact(tmp_path):
    a = tensorrt_options(*manifest("fp16", "aa" * 32), "1.16.3", str(tmp_path))
    b = tensorrt_options(*manifest("fp16", "bb" * 32), "1.16.3", str(tmp_path))
    assert a["trt_engine_cache_enable"] is True
    assert a["trt_engine_cache_path"] == os.path.join(str(tmp_path), "aa" * 8)
    assert a["trt_engine_cache_path"] != b["trt_engine_cache_path"]


def test_timing_cache_options_exist_only_where_ort_has_them(tmp_path):
    old = tensorrt_options(*manifest("fp16"), "1.10.0", str(tmp_path))
    assert "trt_timing_cache_enable" not in old and "trt_timing_cache_path" not in old
    mid = tensorrt_options(*manifest("fp16"), "1.11.0", str(tmp_path))
    assert mid["trt_timing_cache_enable"] is True and "trt_timing_cache_path" not in mid
    new = tensorrt_options(*manifest("fp16"), "1.17.1", str(tmp_path))
    assert new["trt_timing_cache_path"] == str(tmp_path)  # shared by every model


def test_cache_root_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SWIFTRT_CACHE", str(tmp_path))
    assert default_cache_root() == str(tmp_path)
    monkeypatch.delenv("SWIFTRT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == os.path.join(str(tmp_path / "xdg"), "swiftrt", "ort-tensorrt")
