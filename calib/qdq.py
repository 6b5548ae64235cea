"""INT8 QDQ models from one calibration: a TensorRT-style model and a CPU-fast model.

Both are written by ONNX Runtime's ``quantize_static`` from the same ranges (calib.ranges),
on the same prepared FP32 model:

* ``trt``: explicit quantization as TensorRT parses it: symmetric INT8 activations and
  weights (zero points 0), per-channel weight scales on Conv axis 0, float bias, dedicated
  Q/DQ pairs on float weights, Q/DQ only on the inputs of quantized layers (TensorRT fuses
  them into the layers), no QOperator / DynamicQuantizeLinear ops, and the opset of the
  FP32 model (13 for TensorRT 8.2, 17 for 8.5/8.6). OpenVINO reads this form too and runs it in
  its INT8 kernels (runtime's ``--backend openvino``).
* ``cpu``: U8 activations and S8 weights (what ONNX Runtime accelerates on x86: S8S8 runs
  no faster than FP32 there), per-channel weights, and the exact graph rewrites of
  calib.cpu_graph (BN -> depthwise Conv, space-to-depth stem, NHWC output Resize; after
  quantization: zero-padded output channels of a Conv like the 19-class logits).

Only the network is quantized: the in-graph preprocessing of the uint8 frame (Cast,
Transpose, Gather, Mul, Add) and the postprocessing (the logits' Resize, ArgMax, Cast) stay
in FP32; see :func:`network_bounds`.

Programmatic use (what rt-export --precision int8 does)::

    from calib.int8 import Int8Options, export_int8
    manifest = export_int8("engines/x_fp32.onnx", "engines/x_int8.onnx", "data/cs",
                           Int8Options(count=500, method="percentile", flavor="cpu"))
"""
import collections
import copy
import datetime
import inspect
import logging
import os
import shutil
import sys
import tempfile

import numpy as np

from runtime.errors import UserError, first_line

FLAVORS = ("cpu", "trt")
ANCHOR_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
ACTIVATION_OPS = ("Relu", "Clip")
# Operators quantized per flavor (Resize in linear mode has no INT8 kernel in ONNX Runtime:
# it stays FP32 between a DQ and a Q either way, so it is left out).
CPU_OP_TYPES = ("Conv", "Add", "MaxPool", "AveragePool", "Concat", "Relu")
TRT_OP_TYPES = ("Conv", "Add", "MaxPool", "AveragePool")
_DEFAULT_DOMAINS = ("", "ai.onnx")


def _log_default(message):
    sys.stderr.write("{}\n".format(message))


# -- graph helpers ----------------------------------------------------------------------

def _onnx():
    import onnx
    return onnx


def load(path):
    onnx = _onnx()
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise UserError("cannot load ONNX model {}: {}".format(path, first_line(exc)))


def default_opset(model):
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            return int(entry.version)
    raise UserError("model has no default-domain opset")


def strip_unused_domains(model):
    """Drop opset imports of domains no node uses (quant_pre_process adds a dozen)."""
    used = set(node.domain for node in model.graph.node)
    keep = [entry for entry in model.opset_import
            if entry.domain in _DEFAULT_DOMAINS or entry.domain in used]
    removed = [entry.domain for entry in model.opset_import if entry not in keep]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return removed


def _name_nodes(model):
    """Give every node a unique, non-empty name (nodes_to_exclude works by name)."""
    seen = set()
    for index, node in enumerate(model.graph.node):
        name = node.name or "{}_{}".format(node.op_type, index)
        while name in seen:
            name = "{}_{}".format(name, index)
        node.name = name
        seen.add(name)


def _unshare_initializers(model):
    """Give each use of a float initializer shared by several nodes its own copy.

    The exporter de-duplicates equal constants (e.g. zero biases of a Conv and of a
    BatchNormalization); the quantizer renames tensors graph-wide, so a shared bias would
    be rewritten for every user. Returns how many copies were made.
    """
    onnx = _onnx()
    inits = dict((init.name, init) for init in model.graph.initializer)
    uses = collections.Counter(name for node in model.graph.node for name in node.input
                               if name in inits)
    copies = 0
    seen = collections.Counter()
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name not in inits or uses[name] < 2:
                continue
            seen[name] += 1
            if seen[name] == 1:
                continue  # the first user keeps the original
            if inits[name].data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
                continue
            new = copy.deepcopy(inits[name])
            new.name = "{}__use{}".format(name, seen[name])
            model.graph.initializer.append(new)
            node.input[i] = new.name
            copies += 1
    return copies


