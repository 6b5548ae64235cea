"""runtime.manifest.Manifest: the one owner of the manifest (issue 18).

Validated on the way in, read-only through typed properties, derived (FP16/INT8/plan artifacts)
into new validated manifests whose JSON keeps the key order, written atomically.
"""
import json
import os
import shutil

import numpy as np
import pytest

from runtime.errors import ManifestError
from runtime.manifest import (DIGEST_KEY, Manifest, dump_manifest, manifest_digest,
                              sidecar_path)


def fields():
    return {
        "schema_version": 1, "arch": "tiny", "task": "segmentation",
        "artifact": {"file": "m.onnx", "format": "onnx"},
        "input": {"name": "frame", "shape": [1, 64, 128, 3], "dtype": "uint8", "layout": "NHWC",
                  "color_order": "BGR", "resize": "letterbox",
                  "normalization": {"in_graph": True, "scale": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1]}},
        "outputs": [{"name": "class_map", "shape": [1, 64, 128], "dtype": "uint8", "meaning": "class_map"}],
        "classes": [{"id": 0, "name": "road", "color": [128, 64, 128]},
                    {"id": 2, "name": "car", "color": [0, 0, 142]}],
        "ignore_id": 255, "precision": "fp32", "opset": 17}


def test_typed_access():
    m = Manifest.from_dict(fields(), "m.onnx.json")
    assert (m.task, m.arch, m.precision, m.ignore_id, m.opset) == ("segmentation", "tiny", "fp32", 255, 17)
    assert (m.input.name, m.input.size, m.input.layout, m.input.kind) == ("frame", (64, 128), "NHWC", "frame")
    assert m.input.resize == "letterbox" and m.input.color_order == "BGR"
    assert m.output("class_map").shape == [1, 64, 128] and m.output("logits") is None
    assert [o.meaning for o in m.outputs] == ["class_map"]
    assert m.class_names == ["road", "car"]
    assert list(m.palette()[2]) == [0, 0, 142] and list(m.palette()[1]) == [0, 0, 0]
    assert m.outlier == {} and m.tensorrt is None and m.sha256 is None and m.artifact_format == "onnx"


def test_read_only_and_copied():
    data = fields()
    m = Manifest.from_dict(data)
    data["input"]["name"] = "changed"            # the dict it came from
    m.input.shape.append(9)                       # what it hands out
    m.classes[0]["name"] = "changed"
    m.to_dict()["precision"] = "int8"
    assert m.input.name == "frame" and m.input.shape == [1, 64, 128, 3]
    assert m.class_names == ["road", "car"] and m.precision == "fp32"


def test_invalid_is_one_manifest_error():
    with pytest.raises(ManifestError, match="^x.json: missing field 'classes'$"):
        Manifest.from_dict(dict((k, v) for k, v in fields().items() if k != "classes"), "x.json")
    with pytest.raises(ManifestError, match="ignore_id"):
        Manifest.from_dict(fields()).derive(ignore_id=300)


def test_derive_keeps_the_key_order():
    m = Manifest.from_dict(dict(fields(), parity={"argmax_agreement": 1.0}))
    d = m.derive(drop=("parity",), artifact={"file": "m_int8.onnx", "format": "onnx"},
                 precision="int8", fp32_parity={"argmax_agreement": 1.0}, accuracy={"drop": 0.1})
    keys = list(fields()) + ["fp32_parity", "accuracy"]
    assert list(d.to_dict()) == keys
    assert d.precision == "int8" and d.accuracy == {"drop": 0.1} and m.precision == "fp32"


def test_write_is_what_to_dict_says(tmp_path):
    m = Manifest.from_dict(fields())
    path = m.write(str(tmp_path / "m.onnx"))
    assert path == sidecar_path(str(tmp_path / "m.onnx"))
    with open(path) as handle:  # the dict as it is, sealed by its own digest (the last field)
        text = handle.read()
    written = json.loads(text)
    assert list(written) == list(m.to_dict()) + [DIGEST_KEY]
    assert text == dump_manifest(m.to_dict())
    assert manifest_digest(text.encode())[0] == written[DIGEST_KEY] == manifest_digest(text.encode())[1]
    (tmp_path / "m.onnx").write_bytes(b"model")
    assert Manifest.load(str(tmp_path / "m.onnx")).to_dict() == m.to_dict()
    assert Manifest.load(path, check_artifact=False).where == path


def test_engine_from_a_manifest_without_a_file(rn18_engine, tmp_path):
    """A staged artifact runs without a manifest beside it (calib/accuracy.py's candidates)."""
    from calib.ort_session import CpuSegmenter
    from runtime.manifest import sha256_file
    staged = str(tmp_path / "candidate.onnx")
    shutil.copyfile(rn18_engine, staged)
    manifest = Manifest.load(rn18_engine).derive(artifact={
        "file": "candidate.onnx", "format": "onnx", "sha256": sha256_file(staged)})
    engine = CpuSegmenter(staged, manifest)
    try:
        assert engine.manifest is manifest and engine.path == staged
        assert not os.path.exists(sidecar_path(staged))
        frame = np.zeros(tuple(engine.size) + (3,), np.uint8)
        assert engine.class_map(frame).shape == tuple(engine.size)
    finally:
        engine.close()
