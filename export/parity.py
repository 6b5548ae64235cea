"""Parity gate: PyTorch and ONNX Runtime must agree on the exported model.

Runs both on the same frames and compares the logits (max absolute and relative
error) and the class maps (argmax agreement). When the graph outputs a class map,
the logits feeding its ArgMax are exposed as an extra output of an in-memory copy
of the model (as Polygraphy's "mark all outputs" does), so the real artifact is
checked, not a variant of it.

A model with an outlier head also has its ``outlier_score`` output compared (max
absolute error, and the agreement of the outlier decision at 0.5); the gate fails
when that error exceeds ``max_outlier_error``.
"""
import torch

from runtime import compare

DEFAULT_MIN_AGREEMENT = 0.999
# Scores are probabilities in [0, 1]; FP32 PyTorch vs ONNX Runtime differ by ~1e-6.
DEFAULT_MAX_OUTLIER_ERROR = 1e-3


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


def run_parity(wrapper, onnx_path, inputs, min_agreement=DEFAULT_MIN_AGREEMENT, progress=None,
               max_outlier_error=DEFAULT_MAX_OUTLIER_ERROR):
    """Compare PyTorch (``wrapper``) and ONNX Runtime on ``inputs`` (list of input arrays).

    Returns a dict of figures for the manifest; raises ParityError when the argmax
    agreement is below ``min_agreement`` or (models with an outlier head) the outlier
    score differs by more than ``max_outlier_error``.
    """
    session, logits_name = _session_with_logits(onnx_path)
    input_name = session.get_inputs()[0].name
    extra = list(getattr(wrapper, "extra_outputs", []))
    graph_outputs = set(o.name for o in session.get_outputs())
    missing = [name for name in extra if name not in graph_outputs]
    if missing:
        raise ParityError("parity gate failed: the exported model has no output {}".format(
            ", ".join(missing)))
    max_abs, max_rel, agree = 0.0, 0.0, compare.Agreement()
    score_abs, score_agree = 0.0, compare.Agreement()
    wrapper.eval()
    for array in inputs:
        with torch.no_grad():
            kind = wrapper.output_kind
            wrapper.output_kind = "logits"
            try:
                ref = wrapper(torch.from_numpy(array))
            finally:
                wrapper.output_kind = kind
        ref_score = None
        if extra:
            ref, ref_score = ref[0], ref[1].numpy()
        ref_logits = ref.numpy()
        results = session.run([logits_name] + extra, {input_name: array})
        ort_logits = results[0]
        if ref_score is not None:
            ort_score = results[1]
            score_abs = max(score_abs, compare.max_abs_error(ref_score, ort_score))
            score_agree.add(ref_score > 0.5, ort_score > 0.5)
        _refuse_non_finite(ref_logits, "PyTorch's logits")
        _refuse_non_finite(ort_logits, "ONNX Runtime's logits")
        if ref_score is not None:
            _refuse_non_finite(ref_score, "PyTorch's outlier score")
        max_abs = max(max_abs, compare.max_abs_error(ref_logits, ort_logits))
        max_rel = max(max_rel, compare.max_rel_error(ref_logits, ort_logits))
        agree.add(ref_logits.argmax(axis=1), ort_logits.argmax(axis=1))
        if progress is not None:
            progress()
    figures = {"images": len(inputs), "max_abs_error": max_abs, "max_rel_error": max_rel,
               "argmax_agreement": agree.value, "min_agreement": min_agreement,
               "compared": "pytorch-fp32 vs onnxruntime-cpu"}
    if extra:
        figures.update({"outlier_max_abs_error": score_abs,
                        "outlier_decision_agreement": score_agree.value,
                        "max_outlier_error": max_outlier_error})
    if not figures["argmax_agreement"] >= min_agreement:  # NaN on either side fails the gate
        raise ParityError("parity gate failed: argmax agreement {:.4%} < {:.2%} "
                          "(max abs error {:.3g}) between PyTorch and ONNX Runtime"
                          .format(figures["argmax_agreement"], min_agreement, max_abs))
    if extra and not score_abs <= max_outlier_error:
        raise ParityError("parity gate failed: outlier score max abs error {:.3g} > {:.3g} "
                          "between PyTorch and ONNX Runtime".format(score_abs, max_outlier_error))
    return figures


def _refuse_non_finite(array, what):
    """NaN/Inf outputs compare as 'equal' argmaxes: a NaN checkpoint would pass at 100 %."""
    bad = compare.count_non_finite(array)
    if bad:
        raise ParityError("parity gate failed: {} has {} NaN/Inf value(s) of {} (broken weights?)".format(
            what, bad, array.size))
