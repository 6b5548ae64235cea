"""Parity gate: PyTorch and ONNX Runtime must agree on the exported model.

Runs both on the same frames and compares the logits (max absolute and relative
error) and the class maps (argmax agreement). When the graph outputs a class map,
the logits feeding its ArgMax are exposed as an extra output of an in-memory copy
of the model (as Polygraphy's "mark all outputs" does), so the real artifact is
checked, not a variant of it.
"""
import numpy as np
import torch

DEFAULT_MIN_AGREEMENT = 0.999


class ParityError(Exception):
    """Exported model disagrees with PyTorch beyond the threshold."""


def _session_with_logits(onnx_path):
    """An ORT session on the model, plus the name of the tensor holding the logits."""
    import onnx
    import onnxruntime as ort
    model = onnx.load(onnx_path)
    argmax = [n for n in model.graph.node if n.op_type == "ArgMax"]
    if argmax:
        logits_name = argmax[-1].input[0]
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(logits_name))
    else:
        logits_name = model.graph.output[0].name
    options = ort.SessionOptions()
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session, logits_name


def run_parity(wrapper, onnx_path, inputs, min_agreement=DEFAULT_MIN_AGREEMENT, progress=None):
    """Compare PyTorch (``wrapper``) and ONNX Runtime on ``inputs`` (list of input arrays).

    Returns a dict of figures for the manifest; raises ParityError when the argmax
    agreement is below ``min_agreement``.
    """
    session, logits_name = _session_with_logits(onnx_path)
    input_name = session.get_inputs()[0].name
    max_abs, max_rel, agree, total = 0.0, 0.0, 0, 0
    wrapper.eval()
    for array in inputs:
        with torch.no_grad():
            kind = wrapper.output_kind
            wrapper.output_kind = "logits"
            try:
                ref_logits = wrapper(torch.from_numpy(array)).numpy()
            finally:
                wrapper.output_kind = kind
        ort_logits = session.run([logits_name], {input_name: array})[0]
        diff = np.abs(ref_logits - ort_logits)
        max_abs = max(max_abs, float(diff.max()))
        # relative to the output's range: elementwise ratios explode near zero logits
        max_rel = max(max_rel, float(diff.max() / max(np.abs(ref_logits).max(), 1e-12)))
        same = ref_logits.argmax(axis=1) == ort_logits.argmax(axis=1)
        agree += int(same.sum())
        total += same.size
        if progress is not None:
            progress()
    figures = {"images": len(inputs), "max_abs_error": max_abs, "max_rel_error": max_rel,
               "argmax_agreement": agree / float(total), "min_agreement": min_agreement,
               "compared": "pytorch-fp32 vs onnxruntime-cpu"}
    if figures["argmax_agreement"] < min_agreement:
        raise ParityError("parity gate failed: argmax agreement {:.4%} < {:.2%} "
                          "(max abs error {:.3g}) between PyTorch and ONNX Runtime"
                          .format(figures["argmax_agreement"], min_agreement, max_abs))
    return figures
