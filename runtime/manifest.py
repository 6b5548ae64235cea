"""The manifest: the JSON sidecar that is the contract between export and runtime.

Every artifact ``engines/NAME.onnx`` (or ``.plan``) has ``engines/NAME.onnx.json``.
The runtime takes everything it needs from it (tensor names, shapes, dtypes,
colour order, normalization, classes); nothing of that is hard-coded in
``runtime/``. The schema is documented in docs/manifest.md and docs/manifest.schema.json.

A forecast bundle is one manifest ``forecast.json`` (task ``forecast``) naming three
stage artifacts, each with its own manifest (task ``forecast_stage``); see
docs/forecast-bundle.md.
"""
import copy
import hashlib
import json
import logging
import numbers
import os
import re
import stat

from runtime.errors import ManifestError
from runtime.jsonfile import OutputError, finite, unique_keys, write_atomic, write_text_atomic

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

TASKS = ("segmentation", "outlier", "forecast", "forecast_stage")
FORECAST_STAGES = ("features", "f2f", "decoder")
BUNDLE_NAME = "forecast.json"
INPUT_KINDS = ("frame", "features")
INPUT_LAYOUTS = ("NHWC", "NCHW")
COLOR_ORDERS = ("BGR", "RGB")
OUTPUT_MEANINGS = ("class_map", "logits", "outlier_score", "features")
RESIZE_MODES = ("stretch", "letterbox", "crop")
PRECISIONS = ("fp32", "fp16", "int8")
DTYPES = ("uint8", "int8", "float16", "float32", "int32", "int64")
MAX_DIM = 1 << 16  # a tensor dimension larger than this is a broken manifest, not a model

_REQUIRED = ("schema_version", "arch", "task", "artifact", "input", "outputs",
             "classes", "ignore_id", "precision")
MAX_MANIFEST_BYTES = 4 << 20  # real manifests are a few kB; anything this big is not one
MAX_DEPTH = 16                # real manifests nest 4-5 levels (e.g. input.normalization.mean)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# The manifest's own digest: sha256 of the file's bytes with this field's value replaced by
# DIGEST_PLACEHOLDER. Hashing bytes (not re-serialized JSON) means no reader has to format
# floats or order keys as Python does: the native core (runtime/native/src/manifest.cpp) checks
# the same bytes the same way. Written by dump_manifest, the one writer.
DIGEST_KEY = "manifest_sha256"
DIGEST_PLACEHOLDER = "0" * 64
_DIGEST_NAME = b'"' + DIGEST_KEY.encode("ascii") + b'"'
_DIGEST_FIELD = re.compile(re.escape(_DIGEST_NAME) + rb'[ \t\r\n]*:[ \t\r\n]*"([0-9a-f]{64})"')
_BUNDLE_REQUIRED = ("schema_version", "task", "arch", "precision", "stages", "past_offsets",
                    "horizon", "frame_rate", "feature_shape", "classes", "ignore_id", "input")


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


def manifest_digest(raw):
    """``(recorded, computed)`` for a manifest file's bytes ``raw``: the 64 hex digits of its
    ``manifest_sha256`` field and the sha256 of ``raw`` with them replaced by DIGEST_PLACEHOLDER.

    ``(None, None)`` when the field name does not occur exactly once in the bytes (absent, escaped,
    duplicated, or not followed by 64 lowercase hex digits): such a manifest has no usable digest.
    """
    if raw.count(_DIGEST_NAME) != 1:
        return None, None
    match = _DIGEST_FIELD.search(raw)
    if match is None:
        return None, None
    start, end = match.span(1)
    sealed = raw[:start] + DIGEST_PLACEHOLDER.encode("ascii") + raw[end:]
    return match.group(1).decode("ascii"), hashlib.sha256(sealed).hexdigest()


def dump_manifest(data):
    """The text of a manifest file for ``data`` (a dict), sealed with its ``manifest_sha256``.

    The one place manifests are serialized: Manifest.write_file and test fixtures that write
    deliberately damaged manifests go through it, so every manifest on disk carries a digest.
    The field keeps its place when ``data`` has one (re-writing a loaded manifest), else it is last.
    """
    body = dict(data)
    body[DIGEST_KEY] = DIGEST_PLACEHOLDER
    try:
        text = json.dumps(body, indent=2, allow_nan=False)
    except (TypeError, ValueError):  # numpy scalars; NaN/Inf become null as in write_atomic
        text = json.dumps(finite(body), indent=2, allow_nan=False)
    return seal_manifest_text(text + "\n")


