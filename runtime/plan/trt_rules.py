"""Static TensorRT compatibility check: would this TensorRT version's ONNX parser accept the graph?

Runs without TensorRT, torch or ``onnx`` (on the workstation after every export, and on the
device before TensorRT's parser), so a graph TensorRT would reject fails with one line naming
the node and the rule instead of TensorRT's raw parser error.

Each rule names its source:

* ``operators.md``: onnx-tensorrt's ``docs/operators.md`` of the release branch (copied into
  ``onnx_tensorrt/``): the opset range, which operators import, and the data types each one
  takes; "TensorRT will attempt to cast down INT64 to INT32" on 8.x.
* ``uint8``: onnx-tensorrt's sources per branch (github.com/onnx/onnx-tensorrt, release/8.x and
  release/10.x) and TensorRT's headers (third_party/tensorrt): 8.2/8.4 have no UINT8 at all (``convertDtype`` in
  onnx2trt_utils.cpp has no UINT8 case; UINT8 I/O arrived in 8.5, onnx-tensorrt Changelog);
  8.5 takes a UINT8 network input only when it is converted to FLOAT/HALF before any other
  layer (``kUINT8`` in NvInferRuntimeCommon.h) and casts to UINT8 only from FLOAT/HALF (Cast
  importer, builtin_op_importers.cpp); 8.6 rejects a UINT8 tensor that is not a network output
  ("TensorRT does not support UINT8 types for intermediate tensors!", ModelImporter.cpp;
  NVIDIA/TensorRT#2809) and conversions between kUINT8 and kINT8/kINT32/kBOOL; 10.x: "UINT8 is
  only supported as network input or output tensor types" (operators.md 10.x) and "kUINT8
  conversions are only supported for {kFLOAT, kHALF}" (``DataType::kUINT8`` in TensorRT 10.3's
  NvInferRuntimeBase.h, third_party/tensorrt/10.3): as on 8.5, a UINT8 input is cast to
  FLOAT/HALF before any other layer and a UINT8 output is cast from FLOAT/HALF.
* ``quantization``: explicit quantization as operators.md states it (QuantizeLinear /
  DequantizeLinear: INT8, zero point 0) and TensorRT's developer guide (per-channel scales only
  for weights, along the output-channel axis: 0 for Conv/Gemm/MatMul weights (K, C, ...), 1 for
  ConvTranspose weights (C, K, ...), "Q/DQ layer-placement recommendations").
* ``deformconv``: DeformConv imports from 10.1 (onnx-tensorrt 10.1 operators.md; 8.6 has the
  plugin but no importer) with equal begin/end ``pads`` ("TensorRT only support the pads
  attribute of the DeformConv operator where the same number of pixels are added to the
  beginning and the end", importerUtils.cpp 10.1-GA) through the ``ModulatedDeformConv2d``
  plugin (the plan builder loads libnvinfer_plugin: ``init_libnvinfer_plugins``).
* ``resize-8.2``: TensorRT 8.2's Resize importer takes ``scales`` only as an initializer when
  no ``sizes`` input is given ("Resize scales must be an initializer!", builtin_op_importers.cpp
  release/8.2-GA; gone in 8.4-GA).
* ``changelog``: what changed after 10.1-GA, from onnx-tensorrt's docs/Changelog.md
  (``onnx_tensorrt/changelog-10.2-10.3.md``): 10.3 "Added support for tensor ``axes`` inputs
  for ``Slice`` nodes".
"""
import os
import re

from runtime.errors import UserError
from runtime.plan import onnx_graph as og

# Version families, oldest first, with the operators.md each is checked against, its opset
# range (operators.md headers: "up to Opset 13/17", 10.x "opset 9 to opset 20") and the full
# version JetPack ships (used when a user gives only major.minor: calibration cache headers
# carry the patch level).
# 10.3 (JetPack 6.1/6.2) is 10.1-GA's matrix plus the changes of onnx-tensorrt's Changelog
# (source 'changelog'); 10.1 stands for 10.1 and 10.2.
FAMILIES = ("8.2", "8.4", "8.5", "8.6", "10.0", "10.1", "10.3")
TEN = ("10.0", "10.1", "10.3")
_TABLE = {"8.2": "operators-8.2-GA.md", "8.4": "operators-8.2-GA.md",
          "8.5": "operators-8.5-GA.md", "8.6": "operators-8.6-GA.md",
          "10.0": "operators-10.1-GA.md", "10.1": "operators-10.1-GA.md", "10.3": "operators-10.1-GA.md"}