def network_bounds(model):
    """(pre, post): names of the nodes before the first and after the last weighted layer.

    pre: ancestors of a Conv/Gemm/MatMul that descend from none (the frame's Cast,
    Transpose, Gather, Mul, Add); post: descendants of one that feed none (the logits'
    Resize, ArgMax, Cast). Everything else is the network.
    """
    nodes = list(model.graph.node)
    pre, post = bounds_indices(model)
    return [nodes[i].name for i in sorted(pre)], [nodes[i].name for i in sorted(post)]


def bounds_indices(model):
    """(pre, post) of :func:`network_bounds` as sets of node indices."""
    nodes = list(model.graph.node)
    producer = {}
    consumers = collections.defaultdict(list)
    for index, node in enumerate(nodes):
        for out in node.output:
            producer[out] = index
        for name in node.input:
            consumers[name].append(index)
    anchors = [i for i, node in enumerate(nodes) if node.op_type in ANCHOR_OPS]
    if not anchors:
        raise UserError("the model has no Conv/Gemm/MatMul layer to quantize")
    below = set()
    stack = [c for i in anchors for out in nodes[i].output for c in consumers[out]]
    while stack:
        i = stack.pop()
        if i in below:
            continue
        below.add(i)
        stack.extend(c for out in nodes[i].output for c in consumers[out])
    above = set()
    stack = [producer[name] for i in anchors for name in nodes[i].input if name in producer]
    while stack:
        i = stack.pop()
        if i in above:
            continue
        above.add(i)
        stack.extend(producer[name] for name in nodes[i].input if name in producer)
    anchor_set = set(anchors)
    return above - below - anchor_set, below - above - anchor_set