def seal_manifest_text(text):
    """``text`` (a manifest's JSON with one ``manifest_sha256`` field, any 64 hex digits) with that
    field set to the digest of the result (manifest_digest). ASCII text: json.dumps' default."""
    raw = text.encode("ascii")
    _, digest = manifest_digest(raw)
    if digest is None:
        raise ValueError("the text needs exactly one {} field of 64 hex digits".format(DIGEST_KEY))
    match = _DIGEST_FIELD.search(raw)
    return (raw[:match.start(1)] + digest.encode("ascii") + raw[match.end(1):]).decode("ascii")


def write_manifest_json(path, data):
    """Write ``data`` as a sealed manifest file at ``path`` (atomically; not validated: use
    Manifest.write_file for a manifest, this for fixtures that must be written as they are)."""
    return write_text_atomic(path, dump_manifest(data))


def _verify_digest(raw, data, where, allow_legacy):
    """Refuse a manifest whose bytes do not match its ``manifest_sha256`` (one line); one without
    a digest unless ``allow_legacy`` (files written before manifests were sealed)."""
    recorded, computed = manifest_digest(raw)
    if recorded is None:
        if isinstance(data, dict) and DIGEST_KEY in data:
            raise ManifestError("{}: malformed {} (64 lowercase hex digits, once, at the top level)"
                                .format(where, DIGEST_KEY))
        if allow_legacy:
            log.warning("%s has no %s: a legacy manifest, opened unverified", where, DIGEST_KEY)
            return
        raise ManifestError("{}: no {} (a manifest written before manifests were sealed, or by "
                            "hand): re-export it, or open it with allow_legacy".format(where, DIGEST_KEY))
    if data.get(DIGEST_KEY) != recorded:
        raise ManifestError("{}: {} is not a top-level field".format(where, DIGEST_KEY))
    if computed != recorded:
        raise ManifestError("{} does not match its {} (edited or damaged since it was written: "
                            "re-export it)".format(where, DIGEST_KEY))


def check_regular(path, what):
    """Refuse a path that is not a regular file (a FIFO or a device would block or never end).

    Looked at with stat, before anything opens it.
    """
    try:
        mode = os.stat(str(path)).st_mode
    except OSError as exc:
        raise ManifestError("cannot read {} {}: {}".format(what, path, exc.strerror))
    if not stat.S_ISREG(mode):
        raise ManifestError("{} {} is not a regular file (a FIFO, device or socket?)".format(
            what, path))


def _depth(value):
    """How deeply a parsed JSON value nests (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def read_json(path, what="manifest"):
    """A manifest's JSON: refused when not a regular file, over MAX_MANIFEST_BYTES or too deep."""
    return _read_json_bytes(path, what)[0]