OPSET_RANGE = {"8.2": (7, 13), "8.4": (7, 13), "8.5": (7, 17), "8.6": (7, 17),
               "10.0": (9, 20), "10.1": (9, 20), "10.3": (9, 20)}
JETPACK_VERSION = {"8.2": "8.2.1", "8.4": "8.4.1", "8.5": "8.5.2", "8.6": "8.6.2",
                   "10.0": "10.0.1", "10.1": "10.1.0", "10.3": "10.3.0"}
TABLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx_tensorrt")

# operators.md type names -> ONNX element types
_TYPE_WORDS = {"FP32": og.FLOAT, "FLOAT32": og.FLOAT, "FP16": og.FLOAT16, "BF16": og.BFLOAT16,
               "INT32": og.INT32, "INT64": og.INT64, "INF64": og.INT64, "INT8": og.INT8,
               "UINT8": og.UINT8, "BOOL": og.BOOL, "DOUBLE": og.DOUBLE}
_FLOATS = (og.FLOAT, og.FLOAT16)
_HAS_UINT8 = ("8.5", "8.6") + TEN
# UINT8 converts only to/from FLOAT/HALF (8.5: Cast importer; 10.x: NvInferRuntimeBase.h 10.3).
_UINT8_ONLY_VIA_FLOAT = ("8.5",) + TEN
_NOT_TO_FROM_UINT8_86 = (og.INT8, og.INT32, og.INT64, og.BOOL)
# Inputs that must be constants (operators.md restrictions: "`axes` must be an initializer",
# "Weights `W` must be an initializer"; a DequantizeLinear of constant weights also counts).
_CONSTANT_INPUTS = {"Slice": (3,), "Squeeze": (1,), "Unsqueeze": (1,), "ReduceSum": (1,),
                    "Conv": (1,), "ConvTranspose": (1,)}
# ... except from the family named (source 'changelog': 10.3 "tensor axes inputs for Slice").
_TENSOR_INPUT_SINCE = {("Slice", 3): "10.3"}
_RESIZE_COORDINATES = ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                       "align_corners")
_RESIZE_MODES = ("nearest", "linear")


class Violation(object):
    """One reason the parser of ``family`` would reject the graph."""

    __slots__ = ("node", "rule", "source")

    def __init__(self, node, rule, source):
        self.node, self.rule, self.source = node, rule, source

    def __str__(self):
        return "{}: {} [{}]".format(self.node, self.rule, self.source)


# -- versions ---------------------------------------------------------------------------

def family(version):
    """'8.5.2' -> '8.5'; '10.3' / '10.x' / '10' -> '10.3' (10.3 or newer); '10.1'/'10.2' -> '10.1';
    '10.0.1' -> '10.0'.

    A UserError for versions the product does not target (before 8.2, 9.x, 11 and later).
    """
    text = str(version).strip().lower()
    match = re.match(r"^(\d+)(?:\.(\d+|x))?(?:\.\d+)*(?:\.x)?$", text)
    if not match:
        raise UserError("TensorRT version {!r}: expected e.g. 8.2.1, 8.5.2, 8.6.2 or 10.3.0"
                        .format(version))
    major = int(match.group(1))
    minor = match.group(2)
    if major == 10:
        if minor in ("0", "1", "2"):
            return {"0": "10.0", "1": "10.1", "2": "10.1"}[minor]
        return "10.3"
    if major == 8 and minor not in (None, "x"):
        minor = int(minor)
        if minor in (2, 3):
            return "8.2"
        if minor in (4, 5, 6):
            return "8.{}".format(minor)
    raise UserError("TensorRT {}: this tool targets 8.2 (JetPack 4.6.1+), 8.4/8.5 (JetPack 5), 8.6 "
                    "(JetPack 6.0) and 10.x (JetPack 6.1+); TensorRT 11 dropped the FP16/INT8 "
                    "builder flags".format(version))