def _save(model, path):
    """Save atomically (temporary file in the same folder, then rename)."""
    onnx = _onnx()
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder)
    handle, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=folder)
    os.close(handle)
    try:
        onnx.save(model, tmp)
        _chmod_default(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _chmod_default(path):
    """mkstemp files are 0600: give them the permissions of a normally created file."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


# -- preparing ----------------------------------------------------------------------------

def prepare(src, dst):
    """The FP32 model that is calibrated and quantized: ONNX Runtime's quant_pre_process
    (shape inference, constant folding), unused opset domains stripped, nodes named,
    shared float initializers unshared. Tensor names of the network are kept. Returns dst.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process
    onnx = _onnx()
    source = load(src)
    opset = default_opset(source)
    folder = tempfile.mkdtemp(prefix="calib-prep-")
    try:
        staged = os.path.join(folder, "pre.onnx")
        try:
            with _quiet_logging():
                quant_pre_process(str(src), staged)
        except Exception as exc:
            raise UserError("ONNX Runtime could not prepare {} for quantization: {}".format(
                src, first_line(exc)))
        model = onnx.load(staged)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    strip_unused_domains(model)
    if default_opset(model) != opset:
        raise UserError("preparing changed the opset from {} to {}".format(
            opset, default_opset(model)))
    _restore_output_casts(source, model)
    _name_nodes(model)
    _unshare_initializers(model)
    return _save(model, dst)


def _cast_chain(model, output):
    """The Cast nodes that end in graph output ``output``, first to last (may be empty)."""
    producer = dict((out, node) for node in model.graph.node for out in node.output)
    chain, name = [], output
    while name in producer and producer[name].op_type == "Cast":
        chain.insert(0, producer[name])
        name = producer[name].input[0]
    return chain


def _restore_output_casts(source, model):
    """Put back the exported Cast chains that end in graph outputs where ONNX Runtime's
    optimizer fused them (ArgMax -> Cast FLOAT -> Cast UINT8 became one INT64 -> UINT8 Cast,
    which TensorRT 8.5/8.6 reject: runtime/plan/trt_rules.py)."""
    for out in model.graph.output:
        want, got = _cast_chain(source, out.name), _cast_chain(model, out.name)
        if len(want) <= len(got) or not got or want[0].input[0] != got[0].input[0]:
            continue
        nodes = list(model.graph.node)
        first = nodes.index(got[0])
        kept = [n for n in nodes if all(n is not g for g in got)]
        position = kept.index(nodes[first - 1]) + 1 if first else 0
        restored = kept[:position] + [copy.deepcopy(n) for n in want] + kept[position:]
        del model.graph.node[:]
        model.graph.node.extend(restored)
        made = set(name for node in want for name in node.output)
        stale = [v for v in model.graph.value_info if v.name in made]
        for info in stale:  # types of the fused node's tensors, no longer true
            model.graph.value_info.remove(info)


# -- quantizing -----------------------------------------------------------------------------

def flavor_options(flavor):
    """quantize_static arguments of a flavor (see the module docstring)."""
    from onnxruntime.quantization import QuantType
    if flavor == "trt":
        return {"activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8,
                "per_channel": True, "op_types": list(TRT_OP_TYPES),
                "extra_options": {
                    "ActivationSymmetric": True, "WeightSymmetric": True,
                    "QuantizeBias": False, "AddQDQPairToWeight": True,
                    "DedicatedQDQPair": True,
                    "OpTypesToExcludeOutputQuantization": list(TRT_OP_TYPES),
                    "QDQOpTypePerChannelSupportToAxis": {"Conv": 0},
                    "ForceQuantizeNoInputCheck": True}}
    if flavor == "cpu":
        return {"activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8,
                "per_channel": True, "op_types": list(CPU_OP_TYPES),
                "extra_options": {"ActivationSymmetric": False, "WeightSymmetric": True}}
    raise UserError("unknown --flavor {!r}: use cpu (ONNX Runtime on x86/ARM CPUs) or trt "
                    "(TensorRT's explicit quantization)".format(flavor))


def flavor_model(prepared, flavor, rewrites=None):
    """The prepared ModelProto rewritten for a flavor (a copy; the CPU flavor gets the exact
    rewrites of calib.cpu_graph, counted into the dict ``rewrites`` if given)."""
    model = load(prepared) if isinstance(prepared, str) else copy.deepcopy(prepared)
    if flavor == "cpu":
        from calib.cpu_graph import rewrite_for_cpu
        counts = rewrite_for_cpu(model)
        if rewrites is not None:
            rewrites.update(counts)
    return model


def check_keep_fp32(model, names):
    """Refuse --keep-fp32 names that are not nodes of the model (one clear line)."""
    known = set(node.name for node in model.graph.node)
    unknown = [n for n in names if n not in known]
    if unknown:
        convs = [node.name for node in model.graph.node if node.op_type in ANCHOR_OPS]
        raise UserError("--keep-fp32: no node named {} (layers are named like {})".format(
            ", ".join(repr(n) for n in unknown[:3]), ", ".join(convs[:2]) or "?"))
    return list(names)


def expand_units(model, names):
    """``names`` plus the activations (Relu, Clip) that directly follow those nodes: a layer
    kept in FP32 keeps its activation (the quantizer folds an activation into the Q of the
    layer before it, which a float layer no longer has)."""
    names = list(names)
    consumers = collections.defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            consumers[name].append(node)
    by_name = dict((node.name, node) for node in model.graph.node)
    for name in list(names):
        node = by_name.get(name)
        if node is None or node.op_type in ACTIVATION_OPS:
            continue
        for out in node.output:
            for follower in consumers[out]:
                if follower.op_type in ACTIVATION_OPS and follower.name not in names:
                    names.append(follower.name)
    return names


def search_candidates(model, flavor, skip=()):
    """Nodes the keep-fp32 search may leave in FP32: every node the flavor quantizes except
    activations (they go with the layer before them) and ``skip``."""
    pre, post = network_bounds(model)
    skip = set(pre) | set(post) | set(skip)
    ops = set(flavor_options(flavor)["op_types"]) - set(ACTIVATION_OPS)
    return [node.name for node in model.graph.node if node.op_type in ops and
            node.name not in skip]


def float_inputs(model, fp32_model, names, suffix="__fp32"):
    """Make the nodes ``names`` of a QDQ ``model`` read FP32 inputs again, in place.

    A Q/DQ pair is shared by all readers of a tensor, so a node left out of quantization
    still reads the dequantized tensor when another reader is quantized; here its input is
    wired back to the float tensor the FP32 node reads (re-creating a ReLU the quantizer
    folded into a Q), and a quantized weight is replaced by the float one of ``fp32_model``.
    Unused Q/DQ nodes are removed. Returns the number of inputs rewired.
    """
    producer = dict((out, node) for node in model.graph.node for out in node.output)
    inits = set(init.name for init in model.graph.initializer)
    fp32_inits = dict((init.name, init) for init in fp32_model.graph.initializer)
    fp32_nodes = dict((node.name, node) for node in fp32_model.graph.node)
    fp32_producer = dict((out, node) for node in fp32_model.graph.node for out in node.output)
    count = 0
    added = []
    twins = {}
    for node in model.graph.node:
        if node.name not in names or node.name not in fp32_nodes:
            continue
        original_inputs = fp32_nodes[node.name].input
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or i >= len(original_inputs):
                continue
            original = original_inputs[i]
            if original in fp32_inits:
                restored = original + suffix
                if restored not in inits:
                    init = copy.deepcopy(fp32_inits[original])
                    init.name = restored
                    model.graph.initializer.append(init)
                    inits.add(restored)
                node.input[i] = restored
                count += 1
                continue
            quant = producer.get(dq.input[0])
            if quant is None or quant.op_type != "QuantizeLinear":
                continue
            fp32_made_by = fp32_producer.get(original)
            made_by = producer.get(original)
            if made_by is not None and (fp32_made_by is None or
                                        made_by.op_type == fp32_made_by.op_type):
                node.input[i] = original  # the very tensor, in float
                count += 1
            elif fp32_made_by is not None and fp32_made_by.op_type in ACTIVATION_OPS:
                # The quantizer folded this activation into the Q of the layer before it
                # (the layer's output may even carry the activation's name): run it again.
                source = original if made_by is not None else fp32_made_by.input[0]
                if source not in producer:
                    continue
                if source not in twins:
                    twin = copy.deepcopy(fp32_made_by)
                    twin.name = fp32_made_by.name + suffix
                    del twin.input[:]
                    twin.input.extend([source] + list(fp32_made_by.input[1:]))
                    del twin.output[:]
                    twin.output.append(original + suffix)
                    added.append(twin)
                    twins[source] = twin.output[0]
                node.input[i] = twins[source]
                count += 1
    if added:
        model.graph.node.extend(added)
        _topological_sort(model)
    _prune_qdq(model)
    return count


def _topological_sort(model):
    """Order the nodes so that every input is produced before it is read (ONNX's rule)."""
    available = set(i.name for i in model.graph.input) | set(
        i.name for i in model.graph.initializer) | set([""])
    pending = list(model.graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise UserError("internal error: the graph has a cycle or a missing input")
        pending = rest
    nodes = [copy.deepcopy(node) for node in ordered]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _prune_qdq(model):
    """Remove Q/DQ nodes whose outputs nobody reads (and initializers left unused)."""
    outputs = set(o.name for o in model.graph.output)
    while True:
        read = set(name for node in model.graph.node for name in node.input) | outputs
        dead = [node for node in model.graph.node
                if node.op_type in ("QuantizeLinear", "DequantizeLinear") and
                not any(out in read for out in node.output)]
        if not dead:
            break
        for node in dead:
            model.graph.node.remove(node)
    read = set(name for node in model.graph.node for name in node.input)
    unused = [init for init in model.graph.initializer if init.name not in read]
    for init in unused:
        model.graph.initializer.remove(init)


def _with_inherited_ranges(model, ranges):
    """ranges plus those of the tensors a flavor's rewrites added (calib.cpu_graph)."""
    from calib.cpu_graph import inherit_ranges
    from calib.ranges import Ranges
    added = inherit_ranges(model, ranges.tensors)
    if not added:
        return ranges
    tensors = dict(ranges.tensors)
    tensors.update(added)
    return Ranges(ranges.method, tensors, ranges.images, ranges.info)


def quantize(prepared, output, ranges, flavor="cpu", keep_fp32=(), workdir=None,
             extra_options=None):
    """Write the INT8 QDQ model of ``flavor`` to ``output`` (atomically). Returns info.

    ``prepared``: the model from :func:`prepare` (path or ModelProto); ``ranges``: calib
    Ranges of that model; ``keep_fp32``: node names left unquantized (on top of the pre-
    and postprocessing). ``extra_options`` are merged into quantize_static's.
    """
    from onnxruntime.quantization import QuantFormat, quantize_static
    options = flavor_options(flavor)
    options["extra_options"].update(extra_options or {})
    rewrites = {}
    model = flavor_model(prepared, flavor, rewrites)
    ranges = _with_inherited_ranges(model, ranges)
    opset = default_opset(model)
    keep_fp32 = check_keep_fp32(model, list(keep_fp32 or ()))
    pre, post = network_bounds(model)
    kept = expand_units(model, keep_fp32)
    exclude = pre + post + [n for n in kept if n not in pre and n not in post]
    own_dir = workdir is None
    folder = tempfile.mkdtemp(prefix="calib-q-") if own_dir else workdir
    try:
        source = os.path.join(folder, "flavor.onnx")
        _save(model, source)
        cache = os.path.join(folder, "ranges.json")
        ranges.write_ort_cache(cache)
        staged = os.path.join(folder, "qdq.onnx")
        kwargs = dict(quant_format=QuantFormat.QDQ, op_types_to_quantize=options["op_types"],
                      per_channel=options["per_channel"],
                      activation_type=options["activation_type"],
                      weight_type=options["weight_type"], nodes_to_exclude=exclude,
                      calibrate_method=ranges.to_tensors_data().calibration_method,
                      extra_options=dict(options["extra_options"]))
        with _quiet_logging():
            if "calibration_cache_path" in inspect.signature(quantize_static).parameters:
                quantize_static(source, staged, None, calibration_cache_path=cache, **kwargs)
            else:  # older ONNX Runtime: drive its QDQQuantizer with our ranges directly
                _quantize_with_ranges(source, staged, ranges, **kwargs)
        result = load(staged)
        if kept:
            float_inputs(result, model, set(kept))
        if flavor == "cpu":
            from calib.cpu_graph import pad_conv_outputs
            rewrites["pad_conv_outputs"] = pad_conv_outputs(result)
        strip_unused_domains(result)
        if default_opset(result) != opset:
            raise UserError("quantization changed the opset from {} to {}".format(
                opset, default_opset(result)))
        if flavor == "trt":
            problems = check_trt_qdq(result, opset)
            if problems:
                raise UserError("the TensorRT QDQ model breaks TensorRT's rules: {}".format(
                    problems[0]))
        _save(result, output)
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)
    counts = collections.Counter(node.op_type for node in result.graph.node)
    quantized = sorted(set(n.name for n in result.graph.node if n.op_type in options["op_types"])
                       - set(exclude))
    return {"flavor": flavor, "format": "QDQ", "opset": opset,
            "activations": "uint8" if flavor == "cpu" else "int8", "weights": "int8",
            "per_channel_weights": True, "symmetric_activations": flavor == "trt",
            "bias": "float" if flavor == "trt" else "int32",
            "op_types": list(options["op_types"]),
            "fp32_nodes": {"preprocessing": pre, "postprocessing": post,
                           "keep_fp32": keep_fp32, "with_activations": kept},
            "graph_rewrites": rewrites,
            "quantized_nodes": len(quantized),
            "quantize_linear": counts.get("QuantizeLinear", 0),
            "dequantize_linear": counts.get("DequantizeLinear", 0)}


def _quantize_with_ranges(source, output, ranges, quant_format, op_types_to_quantize,
                          per_channel, activation_type, weight_type, nodes_to_exclude,
                          calibrate_method, extra_options):
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer
    from pathlib import Path
    model = load_model_with_shape_infer(Path(source))
    quantizer = QDQQuantizer(model, per_channel, False, weight_type, activation_type,
                             ranges.to_tensors_data(), [], nodes_to_exclude,
                             op_types_to_quantize, extra_options)
    quantizer.quantize_model()
    quantizer.model.save_model_to_file(output, False)


# -- checks --------------------------------------------------------------------------------

def check_trt_qdq(model, opset=None):
    """Problems that would make TensorRT refuse or mis-read a QDQ model ([] when fine)."""
    onnx = _onnx()
    from onnx import numpy_helper
    if isinstance(model, str):
        model = load(model)
    problems = []
    inits = dict((init.name, init) for init in model.graph.initializer)
    producer = dict((out, node) for node in model.graph.node for out in node.output)
    int8 = onnx.TensorProto.INT8
    for node in model.graph.node:
        if node.op_type.startswith("QLinear") or node.op_type in (
                "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"):
            problems.append("{} is a {} node (QOperator format)".format(node.name, node.op_type))
        if node.domain not in _DEFAULT_DOMAINS:
            problems.append("{} is in domain {!r}".format(node.name, node.domain))
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            if len(node.input) < 3 or node.input[2] not in inits:
                problems.append("{} has no constant zero point".format(node.name))
                continue
            zero = inits[node.input[2]]
            if zero.data_type != int8:
                problems.append("{} zero point is {} (TensorRT takes INT8 only)".format(
                    node.name, onnx.TensorProto.DataType.Name(zero.data_type)))
            if np.any(numpy_helper.to_array(zero) != 0):
                problems.append("{} has a non-zero zero point".format(node.name))
        if node.op_type == "Conv":
            if len(node.input) > 2 and node.input[2]:
                bias = node.input[2]
                if bias not in inits or inits[bias].data_type != onnx.TensorProto.FLOAT:
                    problems.append("{} bias is not a float initializer".format(node.name))
            weight = producer.get(node.input[1])
            if weight is None or weight.op_type != "DequantizeLinear":
                continue
            scale = inits.get(weight.input[1])
            axis = [a.i for a in weight.attribute if a.name == "axis"]
            if scale is None or len(scale.dims) != 1:
                problems.append("{} weight is not quantized per channel".format(node.name))
            elif axis and axis[0] != 0:
                problems.append("{} weight is quantized on axis {}, not 0".format(
                    node.name, axis[0]))
            quant = producer.get(weight.input[0])
            if quant is None or quant.op_type != "QuantizeLinear" or \
                    quant.input[0] not in inits or \
                    inits[quant.input[0]].data_type != onnx.TensorProto.FLOAT:
                problems.append("{} weight has no Q/DQ pair on a float weight".format(node.name))
    stray = [e.domain for e in model.opset_import
             if e.domain not in _DEFAULT_DOMAINS and
             e.domain not in set(n.domain for n in model.graph.node)]
    if stray:
        problems.append("stray opset domains {}".format(", ".join(stray)))
    if opset is not None and default_opset(model) != opset:
        problems.append("opset {} instead of {}".format(default_opset(model), opset))
    return problems


# -- the whole INT8 export ----------------------------------------------------------------------

def derived_manifest(fp32_manifest, artifact_path, precision):
    """The FP32 Manifest re-targeted at a derived artifact (INT8 / FP16 of the same network).

    Its ``tensorrt_compat`` is measured again on the derived graph, and a derived artifact that
    the FP32 export's TensorRT target would reject is refused (UserError, one line)."""
    from runtime import manifest as manifest_mod
    from runtime.plan import trt_rules
    compat = fp32_manifest.tensorrt_compat
    changes = dict(
        tensorrt_compat=dict(trt_rules.compat_block(str(artifact_path), compat.get("target")),
                             io_form=compat.get("io_form")),
        artifact={"file": os.path.basename(str(artifact_path)), "format": "onnx",
                  "sha256": manifest_mod.sha256_file(str(artifact_path))},
        precision=precision)
    parity = fp32_manifest.parity
    if parity is not None:  # the PyTorch vs ONNX Runtime gate ran on the FP32 model
        changes["fp32_parity"] = parity
    changes["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return fp32_manifest.derive(drop=("parity",), **changes)


def load_fp32_source(fp32_onnx, output, what):
    """The FP32 export's Manifest, after checking the derived artifact's name and the source."""
    from runtime.manifest import Manifest
    if not str(output).endswith(".onnx"):
        raise UserError("{} output must be an .onnx file, got {}".format(what, output))
    fp32_manifest = Manifest.load(fp32_onnx)
    if fp32_manifest.precision != "fp32":
        raise UserError("{} is not an FP32 model (precision {})".format(
            fp32_onnx, fp32_manifest.precision))
    return fp32_manifest


def manifest_keep_fp32(fp32_manifest, prepared_model, already=(), log=_log_default):
    """Nodes the FP32 Manifest asks to keep in FP32 (an outlier head's ``outlier.keep_fp32``)
    that the prepared model still has (preparing may merge identical nodes away)."""
    wanted = fp32_manifest.outlier.get("keep_fp32") or []
    known = set(node.name for node in prepared_model.graph.node)
    kept = [name for name in wanted if name in known and name not in already]
    if wanted:
        log("the outlier head stays in FP32: {} of its {} nodes ({} merged away by preparing)"
            .format(len(kept), len(wanted), len([n for n in wanted if n not in known])))
    return kept


# -- misc ----------------------------------------------------------------------------------------

class _quiet_logging(object):
    """ONNX Runtime's quantization tools log warnings ('please pre-process') at WARNING."""

    def __enter__(self):
        self._level = logging.root.manager.disable
        logging.disable(logging.WARNING)
        return self

    def __exit__(self, *exc):
        logging.disable(self._level)
        return False

