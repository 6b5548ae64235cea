"""docs/manifest.schema.json is the manifest's contract: every manifest our exporters write obeys it.

(The native core reads the same fields; the Python runtime's own validation is runtime/manifest.py.)
"""
import json
import os

import pytest

from tests.conftest import REPO

jsonschema = pytest.importorskip("jsonschema")
SCHEMA = os.path.join(REPO, "docs", "manifest.schema.json")


@pytest.fixture(scope="module")
def validator():
    with open(SCHEMA) as handle:
        schema = json.load(handle)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def load(path):
    with open(path) as handle:
        return json.load(handle)


def test_exported_engines_follow_the_schema(validator, rn18_engine, rn18_logits_engine):
    for engine in (rn18_engine, rn18_logits_engine):
        errors = sorted(validator.iter_errors(load(engine + ".json")), key=str)
        assert errors == [], [e.message for e in errors]


def test_forecast_bundles_follow_the_schema(validator, forecast_bundle):
    for name in ("forecast.json", "features.onnx.json", "f2f.onnx.json", "decoder.onnx.json"):
        errors = list(validator.iter_errors(load(os.path.join(forecast_bundle, name))))
        assert errors == [], (name, [e.message for e in errors])


def test_the_schema_rejects_what_the_runtime_rejects(validator, rn18_engine):
    data = load(rn18_engine + ".json")
    for change in ({"schema_version": 2}, {"task": "detection"}, {"precision": "int4"},
                   {"ignore_id": 300}, {"artifact": {"file": "m.onnx", "format": "onnx", "sha256": "0"}}):
        broken = dict(data, **change)
        assert list(validator.iter_errors(broken)), change
    plan = dict(data, artifact=dict(data["artifact"], format="tensorrt"))
    assert any("tensorrt" in e.message for e in validator.iter_errors(plan))