def _read_json_bytes(path, what="manifest"):
    """(parsed JSON, the file's bytes) of read_json."""
    check_regular(path, what)
    try:
        with open(str(path), "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError("cannot read {} {}: {}".format(what, path, exc.strerror))
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError("{} {} is larger than {} MB: not a manifest".format(
            what, path, MAX_MANIFEST_BYTES >> 20))
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)
    except RecursionError:
        raise ManifestError("{} {} is nested too deeply".format(what, path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError("cannot read {} {}: {}".format(what, path, exc))
    if _depth(data) > MAX_DEPTH:
        raise ManifestError("{} {} is nested deeper than {} levels: not a manifest".format(
            what, path, MAX_DEPTH))
    return data, raw


def _cache_path():
    root = (os.environ.get("SWIFTRT_CACHE_DIR")
            or os.path.join(os.environ.get("XDG_CACHE_HOME")
                            or os.path.join(os.path.expanduser("~"), ".cache"), "swiftrt"))
    return os.path.join(root, "sha256.json")


_CACHE_ENTRIES = 256


def cached_sha256(path):
    """sha256 of ``path``, remembered by (path, device, inode, size, mtime_ns, ctime_ns) in a
    small cache file.

    Hashing a 50 MB engine takes ~0.1-1 s on a Jetson: paid once per file version, not on
    every start. The ctime cannot be set back by a user (``touch -r`` after changing the
    bytes moves it), and a file replaced by another has another inode, so a changed file is
    never trusted. A cache that cannot be read or written is ignored (never an error).
    """
    real = os.path.realpath(str(path))
    st = os.stat(real)
    key = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    cache_file = _cache_path()
    try:
        with open(cache_file) as handle:
            cache = json.load(handle)
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(real)
    if isinstance(entry, list) and len(entry) == len(key) + 1 and entry[:-1] == key:
        return entry[-1]
    digest = sha256_file(real)
    cache[real] = key + [digest]
    while len(cache) > _CACHE_ENTRIES:
        cache.pop(next(iter(cache)))
    try:
        write_atomic(cache_file, cache, indent=None)
    except (OSError, OutputError):
        pass
    return digest


def _verify_artifact(artifact_path, data, where, allow_legacy=False):
    """Refuse an artifact whose sha256 is not the one its manifest records (one line).

    A malformed or all-zero hash is refused too; a manifest without one (older exports) only
    with ``allow_legacy`` (then with a warning): nothing unverified runs unasked.
    """
    recorded = (data.get("artifact") or {}).get("sha256")
    if recorded is None:
        if not allow_legacy:
            raise ManifestError("{} records no artifact sha256: {} cannot be verified (re-export "
                                "it, or open it with allow_legacy)".format(where, artifact_path))
        log.warning("%s records no artifact sha256: %s not verified", where, artifact_path)
        return
    if not isinstance(recorded, str) or not _SHA256.match(recorded) or not recorded.strip("0"):
        raise ManifestError("{}: malformed or all-zero artifact sha256 {!r} (64 hex digits expected; "
                            "re-export)".format(where, recorded))
    actual = cached_sha256(artifact_path)
    if actual != recorded:
        raise ManifestError("{} does not match its manifest: sha256 {}... instead of {}... (a different "
                            "or damaged file; re-export it)".format(artifact_path, actual[:12],
                                                                     recorded[:12]))


def resolve(path):
    """Return ``(artifact_path, manifest_path)`` for an artifact or a manifest path.

    A folder holding a ``forecast.json`` stands for that bundle (artifact: the folder).
    """
    path = str(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, BUNDLE_NAME)):
        return path, os.path.join(path, BUNDLE_NAME)
    if path.endswith(".json"):
        manifest_path = path
        artifact_path = path[:-len(".json")]
    else:
        artifact_path = path
        manifest_path = sidecar_path(path)
    return artifact_path, manifest_path


def _load(path, check_artifact=True, allow_legacy=False):
    """Load and validate the manifest dict of ``path`` (an artifact or its ``.json``).

    Raises ManifestError with one clear line when it is missing, unreadable, of
    another schema version, invalid, not sealed by its ``manifest_sha256`` (unless
    ``allow_legacy``) or changed since, or does not describe the artifact beside it.
    """
    artifact_path, manifest_path = resolve(path)
    if os.path.isdir(artifact_path) and not os.path.isfile(manifest_path):
        raise ManifestError("{} is a folder without a {}: give an artifact, its manifest, or "
                            "a forecast bundle's folder".format(artifact_path, BUNDLE_NAME))
    if not os.path.exists(manifest_path):
        raise ManifestError("no manifest for {}: expected {} (re-export with rt-export)"
                            .format(artifact_path, manifest_path))
    data, raw = _read_json_bytes(manifest_path)
    _validate(data, manifest_path)
    _verify_digest(raw, data, manifest_path, allow_legacy)
    data.pop(DIGEST_KEY, None)  # the file's seal, not content: to_dict() never carries it
    if check_artifact and data["task"] != "forecast":  # a bundle's artifacts are its stages
        if not os.path.exists(artifact_path):
            raise ManifestError("manifest {} has no artifact beside it: {} is missing"
                                .format(manifest_path, artifact_path))
        check_regular(artifact_path, "artifact")
    return data


def peek_task(path):
    """The ``task`` a manifest (or artifact, or bundle folder) declares; None if unreadable.

    For dispatching only (never raises): the chosen loader validates properly.
    """
    try:
        data = read_json(resolve(path)[1])
    except ManifestError:
        return None
    return data.get("task") if isinstance(data, dict) else None


def _validate(data, where="manifest"):
    """Check the fields the runtime relies on; raise ManifestError naming the first problem."""
    if not isinstance(data, dict):
        raise ManifestError("{}: not a JSON object".format(where))
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError("{}: schema version {!r}, this runtime reads version {} "
                            "(re-export the model with this release)"
                            .format(where, version, SCHEMA_VERSION))
    if data.get("task") == "forecast":
        _validate_bundle(data, where)
        return
    for key in _REQUIRED:
        if key not in data:
            raise ManifestError("{}: missing field '{}'".format(where, key))
    if not isinstance(data["artifact"], dict):
        raise ManifestError("{}: 'artifact' must be an object".format(where))
    if data["task"] not in TASKS:
        raise ManifestError("{}: unknown task {!r}".format(where, data["task"]))
    if data["task"] == "forecast_stage" and data.get("stage") not in FORECAST_STAGES:
        raise ManifestError("{}: forecast stage {!r} not one of {}".format(
            where, data.get("stage"), ", ".join(FORECAST_STAGES)))
    _validate_input(data["input"], where)
    outputs = data["outputs"]
    if not isinstance(outputs, list) or not outputs:
        raise ManifestError("{}: 'outputs' must be a non-empty list".format(where))
    for out in outputs:
        if not isinstance(out, dict):
            raise ManifestError("{}: each output must be an object, got {!r}".format(where, out))
        for key in ("name", "shape", "dtype", "meaning"):
            if key not in out:
                raise ManifestError("{}: output without '{}'".format(where, key))
        if out["meaning"] not in OUTPUT_MEANINGS:
            raise ManifestError("{}: output {} has unknown meaning {!r}"
                                .format(where, out["name"], out["meaning"]))
    _validate_classes(data["classes"], where)
    _validate_types(data, where)


def _validate_classes(classes, where):
    if not isinstance(classes, list) or not classes:
        raise ManifestError("{}: 'classes' must be a non-empty list".format(where))
    ids = set()
    for cls in classes:
        if not isinstance(cls, dict) or not {"id", "name", "color"} <= set(cls):
            raise ManifestError("{}: each class needs id, name and color".format(where))
        if not _is_integer(cls["id"]) or not 0 <= cls["id"] <= 255 or cls["id"] in ids:
            raise ManifestError("{}: class ids must be distinct integers 0..255, got {!r}".format(
                where, cls["id"]))
        ids.add(cls["id"])
        if not isinstance(cls["name"], str):
            raise ManifestError("{}: class {} name must be a string".format(where, cls["id"]))
        color = cls["color"]
        if (not isinstance(color, (list, tuple)) or len(color) != 3
                or not all(_is_integer(c) and 0 <= c <= 255 for c in color)):
            raise ManifestError("{}: class {} color must be 3 integers 0..255, got {!r}".format(
                where, cls["id"], color))


def _is_number(value):
    """A finite real number (numpy scalars too: manifests are validated before being dumped)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and value == value and abs(value) != float("inf"))


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_shape(shape, what, where, rank=None):
    if (not isinstance(shape, (list, tuple)) or not shape
            or (rank is not None and len(shape) != rank)
            or not all(_is_integer(d) and 0 < d <= MAX_DIM for d in shape)):
        raise ManifestError("{}: {} shape must be {}positive integers, got {!r}".format(
            where, what, "{} ".format(rank) if rank else "", shape))


def _check_tensor(spec, what, where):
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ManifestError("{}: {} name must be a non-empty string".format(where, what))
    if spec.get("dtype") not in DTYPES:
        raise ManifestError("{}: {} dtype {!r} not one of {}".format(
            where, what, spec.get("dtype"), ", ".join(DTYPES)))


def _validate_types(data, where):
    """Types and ranges of what the runtime computes with: a hostile or damaged manifest is
    one ManifestError, never a TypeError deep inside preprocessing or drawing."""
    for key in ("arch", "precision"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ManifestError("{}: '{}' must be a non-empty string".format(where, key))
    if data["precision"] not in PRECISIONS:
        raise ManifestError("{}: precision {!r} not one of {}".format(
            where, data["precision"], ", ".join(PRECISIONS)))
    if not _is_integer(data["ignore_id"]) or not 0 <= data["ignore_id"] <= 255:
        raise ManifestError("{}: 'ignore_id' must be an integer 0..255, got {!r}".format(
            where, data["ignore_id"]))
    for key in ("outlier", "quantization", "tensorrt"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ManifestError("{}: '{}' must be an object".format(where, key))
    threshold = (data.get("outlier") or {}).get("default_threshold")
    if threshold is not None and not (_is_number(threshold) and 0.0 <= threshold <= 1.0):
        raise ManifestError("{}: outlier.default_threshold must be a number between 0 and 1, "
                            "got {!r}".format(where, threshold))
    artifact = data.get("artifact")
    if isinstance(artifact, dict) and not isinstance(artifact.get("format", ""), str):
        raise ManifestError("{}: artifact format must be a string".format(where))
    inp = data["input"]
    _check_tensor(inp, "input", where)
    _check_shape(inp["shape"], "input", where, rank=4)
    for out in data.get("outputs", ()):
        _check_tensor(out, "output", where)
        _check_shape(out["shape"], "output {}".format(out["name"]), where)
        if out["shape"][0] != inp["shape"][0]:  # a batch of N frames gives N of each output
            raise ManifestError("{}: output {} has batch {} but the input has batch {}".format(
                where, out["name"], out["shape"][0], inp["shape"][0]))


def _validate_input_values(inp, where):
    """The frame input's resize mode and normalization: numbers the preprocessing uses."""
    if inp.get("resize") is not None and inp["resize"] not in RESIZE_MODES:
        raise ManifestError("{}: input resize {!r} not one of {}".format(
            where, inp["resize"], ", ".join(RESIZE_MODES)))
    norm = inp["normalization"]
    if not isinstance(norm["in_graph"], bool):
        raise ManifestError("{}: normalization 'in_graph' must be true or false".format(where))
    if not _is_number(norm["scale"]) or norm["scale"] <= 0:
        raise ManifestError("{}: normalization scale must be a positive number".format(where))
    for key in ("mean", "std"):
        values = norm[key]
        if (not isinstance(values, (list, tuple)) or len(values) != 3
                or not all(_is_number(v) for v in values)):
            raise ManifestError("{}: normalization {} must be 3 finite numbers, got {!r}".format(
                where, key, values))
    if not all(v > 0 for v in norm["std"]):
        raise ManifestError("{}: normalization std must be positive".format(where))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_bundle(data, where):
    """The bundle manifest ``forecast.json``: stages, offsets, rates and the shared shapes."""
    for key in _BUNDLE_REQUIRED:
        if key not in data:
            raise ManifestError("{}: missing field '{}'".format(where, key))
    stages = data["stages"]
    if not isinstance(stages, dict) or set(stages) != set(FORECAST_STAGES):
        raise ManifestError("{}: 'stages' must map exactly {} to artifact paths, got {}".format(
            where, ", ".join(FORECAST_STAGES),
            sorted(stages) if isinstance(stages, dict) else repr(stages)))
    for name in FORECAST_STAGES:
        if not isinstance(stages[name], str) or not stages[name]:
            raise ManifestError("{}: stage '{}' must be a path relative to the bundle, got {!r}"
                                .format(where, name, stages[name]))
    pins = data.get("stage_sha256")  # written last by the exporter: the stages it published
    if pins is not None and (not isinstance(pins, dict) or set(pins) != set(FORECAST_STAGES) or not all(
            isinstance(v, str) and _SHA256.match(v) and v.strip("0") for v in pins.values())):
        raise ManifestError("{}: 'stage_sha256' must map exactly {} to 64 hex digits, got {!r}".format(
            where, ", ".join(FORECAST_STAGES), pins))
    offsets = data["past_offsets"]
    if (not isinstance(offsets, list) or not offsets or not all(_is_int(o) for o in offsets)
            or any(b <= a for a, b in zip(offsets, offsets[1:])) or offsets[-1] != 0):
        raise ManifestError("{}: 'past_offsets' must be ascending integer frame offsets ending "
                            "with 0 (e.g. [-9, -6, -3, 0]), got {!r}".format(where, offsets))
    if not _is_int(data["horizon"]) or data["horizon"] <= 0:
        raise ManifestError("{}: 'horizon' must be a positive number of frames, got {!r}".format(
            where, data["horizon"]))
    rate = data["frame_rate"]
    if not _is_number(rate) or not rate > 0:
        raise ManifestError("{}: 'frame_rate' must be a positive number (Hz), got {!r}".format(
            where, rate))
    shape = data["feature_shape"]
    if (not isinstance(shape, list) or len(shape) != 4
            or not all(_is_int(d) and d > 0 for d in shape)):
        raise ManifestError("{}: 'feature_shape' must be 4 positive integers (N, C, H, W), "
                            "got {!r}".format(where, shape))
    if not isinstance(data["input"], dict) or data["input"].get("kind", "frame") != "frame":
        raise ManifestError("{}: the bundle's 'input' must be the frame input of its features "
                            "stage".format(where))
    _validate_input(data["input"], where)
    _validate_classes(data["classes"], where)
    if not _is_integer(data["ignore_id"]) or not 0 <= data["ignore_id"] <= 255:
        raise ManifestError("{}: 'ignore_id' must be an integer 0..255, got {!r}".format(
            where, data["ignore_id"]))
    _check_tensor(data["input"], "input", where)
    _check_shape(data["input"]["shape"], "input", where, rank=4)


def _validate_input(inp, where):
    if not isinstance(inp, dict):
        raise ManifestError("{}: 'input' must be an object".format(where))
    kind = inp.get("kind", "frame")
    if kind not in INPUT_KINDS:
        raise ManifestError("{}: input kind {!r} not one of {}".format(where, kind, INPUT_KINDS))
    keys = ("name", "shape", "dtype", "layout")
    if kind == "frame":  # colour order and normalization describe camera frames only
        keys += ("color_order", "normalization")
    for key in keys:
        if key not in inp:
            raise ManifestError("{}: input without '{}'".format(where, key))
    if inp["layout"] not in INPUT_LAYOUTS:
        raise ManifestError("{}: input layout {!r} not one of {}".format(
            where, inp["layout"], INPUT_LAYOUTS))
    _check_shape(inp["shape"], "input", where, rank=4)
    if kind == "features":
        return
    channels = inp["shape"][3 if inp["layout"] == "NHWC" else 1]
    if channels != 3:  # e.g. 'NCHW' over an NHWC model's [1, H, W, 3]: refused here, not in the backend
        raise ManifestError("{}: input layout {} puts {} channels where the 3 colours go (shape {}): "
                            "layout and shape disagree".format(where, inp["layout"], channels, inp["shape"]))
    if inp["color_order"] not in COLOR_ORDERS:
        raise ManifestError("{}: colour order {!r} not one of {}".format(
            where, inp["color_order"], COLOR_ORDERS))
    norm = inp["normalization"]
    if not isinstance(norm, dict):
        raise ManifestError("{}: input normalization must be an object".format(where))
    for key in ("in_graph", "scale", "mean", "std"):
        if key not in norm:
            raise ManifestError("{}: input normalization without '{}'".format(where, key))
    _validate_input_values(inp, where)


class Tensor(object):
    """One tensor a manifest describes (read-only): ``name``, ``shape``, ``dtype`` and, for
    an output, its ``meaning``. Lists handed out are copies: changing them changes nothing."""

    def __init__(self, block):
        self._block = block

    name = property(lambda self: self._block["name"])
    dtype = property(lambda self: self._block["dtype"])
    shape = property(lambda self: list(self._block["shape"]))
    meaning = property(lambda self: self._block.get("meaning"))

    def to_dict(self):
        """The tensor's block as the manifest writes it (a deep copy)."""
        return copy.deepcopy(self._block)

    def __repr__(self):
        return "{}({!r})".format(type(self).__name__, self._block)


class Input(Tensor):
    """The network input: a camera frame (``kind`` ``frame``: colour order, normalization and
    resize mode say how a frame becomes the tensor) or a feature map (``kind`` ``features``)."""

    layout = property(lambda self: self._block["layout"])
    kind = property(lambda self: self._block.get("kind", "frame"))
    color_order = property(lambda self: self._block.get("color_order"))
    resize = property(lambda self: self._block.get("resize"))

    @property
    def normalization(self):
        """{in_graph, scale, mean, std} (a copy), None for a feature input."""
        return copy.deepcopy(self._block.get("normalization"))

    @property
    def size(self):
        """(height, width) of the input, whatever its layout."""
        shape = self._block["shape"]
        if self._block["layout"] == "NHWC":
            return int(shape[1]), int(shape[2])
        return int(shape[2]), int(shape[3])


class Manifest(object):
    """A validated manifest, read through typed properties (never indexed by its keys).

    Built by :meth:`load` (an artifact, its ``.json``, a bundle's ``forecast.json`` or its
    folder) or :meth:`from_dict` (what an exporter assembled), both validated as
    docs/manifest.schema.json states. Immutable: :meth:`derive` gives a new one (an FP16,
    INT8 or plan artifact of the same network); :meth:`to_dict` is what gets written, key
    order included. ``where`` names the manifest in error messages (its path when loaded).
    """

    def __init__(self, data, where, allow_legacy=False):
        """Use :meth:`load` or :meth:`from_dict` (they validate)."""
        self._data = data
        self.where = where
        self.allow_legacy = allow_legacy

    @classmethod
    def from_dict(cls, data, where="manifest"):
        """A Manifest from a dict (validated; the dict is copied, so later changes to it do
        not leak in)."""
        _validate(data, where)
        return cls(copy.deepcopy(data), where)

    @classmethod
    def load(cls, path, check_artifact=True, allow_legacy=False):
        """The manifest of ``path``: an artifact, its ``.json``, a bundle's ``forecast.json``
        or its folder. One-line ManifestError when it is missing, unreadable, of another
        schema version, invalid, changed since it was written (its ``manifest_sha256``), or
        (``check_artifact``) has no regular file beside it. ``allow_legacy``: also open a
        manifest without ``manifest_sha256`` and an artifact without a recorded sha256 (files
        exported before both were written; with a warning)."""
        return cls(_load(path, check_artifact, allow_legacy), resolve(path)[1], allow_legacy)

    def to_dict(self):
        """The manifest as a JSON-ready dict (a deep copy, keys in their written order)."""
        return copy.deepcopy(self._data)

    def derive(self, drop=(), **changes):
        """A new validated Manifest without the top-level fields ``drop`` and with ``changes``
        (replaced in place, new ones added at the end in the order given), e.g.
        ``derive(artifact={...}, precision="int8")`` for a derived artifact."""
        data = self.to_dict()
        for key in drop:
            data.pop(key, None)
        data.update(copy.deepcopy(changes))
        data.pop(DIGEST_KEY, None)  # a new manifest: sealed anew when written
        return Manifest.from_dict(data, self.where)

    def write(self, artifact_path):
        """Write this manifest as the sidecar of ``artifact_path``, atomically; returns its path."""
        return self.write_file(sidecar_path(artifact_path))

    def write_bundle(self, folder):
        """Write this bundle manifest as ``folder/forecast.json``, atomically; returns its path."""
        return self.write_file(os.path.join(str(folder), BUNDLE_NAME))

    def write_file(self, path):
        """Write this manifest to ``path`` itself (a staged ``.pending`` file), atomically: a
        crash never leaves half a manifest. Sealed with its ``manifest_sha256`` (dump_manifest).
        Returns the path."""
        return write_manifest_json(path, self._data)

    def verify_artifact(self, artifact_path):
        """Refuse ``artifact_path`` when its sha256 is not the recorded one (one line; cached
        by file version, see cached_sha256). A malformed or all-zero hash is refused too; a
        manifest without one only when it was loaded with ``allow_legacy``."""
        _verify_artifact(artifact_path, self._data, self.where, self.allow_legacy)

    def _get(self, key, default=None):
        return copy.deepcopy(self._data.get(key, default))

    # -- every manifest -------------------------------------------------------------------

    task = property(lambda self: self._data["task"])
    arch = property(lambda self: self._data["arch"])
    precision = property(lambda self: self._data["precision"])
    ignore_id = property(lambda self: self._data["ignore_id"])
    input = property(lambda self: Input(self._data["input"]))

    @property
    def batch(self):
        """Frames one inference takes: the input's first dimension (rt-export --batch N);
        every output's first dimension is the same. A bundle's is its feature shape's."""
        block = self._data.get("input") or {}
        shape = block.get("shape") or self._data.get("feature_shape") or [1]
        return int(shape[0])

    @property
    def artifact(self):
        """{file, format, sha256} (a copy; a bundle has none: {})."""
        return self._get("artifact", {})

    @property
    def artifact_format(self):
        """``onnx`` or ``tensorrt`` (None when the manifest does not say)."""
        return (self._data.get("artifact") or {}).get("format")

    @property
    def sha256(self):
        """The artifact's recorded sha256, None when not recorded."""
        return (self._data.get("artifact") or {}).get("sha256")

    @property
    def outputs(self):
        return [Tensor(out) for out in self._data.get("outputs", ())]

    def output(self, meaning):
        """The output with this meaning, or None."""
        for out in self._data.get("outputs", ()):
            if out["meaning"] == meaning:
                return Tensor(out)
        return None

    @property
    def classes(self):
        """[{id, name, color (RGB)}] in the manifest's order (a copy)."""
        return self._get("classes")

    @property
    def class_names(self):
        """The class names in the manifest's order (the order of the classes' ids in tables)."""
        return [cls["name"] for cls in self._data["classes"]]

    def palette(self, size=256):
        """A (size, 3) uint8 RGB lookup table from the classes (black elsewhere)."""
        import numpy as np  # only for drawing: reading a manifest needs no numpy
        table = np.zeros((size, 3), dtype=np.uint8)
        for cls in self._data["classes"]:
            table[int(cls["id"])] = cls["color"]
        return table

    # -- optional blocks (copies; {} or None when absent) ---------------------------------

    outlier = property(lambda self: self._get("outlier") or {},
                       doc="{default_threshold, keep_fp32, head_trained, ...}; {} when absent")
    tensorrt = property(lambda self: self._get("tensorrt"),
                        doc="a plan's {version, gpu, compute_capability, ...}; None when absent")
    tensorrt_compat = property(lambda self: self._get("tensorrt_compat") or {})
    quantization = property(lambda self: self._get("quantization") or {})
    accuracy = property(lambda self: self._get("accuracy") or {})
    source_checkpoint = property(lambda self: self._get("source_checkpoint") or {})
    source_checkpoints = property(lambda self: self._get("source_checkpoints") or {},
                                  doc="a bundle's {f2f: {path, sha256}, features: {...}}")
    opset = property(lambda self: self._data.get("opset"))
    parity = property(lambda self: self._get("parity"), doc="the export's parity gate figures, or None")
    forecaster = property(lambda self: self._get("forecaster"))

    # -- forecast bundles and their stages ------------------------------------------------

    stage = property(lambda self: self._data.get("stage"), doc="a forecast stage's name, else None")
    past_offsets = property(lambda self: [int(o) for o in self._data["past_offsets"]])
    horizon = property(lambda self: int(self._data["horizon"]))
    frame_rate = property(lambda self: self._data["frame_rate"], doc="Hz, as written (int or float)")
    feature_shape = property(lambda self: [int(d) for d in self._data["feature_shape"]])

    @property
    def stages(self):
        """{stage name: artifact path relative to the bundle's folder}."""
        return self._get("stages")

    def forecast_value(self, key):
        """``key`` as a stage manifest states it (top level or in a ``forecast`` block), or None."""
        if key in self._data:
            return copy.deepcopy(self._data[key])
        block = self._data.get("forecast")
        return copy.deepcopy(block.get(key)) if isinstance(block, dict) else None

    def __repr__(self):
        return "Manifest({!r}, task={!r}, arch={!r}, precision={!r})".format(
            self.where, self._data.get("task"), self._data.get("arch"), self._data.get("precision"))