def full_version(version):
    """The full version for calibration-cache headers: '8.5' -> '8.5.2'; '10.x' -> '10.3.0'."""
    text = str(version).strip().lower()
    if re.match(r"^\d+\.\d+\.\d+", text):
        return text
    return JETPACK_VERSION[family(version)]


# -- operators.md tables ----------------------------------------------------------------

_TABLE_CACHE = {}


def operator_table(fam):
    """{op: (supported, set of element types)} parsed from the family's operators.md."""
    name = _TABLE[fam]
    if name not in _TABLE_CACHE:
        table = {}
        with open(os.path.join(TABLES_DIR, name)) as handle:
            for line in handle:
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if len(cells) < 2 or cells[1] not in ("Y", "N") or not re.match(r"^\w+$", cells[0]):
                    continue
                words = re.findall(r"[A-Z0-9]+", cells[2]) if len(cells) > 2 else []
                types = set(_TYPE_WORDS[w] for w in words if w in _TYPE_WORDS)
                table[cells[0]] = (cells[1] == "Y", types)
        _TABLE_CACHE[name] = table
    return _TABLE_CACHE[name]


# -- the check --------------------------------------------------------------------------

def _narrowed(fam, elem_type):
    """TensorRT 8.x casts INT64 down to INT32 and DOUBLE to FLOAT (operators.md note)."""
    if fam.startswith("8.") and elem_type == og.INT64:
        return og.INT32
    if elem_type == og.DOUBLE:
        return og.FLOAT
    return elem_type


def _typed_tensors(node):
    """Which tensors operators.md's 'Supported Types' column is about (the data input, except
    for ops that make their output from attributes or shapes)."""
    if node.op_type in ("Constant", "ConstantOfShape", "RandomNormal", "RandomUniform", "Range"):
        return list(node.outputs[:1])
    return [name for name in node.inputs[:1] if name]


def _is_constant(graph, name, producers):
    if name in graph.initializers:
        return True
    node = producers.get(name)
    if node is None:
        return False
    if node.op_type == "Constant":
        return True
    if node.op_type in ("Identity", "QuantizeLinear", "DequantizeLinear"):  # (quantized) weights
        return _is_constant(graph, node.inputs[0], producers)
    return False


def check(graph, version):
    """Every Violation of ``graph`` (an onnx_graph.Graph or a path) for TensorRT ``version``."""
    if not isinstance(graph, og.Graph):
        graph = og.load(graph)
    fam = version if version in FAMILIES else family(version)
    found = []
    found.extend(_check_opset(graph, fam))
    found.extend(_check_operators(graph, fam))
    found.extend(_check_uint8(graph, fam))
    found.extend(_check_io_int64(graph, fam))
    found.extend(_check_quantization(graph, fam))
    return found


def _check_opset(graph, fam):
    low, high = OPSET_RANGE[fam]
    opset = graph.opsets.get("ai.onnx")
    others = sorted(d for d in graph.opsets if d != "ai.onnx")
    found = []
    if opset is None or not low <= opset <= high:
        found.append(Violation("the model", "opset {} is outside TensorRT {}'s range {}..{}".format(
            opset, fam, low, high), "operators.md " + fam))
    return found + [Violation("the model", "imports the non-standard operator domain '{}'".format(d),
                              "operators.md " + fam) for d in others if d not in ("", "ai.onnx")
                    and any(n.domain == d for n in graph.nodes)]


