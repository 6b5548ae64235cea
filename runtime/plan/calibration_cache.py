"""TensorRT's INT8 calibration files: the native cache and an amax table, each tagged with its model.

Written on the workstation by calib/ (from ONNX Runtime's ranges), read on the device by the
plan builder; no torch, no onnx.

* ``X.calib``: TensorRT's own calibration cache: a header ``TRT-<version>-EntropyCalibration2``
  and one ``<tensor>: <hex of the big-endian float32 amax/127>`` line per tensor (deployment
  reference, "Native TensorRT calibration cache"), fed to the builder through an
  IInt8EntropyCalibrator2 that only replays it. TensorRT silently re-calibrates on a header
  of another version, so the sidecar ``X.calib.json`` names the ONNX model (sha256), the
  TensorRT version and the method, and the reader refuses a cache made for another one.
* ``X.amax.json``: ``{tensor: amax}`` for ``tensor.dynamic_range = (-amax, amax)`` (works on
  TensorRT 8.x and 10.x, no header to match). The one key ``"__calibration__"`` holds the
  ONNX sha256, method and image count (TensorRT tensors are never called that).
"""
import json
import os
import struct

from runtime.plan import trt_version
from runtime.errors import UserError
from runtime.jsonfile import write_atomic, write_bytes_atomic

CALIBRATOR_NAME = "EntropyCalibration2"
META_KEY = "__calibration__"
AMAX_FORMAT = "swiftrt-amax"


# -- TensorRT calibration caches --------------------------------------------------------

def calibration_cache_header(version):
    """'TRT-8502-EntropyCalibration2' for 8.5.2; 10.x: major*10000+minor*100+patch."""
    major, minor, patch = trt_version.parse_version(version)
    if major >= 10:
        number = major * 10000 + minor * 100 + patch
    else:
        number = major * 1000 + minor * 100 + patch
    return "TRT-{}-{}".format(number, CALIBRATOR_NAME)


def amax_to_hex(amax):
    """Cache value of a tensor: big-endian float32 of the scale amax/127, as 8 hex digits."""
    return struct.pack(">f", float(amax) / 127.0).hex()


def hex_to_amax(text):
    return struct.unpack(">f", bytes.fromhex(text.strip()))[0] * 127.0


def write_calibration_cache(path, amax, version, onnx_sha256, method="minmax"):
    """Write a TensorRT calibration cache for ``amax`` {tensor: amax} and its sidecar.

    The cache holds only what TensorRT parses (header + one ``name: hex`` line per tensor);
    ``<path>.json`` records the model (onnx_sha256), TensorRT version and range method.
    """
    if not amax:
        raise UserError("no tensor ranges to write into {}".format(path))
    lines = [calibration_cache_header(version)]
    for name in sorted(amax):
        lines.append("{}: {}".format(name, amax_to_hex(abs(float(amax[name])))))
    write_bytes_atomic(str(path), ("\n".join(lines) + "\n").encode("ascii"))
    side = {"onnx_sha256": onnx_sha256, "tensorrt_version": trt_version.version_string(version),
            "method": method}
    write_bytes_atomic(str(path) + ".json", (json.dumps(side, indent=2) + "\n").encode("ascii"))
    return str(path)


def parse_calibration_cache(data):
    """(header, {tensor: amax}) from the bytes or text of a calibration cache."""
    text = data.decode("ascii") if isinstance(data, bytes) else data
    rows = [line for line in text.splitlines() if line.strip()]
    if not rows:
        raise UserError("empty calibration cache")
    table = {}
    for row in rows[1:]:
        name, _, value = row.rpartition(":")
        table[name.strip()] = hex_to_amax(value)
    return rows[0].strip(), table


def read_calibration_cache(path, expected_sha256=None, expected_version=None):
    """The bytes of a calibration cache, refused when made for another model or TensorRT."""
    path = str(path)
    if not os.path.isfile(path):
        raise UserError("calibration cache not found: {}".format(path))
    with open(path, "rb") as handle:
        data = handle.read()
    side_path = path + ".json"
    if not os.path.exists(side_path):
        raise UserError("{} has no sidecar {}: cannot tell which model it was made for "
                        "(regenerate it with the calib tools)".format(path, side_path))
    with open(side_path) as handle:
        side = json.load(handle)
    if expected_sha256 and side.get("onnx_sha256") != expected_sha256:
        raise UserError("{} was made for another model (sha256 {}…, this ONNX is {}…): "
                        "recalibrate".format(path, str(side.get("onnx_sha256"))[:12],
                                             expected_sha256[:12]))
    header, _ = parse_calibration_cache(data)
    if expected_version:
        wanted = calibration_cache_header(expected_version)
        if header != wanted:
            raise UserError("{} is for {} ({}), this is TensorRT {} (expects {}): TensorRT would "
                            "ignore it; rewrite it for this version".format(
                                path, side.get("tensorrt_version", "another TensorRT"), header,
                                trt_version.version_string(expected_version), wanted))
    return data


def read_cache(path, onnx_path=None, version=None, onnx_sha256=None):
    """(header, {tensor: amax}) of a cache, refused (UserError) when it was made for another
    ONNX model (sha256 of ``onnx_path`` or ``onnx_sha256``) or TensorRT ``version``."""
    from runtime import manifest as manifest_mod
    if onnx_path is not None and onnx_sha256 is None:
        onnx_sha256 = manifest_mod.sha256_file(str(onnx_path))
    data = read_calibration_cache(str(path), expected_sha256=onnx_sha256, expected_version=version)
    return parse_calibration_cache(data)


def write_amax_json(path, amax, onnx_sha256, method, calibration=None):
    """The amax table with its tag, written to a temporary file and renamed."""
    if not amax:
        raise UserError("no tensor ranges to write into {}".format(path))
    table = {META_KEY: {"format": AMAX_FORMAT, "onnx_sha256": onnx_sha256, "method": method,
                        "images": (calibration or {}).get("images"),
                        "source_sha256": (calibration or {}).get("source_sha256")}}
    for name in sorted(amax):
        table[name] = float(abs(amax[name]))
    return write_atomic(path, table, indent=1)


def read_amax_json(path, onnx_path=None, onnx_sha256=None):
    """{tensor: amax} of a table, refused when its tag names another ONNX model."""
    from runtime import manifest as manifest_mod
    path = str(path)
    if not os.path.exists(path):
        raise UserError("amax table not found: {}".format(path))
    try:
        with open(path) as handle:
            table = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        raise UserError("cannot read amax table {}: {}".format(path, exc))
    if not isinstance(table, dict):
        raise UserError("{} is not an amax table (expected a JSON object)".format(path))
    meta = table.pop(META_KEY, None)
    if onnx_path is not None and onnx_sha256 is None:
        onnx_sha256 = manifest_mod.sha256_file(str(onnx_path))
    if onnx_sha256 is not None:
        if not isinstance(meta, dict) or not meta.get("onnx_sha256"):
            raise UserError("{} has no '{}' tag: cannot tell which model it was made for "
                            "(regenerate it with rt-export --precision int8 --flavor trt)"
                            .format(path, META_KEY))
        if meta["onnx_sha256"] != onnx_sha256:
            raise UserError("{} was made for another model (sha256 {}…, this ONNX is {}…): "
                            "recalibrate".format(path, meta["onnx_sha256"][:12],
                                                 onnx_sha256[:12]))
    try:
        return dict((str(k), float(v)) for k, v in table.items())
    except (TypeError, ValueError):
        raise UserError("{}: every entry but '{}' must be a number".format(path, META_KEY))
