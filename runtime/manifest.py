"""The manifest: the JSON sidecar that is the contract between export and runtime.

Every artifact ``engines/NAME.onnx`` (or ``.plan``) has ``engines/NAME.onnx.json``.
The runtime takes everything it needs from it (tensor names, shapes, dtypes,
colour order, normalization, classes); nothing of that is hard-coded in
``runtime/``. The schema is documented in README.md ("Manifest").
"""
import hashlib
import json
import os

from runtime.errors import ManifestError
from runtime.jsonfile import write_atomic

SCHEMA_VERSION = 1

TASKS = ("segmentation", "outlier", "forecast")
INPUT_LAYOUTS = ("NHWC", "NCHW")
COLOR_ORDERS = ("BGR", "RGB")
OUTPUT_MEANINGS = ("class_map", "logits", "outlier_score", "features")
RESIZE_MODES = ("stretch", "letterbox", "crop")

_REQUIRED = ("schema_version", "arch", "task", "artifact", "input", "outputs",
             "classes", "ignore_id", "precision")


def sidecar_path(artifact_path):
    """The manifest path of an artifact: always ``<artifact>.json``."""
    return str(artifact_path) + ".json"


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of a file, read in chunks (engines can be large)."""
    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(path):
    """Return ``(artifact_path, manifest_path)`` for an artifact or a manifest path."""
    path = str(path)
    if path.endswith(".json"):
        manifest_path = path
        artifact_path = path[:-len(".json")]
    else:
        artifact_path = path
        manifest_path = sidecar_path(path)
    return artifact_path, manifest_path


def load(path, check_artifact=True):
    """Load and validate the manifest of ``path`` (an artifact or its ``.json``).

    Raises ManifestError with one clear line when it is missing, unreadable, of
    another schema version, or does not describe the artifact beside it.
    """
    artifact_path, manifest_path = resolve(path)
    if not os.path.exists(manifest_path):
        raise ManifestError("no manifest for {}: expected {} (re-export with rt-export)"
                            .format(artifact_path, manifest_path))
    try:
        with open(manifest_path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ManifestError("cannot read manifest {}: {}".format(manifest_path, exc))
    validate(data, manifest_path)
    if check_artifact and data.get("task") != "forecast":
        if not os.path.exists(artifact_path):
            raise ManifestError("manifest {} has no artifact beside it: {} is missing"
                                .format(manifest_path, artifact_path))
    return data


def validate(data, where="manifest"):
    """Check the fields the runtime relies on; raise ManifestError naming the first problem."""
    if not isinstance(data, dict):
        raise ManifestError("{}: not a JSON object".format(where))
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError("{}: schema version {!r}, this runtime reads version {} "
                            "(re-export the model with this release)"
                            .format(where, version, SCHEMA_VERSION))
    for key in _REQUIRED:
        if key not in data:
            raise ManifestError("{}: missing field '{}'".format(where, key))
    if data["task"] not in TASKS:
        raise ManifestError("{}: unknown task {!r}".format(where, data["task"]))
    _validate_input(data["input"], where)
    outputs = data["outputs"]
    if not isinstance(outputs, list) or not outputs:
        raise ManifestError("{}: 'outputs' must be a non-empty list".format(where))
    for out in outputs:
        for key in ("name", "shape", "dtype", "meaning"):
            if key not in out:
                raise ManifestError("{}: output without '{}'".format(where, key))
        if out["meaning"] not in OUTPUT_MEANINGS:
            raise ManifestError("{}: output {} has unknown meaning {!r}"
                                .format(where, out["name"], out["meaning"]))
    for cls in data["classes"]:
        if not {"id", "name", "color"} <= set(cls):
            raise ManifestError("{}: each class needs id, name and color".format(where))


def _validate_input(inp, where):
    for key in ("name", "shape", "dtype", "layout", "color_order", "normalization"):
        if key not in inp:
            raise ManifestError("{}: input without '{}'".format(where, key))
    if inp["layout"] not in INPUT_LAYOUTS:
        raise ManifestError("{}: input layout {!r} not one of {}".format(
            where, inp["layout"], INPUT_LAYOUTS))
    if inp["color_order"] not in COLOR_ORDERS:
        raise ManifestError("{}: colour order {!r} not one of {}".format(
            where, inp["color_order"], COLOR_ORDERS))
    if len(inp["shape"]) != 4:
        raise ManifestError("{}: input shape must be 4-D, got {}".format(where, inp["shape"]))
    norm = inp["normalization"]
    for key in ("in_graph", "scale", "mean", "std"):
        if key not in norm:
            raise ManifestError("{}: input normalization without '{}'".format(where, key))


def write(artifact_path, data):
    """Write ``data`` as the sidecar of ``artifact_path`` (validated first).

    Written to a temporary file and renamed, so a crash never leaves half a manifest.
    """
    validate(data, sidecar_path(artifact_path))
    return write_atomic(sidecar_path(artifact_path), data)


def input_hw(data):
    """(height, width) of the network input, whatever its layout."""
    inp = data["input"]
    shape = inp["shape"]
    if inp["layout"] == "NHWC":
        return int(shape[1]), int(shape[2])
    return int(shape[2]), int(shape[3])


def output_by_meaning(data, meaning):
    """The output description with this meaning, or None."""
    for out in data["outputs"]:
        if out["meaning"] == meaning:
            return out
    return None


def palette(data, size=256):
    """A (size, 3) uint8 RGB lookup table from the manifest's classes (black elsewhere)."""
    import numpy as np
    table = np.zeros((size, 3), dtype=np.uint8)
    for cls in data["classes"]:
        table[int(cls["id"])] = cls["color"]
    return table
