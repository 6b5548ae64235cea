"""TensorRT's calibration files from a calibration: the native cache and an amax table.

* ``X.calib``: TensorRT's own calibration cache (``TRT-<ver>-EntropyCalibration2``, then
  ``<tensor>: <big-endian float32 hex of amax/127>``), for the TensorRT version named, fed
  to the builder through an IInt8EntropyCalibrator2 that only replays it. Written by
  export.trt_build.write_calibration_cache (one copy of the format), which also writes the
  sidecar ``X.calib.json`` naming the ONNX (sha256), TensorRT version and method; read back
  with :func:`read_cache`, which refuses a cache made for another model or TensorRT.
* ``X.amax.json``: ``{tensor: amax}`` for ``tensor.dynamic_range = (-amax, amax)`` (works on
  TensorRT 8.x and 10.x, no header to match). The one key ``"__calibration__"`` holds the
  ONNX sha256, method and image count (TensorRT tensors are never called that, so the file
  is also a plain table for readers that only look tensors up); :func:`read_amax_json`
  refuses a table made for another model.

amax = max(|lowest|, |highest|) of ONNX Runtime's ranges (its own write_calibration_table
writes max(lowest, highest), which understates the range of tensors with a larger negative
side, and is meant for ONNX Runtime's TensorRT execution provider, not TensorRT's builder).
"""
import json
import os

from runtime.errors import UserError
from runtime.jsonfile import write_atomic

META_KEY = "__calibration__"
AMAX_FORMAT = "swiftrt-amax"


def _trt_build():
    from export import trt_build
    return trt_build


def tensor_names(onnx_path):
    """The tensors of an ONNX model that get an INT8 range: inputs and outputs of the network's
    nodes, not those only the in-graph pre- or postprocessing touches (the uint8 frame's
    cast/normalization and the logits' resize/argmax stay in FP16/FP32, as in the QDQ model).
    """
    import onnx
    from calib.qdq import bounds_indices
    model = onnx.load(str(onnx_path), load_external_data=False)
    nodes = list(model.graph.node)
    pre, post = bounds_indices(model)
    network = [node for i, node in enumerate(nodes) if i not in pre and i not in post]
    read_by_network = set(name for node in network for name in node.input)
    read_by_post = set(name for i in post for name in nodes[i].input)
    names = []
    for node in network:
        for name in list(node.input) + list(node.output):
            if name and name not in names and (name in read_by_network or
                                               name not in read_by_post):
                names.append(name)
    return names


def cache_header(version):
    """'TRT-8502-EntropyCalibration2' for TensorRT 8.5.2 (100300 style for 10.x)."""
    return _trt_build().calibration_cache_header(version)


def write_cache(path, amax, version, onnx_sha256, method):
    """TensorRT's native calibration cache (+ its ``.json`` sidecar), written atomically."""
    if not amax:
        raise UserError("no tensor ranges to write into {}".format(path))
    return _trt_build().write_calibration_cache(str(path), amax, version, onnx_sha256,
                                                method=method)


def read_cache(path, onnx_path=None, version=None, onnx_sha256=None):
    """(header, {tensor: amax}) of a cache, refused (UserError) when it was made for another
    ONNX model (sha256 of ``onnx_path`` or ``onnx_sha256``) or TensorRT ``version``."""
    from runtime import manifest as manifest_mod
    trt_build = _trt_build()
    if onnx_path is not None and onnx_sha256 is None:
        onnx_sha256 = manifest_mod.sha256_file(str(onnx_path))
    data = trt_build.read_calibration_cache(str(path), expected_sha256=onnx_sha256,
                                            expected_version=version)
    return trt_build.parse_calibration_cache(data)


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