def _check_operators(graph, fam):
    table = operator_table(fam)
    producers = graph.producers()
    found = []
    for node in graph.nodes:
        if node.domain not in ("", "ai.onnx"):
            found.append(Violation(node.label(), "custom domain '{}' (TensorRT imports only standard "
                                   "ONNX operators here)".format(node.domain), "operators.md " + fam))
            continue
        supported, types = table.get(node.op_type, (False, set()))
        if node.op_type == "DeformConv" and fam not in ("10.1", "10.3"):
            found.append(Violation(node.label(), "DeformConv imports from TensorRT 10.1 (this is {})"
                                   .format(fam), "deformconv"))
            continue
        if not supported:
            found.append(Violation(node.label(), "{} is not supported by TensorRT {}'s ONNX parser"
                                   .format(node.op_type, fam), "operators.md " + fam))
            continue
        if any(a.has_graph for a in node.attrs.values()):
            found.append(Violation(node.label(), "control flow subgraphs are not covered by this "
                                   "check", "operators.md " + fam))
        for name in _typed_tensors(node):
            elem_type = _narrowed(fam, graph.types.get(name))
            if elem_type is None or not types or elem_type in types:
                continue
            if node.op_type == "Cast" and elem_type == og.UINT8 and fam in _HAS_UINT8:
                continue  # UINT8 casts: the uint8 rules below decide (sources, not the table)
            found.append(Violation(node.label(), "{} input '{}' is {}; TensorRT {} takes {} for {}".format(
                node.op_type, name, og.type_name(elem_type), fam,
                ", ".join(sorted(og.type_name(t) for t in types)), node.op_type), "operators.md " + fam))
        if node.op_type == "Cast":
            target = _narrowed(fam, node.attrs["to"].i)
            if types and target not in types and not (target == og.UINT8 and fam in _HAS_UINT8):
                found.append(Violation(node.label(), "Cast to {}: TensorRT {}'s Cast takes {}".format(
                    og.type_name(target), fam, ", ".join(sorted(og.type_name(t) for t in types))),
                    "operators.md " + fam))
        found.extend(_check_restrictions(graph, node, fam, producers))
    return found


def _check_restrictions(graph, node, fam, producers):
    found = []
    for index in _CONSTANT_INPUTS.get(node.op_type, ()):
        since = _TENSOR_INPUT_SINCE.get((node.op_type, index))
        if since and FAMILIES.index(fam) >= FAMILIES.index(since):
            continue
        if len(node.inputs) > index and node.inputs[index] and \
                not _is_constant(graph, node.inputs[index], producers):
            found.append(Violation(node.label(), "input {} ('{}') must be a constant".format(
                index, node.inputs[index]), "operators.md " + fam))
    if node.op_type == "Resize":
        coord = node.attrs.get("coordinate_transformation_mode")
        mode = node.attrs.get("mode")
        if coord is not None and coord.s not in _RESIZE_COORDINATES:
            found.append(Violation(node.label(), "Resize coordinate_transformation_mode '{}' is not "
                                   "supported".format(coord.s), "operators.md " + fam))
        if mode is not None and mode.s not in _RESIZE_MODES:
            found.append(Violation(node.label(), "Resize mode '{}' is not supported".format(mode.s),
                                   "operators.md " + fam))
        sizes = node.inputs[3] if len(node.inputs) > 3 else ""
        scales = node.inputs[2] if len(node.inputs) > 2 else ""
        if fam == "8.2" and graph.opsets.get("ai.onnx", 0) < 11 and len(node.inputs) > 1:
            scales = node.inputs[1]
        if fam == "8.2" and not sizes and scales and not _is_constant(graph, scales, producers):
            found.append(Violation(node.label(), "Resize scales '{}' must be an initializer on "
                                   "TensorRT 8.2 (or give sizes)".format(scales), "resize-8.2"))
        antialias = node.attrs.get("antialias")
        if antialias is not None and antialias.i:
            found.append(Violation(node.label(), "Resize antialias is not supported",
                                   "operators.md " + fam))
    if node.op_type == "DeformConv" and "pads" in node.attrs:
        pads = list(node.attrs["pads"].ints)
        half = len(pads) // 2
        if pads[:half] != pads[half:]:
            found.append(Violation(node.label(), "DeformConv pads {}: TensorRT takes only equal begin "
                                   "and end pads".format(pads), "deformconv"))
    if node.op_type == "MaxPool" and len(node.outputs) > 1 and node.outputs[1]:
        found.append(Violation(node.label(), "MaxPool's Indices output is not supported",
                               "operators.md " + fam))
    return found


