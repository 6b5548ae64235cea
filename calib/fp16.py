"""FP16 ONNX models with chosen nodes kept in FP32.

The conversion is onnxconverter-common's ``convert_float_to_float16`` when that package is
installed, else the copy of it that ships with ONNX Runtime
(``onnxruntime.transformers.float16``). The in-graph preprocessing (uint8 frame -> normalized
float) and postprocessing (the logits' Resize, ArgMax) always stay in FP32, and so do the
nodes given with ``keep_fp32``; inputs and outputs keep their types (uint8 frame in, uint8
class map out), so the runtime feeds an FP16 model exactly like the FP32 one.
"""
import os
import warnings

from runtime.errors import UserError


def _converter():
    """(convert_float_to_float16, 'package name')."""
    try:
        from onnxconverter_common import float16
        return float16.convert_float_to_float16, "onnxconverter-common"
    except ImportError:
        pass
    try:
        from onnxruntime.transformers import float16
        return float16.convert_float_to_float16, "onnxruntime.transformers.float16"
    except ImportError:
        raise UserError("FP16 conversion needs onnxconverter-common (pip install "
                        "onnxconverter-common) or an onnxruntime that ships "
                        "onnxruntime.transformers")


def convert(model, keep_fp32=()):
    """An FP16 copy of ``model`` (ModelProto); returns (model, info)."""
    from calib import qdq
    convert_fn, package = _converter()
    keep_fp32 = qdq.check_keep_fp32(model, list(keep_fp32 or ()))
    pre, post = qdq.network_bounds(model)
    # The converter cannot keep a node in FP32 whose output is a float graph output (it fails
    # removing its own Casts); with keep_io_types that output is cast back to FP32 anyway.
    import onnx
    outputs = set(o.name for o in model.graph.output
                  if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT)
    node_outputs = dict((node.name, node.output) for node in model.graph.node)
    at_output = set(n for n in pre + post + keep_fp32 if outputs.intersection(node_outputs[n]))
    pre, post, keep_fp32 = ([n for n in names if n not in at_output] for names in (pre, post, keep_fp32))
    block = pre + post + [n for n in keep_fp32 if n not in pre and n not in post]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the float32 number ... will be truncated to 1e-07"
        half = convert_fn(model, keep_io_types=True, node_block_list=block)
    qdq.strip_unused_domains(half)
    info = {"converter": package, "keep_io_types": True,
            "fp32_nodes": {"preprocessing": pre, "postprocessing": post,
                           "keep_fp32": keep_fp32},
            "fp16_at_float_outputs": sorted(at_output)}
    return half, info


def export_fp16(fp32_onnx, output, keep_fp32=(), max_drop=None, eval_data=None,
                eval_split="val", agreement_images=8, progress=True, log=None):
    """FP32 ONNX (+ manifest) -> FP16 ONNX ``output`` + manifest (with its accuracy against
    FP32). Returns its runtime.manifest.Manifest. With ``max_drop``, a larger drop is an error (choose
    ``keep_fp32`` nodes, or use FP32). The nodes the FP32 manifest asks to keep (an outlier
    head's ``outlier.keep_fp32``) stay in FP32 as well."""
    from calib import accuracy, qdq
    from runtime.artifacts import publish, staging
    log = log or (lambda message: None)
    output = str(output)
    fp32_manifest = qdq.load_fp32_source(fp32_onnx, output, "FP16")
    with staging(output, "fp16") as folder:
        prepared = qdq.load(qdq.prepare(fp32_onnx, os.path.join(folder, "prepared.onnx")))
        keep = qdq.check_keep_fp32(prepared, list(keep_fp32 or ()))
        keep += qdq.manifest_keep_fp32(fp32_manifest, prepared, keep, log)  # an outlier head
        half, info = convert(prepared, keep)
        staged = os.path.join(folder, "fp16.onnx")
        qdq._save(half, staged)
        info["opset"] = qdq.default_opset(half)
        measure = accuracy.Measure(fp32_onnx, eval_data=eval_data, split=eval_split,
                                   images=agreement_images, progress=progress)
        result = measure(staged)
        log("FP16: {}".format(accuracy.describe(result)))
        if max_drop is not None and not result["drop"] <= max_drop:  # a NaN drop fails too
            raise UserError("FP16 drop {:.3f} > --max-drop {:.3f}: keep the sensitive layers "
                            "in FP32 with --keep-fp32, or export FP32".format(
                                result["drop"], max_drop))
        manifest = qdq.derived_manifest(fp32_manifest, staged, "fp16").derive(fp16=info, accuracy=result)
        manifest = publish(staged, manifest, output)  # a failure before this leaves the previous pair untouched
        log("wrote {} and its manifest".format(output))
        return manifest