def _check_uint8(graph, fam):
    """UINT8 only at the network's edges, per version (module docstring, source 'uint8')."""
    types = graph.types
    outputs = set(name for name, _ in graph.outputs)
    inputs = set(name for name, _ in graph.inputs)
    producers, consumers = graph.producers(), graph.consumers()
    found = []
    if fam in ("8.2", "8.4"):
        for name in sorted(inputs | outputs):
            if types.get(name) == og.UINT8:
                found.append(Violation("network {} '{}'".format("input" if name in inputs else "output",
                                                                 name),
                                       "UINT8 tensors do not exist in TensorRT {} (from 8.5)".format(fam),
                                       "uint8"))
        for node in graph.nodes:
            if node.op_type == "Cast" and node.attrs["to"].i == og.UINT8:
                found.append(Violation(node.label(), "Cast to UINT8: no UINT8 in TensorRT {}".format(fam),
                                       "uint8"))
        return found
    for node in graph.nodes:
        for name in node.outputs:
            if name and types.get(name) == og.UINT8 and name not in outputs:
                found.append(Violation(node.label(), "output '{}' is a UINT8 intermediate tensor: "
                                       "TensorRT {} takes UINT8 only as a network input or output"
                                       .format(name, fam), "uint8"))
    for name in sorted(inputs):
        if types.get(name) != og.UINT8:
            continue
        for user in consumers.get(name, []):
            if user.op_type != "Cast":
                if fam in _UINT8_ONLY_VIA_FLOAT:
                    found.append(Violation(user.label(), "uses the UINT8 input '{}' directly: TensorRT {} "
                                           "needs it cast to FLOAT/FLOAT16 first".format(name, fam), "uint8"))
                continue
            target = user.attrs["to"].i
            if fam in _UINT8_ONLY_VIA_FLOAT and target not in _FLOATS:
                found.append(Violation(user.label(), "casts the UINT8 input '{}' to {}: TensorRT {} "
                                       "converts UINT8 only to FLOAT/FLOAT16".format(
                                           name, og.type_name(target), fam), "uint8"))
            if fam == "8.6" and target in _NOT_TO_FROM_UINT8_86:
                found.append(Violation(user.label(), "casts UINT8 to {}: TensorRT 8.6 does not convert "
                                       "between UINT8 and INT8/INT32/BOOL".format(og.type_name(target)),
                                       "uint8"))
    for name in sorted(outputs):
        if types.get(name) != og.UINT8:
            continue
        node = producers.get(name)
        if node is None:
            continue
        if node.op_type != "Cast":
            if fam in ("8.5", "8.6"):
                found.append(Violation(node.label(), "makes the UINT8 output '{}': TensorRT {} makes "
                                       "UINT8 only with a Cast from FLOAT/FLOAT16".format(name, fam),
                                       "uint8"))
            continue
        source = _narrowed(fam, types.get(node.inputs[0]))
        if fam in _UINT8_ONLY_VIA_FLOAT and source not in _FLOATS:
            found.append(Violation(node.label(), "casts {} to UINT8: TensorRT {} casts to UINT8 only "
                                   "from FLOAT/FLOAT16".format(og.type_name(source), fam), "uint8"))
        if fam == "8.6" and source in _NOT_TO_FROM_UINT8_86:
            found.append(Violation(node.label(), "casts {} to UINT8: TensorRT 8.6 does not convert "
                                   "between INT8/INT32/BOOL and UINT8 (cast to FLOAT first)".format(
                                       og.type_name(source)), "uint8"))
    return found


def _check_io_int64(graph, fam):
    """8.x narrows INT64 to INT32: a network input/output declared INT64 would arrive as INT32."""
    if not fam.startswith("8."):
        return []
    return [Violation("network tensor '{}'".format(name), "is INT64, which TensorRT {} narrows to "
                      "INT32 (declare it INT32)".format(fam), "operators.md " + fam)
            for name, elem_type in graph.inputs + graph.outputs if elem_type == og.INT64]


def _check_quantization(graph, fam):
    producers = graph.producers()
    found = []
    for node in graph.nodes:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zero_name = node.inputs[2] if len(node.inputs) > 2 else ""
        if not zero_name:
            if node.op_type == "QuantizeLinear":
                found.append(Violation(node.label(), "no zero point: ONNX then quantizes to UINT8; "
                                       "TensorRT needs INT8 with zero point 0", "quantization"))
        else:
            zero = graph.constant(zero_name)
            if zero is None:
                found.append(Violation(node.label(), "zero point '{}' is not a constant".format(zero_name),
                                       "quantization"))
            else:
                if zero.elem_type != og.INT8:
                    found.append(Violation(node.label(), "zero point is {}: TensorRT quantizes to INT8 "
                                           "only".format(og.type_name(zero.elem_type)), "quantization"))
                if zero.values is not None and any(v != 0 for v in zero.values):
                    found.append(Violation(node.label(), "zero point is not 0 (TensorRT quantization is "
                                           "symmetric)", "quantization"))
        scale = graph.constant(node.inputs[1]) if len(node.inputs) > 1 else None
        if scale is None:
            found.append(Violation(node.label(), "scale '{}' is not a constant".format(
                node.inputs[1] if len(node.inputs) > 1 else ""), "quantization"))
            continue
        if scale.size > 1:
            axis = node.attrs["axis"].i if "axis" in node.attrs else 1
            if not _is_constant(graph, node.inputs[0], producers):
                found.append(Violation(node.label(), "per-channel scales on an activation: TensorRT "
                                       "takes per-channel scales only for weights", "quantization"))
            else:
                expected = _weight_axis(graph, node)
                if axis != expected:
                    found.append(Violation(node.label(), "per-channel weight scales along axis {}: TensorRT "
                                           "takes axis {} (output channels{})".format(
                                               axis, expected, " of ConvTranspose weights" if expected else ""),
                                           "quantization"))
    return found


def _weight_axis(graph, node):
    """The output-channel axis of the weights a Q/DQ node quantizes: 1 when they feed a
    ConvTranspose (weights C x K x ...), else 0 (Conv/Gemm/MatMul weights K x C x ...)."""
    consumers = graph.consumers()
    pending, seen = [node.outputs[0]], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for user in consumers.get(name, []):
            if user.op_type == "ConvTranspose" and len(user.inputs) > 1 and user.inputs[1] == name:
                return 1
            if user.op_type in ("QuantizeLinear", "DequantizeLinear", "Identity"):
                pending.append(user.outputs[0])
    return 0


def legal_families(graph):
    """The families whose parser accepts ``graph`` (a Graph or a path), oldest first."""
    if not isinstance(graph, og.Graph):
        graph = og.load(graph)
    return [fam for fam in FAMILIES if not check(graph, fam)]


def require_legal(path, version, graph=None):
    """Raise a one-line UserError naming the first violation when TensorRT ``version`` would
    reject the ONNX model at ``path``; returns the Graph otherwise."""
    graph = graph or og.load(path)
    found = check(graph, version)
    if found:
        more = " (and {} more)".format(len(found) - 1) if len(found) > 1 else ""
        raise UserError("{} is not legal for TensorRT {}: {}{}".format(path, version, found[0], more))
    return graph


def compat_block(path, target=None, graph=None):
    """The manifest's ``tensorrt_compat`` block of the ONNX model at ``path``.

    ``legal``: the families whose parser accepts it; ``target``: the version it was exported
    for (None: no version asked). A one-line UserError when ``target`` is not among them, so
    an export for a version never writes a graph that version rejects.

    For a 10.x target with TensorRT-RTX installed, RTX then parses and builds it too
    (runtime/plan/rtx.py; in addition to the rules, never instead): its verdict is the block's
    ``tensorrt_rtx``, and a graph RTX rejects is refused like one the rules reject.
    """
    graph = graph or og.load(path)
    legal = [fam for fam in FAMILIES if not check(graph, fam)]
    if target is not None and family(target) not in legal:
        require_legal(path, target, graph)
    block = {"target": None if target is None else str(target), "legal": legal,
             "checked_by": "runtime/plan/trt_rules.py (onnx-tensorrt operators.md + uint8 rules)"}
    if target is not None:
        from runtime.plan import rtx
        result = rtx.require_accepted(path, family(target))
        if result is not None:
            block["tensorrt_rtx"] = result.to_dict()
            block["checked_by"] += " + TensorRT-RTX {} ({})".format(result.version, result.summary())
    return block
