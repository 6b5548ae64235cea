"""PyTorch model -> ONNX with pre- and postprocessing folded into the graph.

Defaults (and why, see docs/export.md "Why frames in, class maps out"):
- input ``frame``: the camera frame as OpenCV delivers it, uint8 NHWC BGR. The host
  only resizes; cast, colour reorder, normalization and transpose run inside the
  graph, on the accelerator, and the host-to-device copy is 4x smaller than float.
- output ``class_map``: the argmax of the full-resolution logits as uint8, so the host
  copies H*W bytes instead of 19*H*W floats and does no argmax of its own.
- how the frame enters and the class map leaves depends on the TensorRT version the graph is
  for (``IO_FORMS``, ``io_form``): every form casts the frame to float before any other node
  and produces the class map with casts TensorRT's parser accepts (runtime/plan/trt_rules.py).
- models with an outlier head (``model.outlier_head``, e.g. ``swiftnet-rn18-ood``) add a
  second output ``outlier_score``: float32 (1, H, W), 1 - P(inlier), computed in the graph.
"""
import os
import tempfile
import warnings

import torch
from torch import nn

from runtime.jsonfile import chmod_default

INPUT_FORMATS = ("frame", "tensor")


class IoForm(object):
    """How the camera frame enters and the class map leaves a graph for one TensorRT family.

    ``frame_dtype``: the frame input's type; ``class_map_dtype``: the class map output's;
    ``via_float``: the class ids go ArgMax -> Cast FLOAT -> Cast UINT8 (8.5/8.6 cast to UINT8
    only from FLOAT/HALF) instead of ArgMax -> Cast UINT8.
    """

    def __init__(self, name, frame_dtype, class_map_dtype, via_float, families, why):
        self.name, self.frame_dtype, self.class_map_dtype = name, frame_dtype, class_map_dtype
        self.via_float, self.families, self.why = via_float, families, why


# The facts behind each form are in runtime/plan/trt_rules.py (source 'uint8').
IO_FORMS = {
    "float-frame": IoForm("float-frame", "float32", "int32", False, ("8.2", "8.4"),
                          "TensorRT 8.2/8.4 have no UINT8: the frame comes in as float32 NHWC "
                          "(values 0..255, the host casts it) and the class map leaves as int32"),
    "uint8-via-float": IoForm("uint8-via-float", "uint8", "uint8", True, ("8.5", "8.6", "10.0", "10.1", "10.3"),
                              "8.5, 8.6 and 10.x take UINT8 only at the network's edges and convert "
                              "it only to/from FLOAT/HALF (10.3: NvInferRuntimeBase.h, kUINT8): "
                              "frame -> Cast FLOAT first; ArgMax -> Cast FLOAT -> Cast UINT8. The "
                              "default when no version is given"),
}
DEFAULT_IO_FORM = "uint8-via-float"
# ONNX opset per family when --opset is not given (the highest each parser reads, 17 on 10.x:
# nothing we export needs more, except the DeformConv form, opset 19).
DEFAULT_OPSETS = {"8.2": 13, "8.4": 13, "8.5": 17, "8.6": 17, "10.0": 17, "10.1": 17, "10.3": 17}


def io_form(trt_version=None):
    """The IoForm for a TensorRT version ('8.2.1', '10.x', ...); the 8.5+ form for None."""
    if trt_version is None:
        return IO_FORMS[DEFAULT_IO_FORM]
    from runtime.plan.trt_rules import family
    fam = family(trt_version)
    return next(form for form in IO_FORMS.values() if fam in form.families)


def default_opset(trt_version=None):
    from runtime.plan.trt_rules import family
    return DEFAULT_OPSETS[family(trt_version)] if trt_version else 17


def class_ids(logits, form):
    """ArgMax over the class axis, cast as ``form`` says (in the graph)."""
    ids = torch.argmax(logits, dim=1)
    if form.class_map_dtype == "int32":
        return ids.to(torch.int32)
    if form.via_float:
        ids = ids.float()
    return ids.to(torch.uint8)
OUTPUT_KINDS = ("class_map", "logits")
OUTLIER_OUTPUT = "outlier_score"
MIN_OPSET, MAX_OPSET = 13, 20


def frame_coefficients(normalization):
    """(mul, add) tensors (1, 3, 1, 1): ``(x * scale - mean) / std`` folded into x * mul + add."""
    scale = float(normalization["scale"])
    mean = torch.tensor(normalization["mean"], dtype=torch.float32)
    std = torch.tensor(normalization["std"], dtype=torch.float32)
    return (scale / std).view(1, 3, 1, 1), (-mean / std).view(1, 3, 1, 1)


def frame_to_input(frame, mul, add, bgr):
    """uint8 NHWC frame -> the model's normalized float NCHW input, in the graph.

    A function, not a module, so that the exported node names do not depend on who calls it.
    """
    x = frame.float().permute(0, 3, 1, 2)  # Cast first: TensorRT takes UINT8 only at the edge
    if bgr:
        x = x[:, [2, 1, 0]]
    return x * mul + add


class DeployWrapper(nn.Module):
    """Wraps a segmentation model with the chosen in-graph pre- and postprocessing.

    ``normalization`` = {scale, mean, std} turns RGB 0..255 into the model's input.
    """

    def __init__(self, model, normalization, input_format="frame", color_order="BGR",
                 output_kind="class_map", form=None):
        super().__init__()
        if input_format not in INPUT_FORMATS:
            raise ValueError("input_format must be one of {}".format(INPUT_FORMATS))
        if output_kind not in OUTPUT_KINDS:
            raise ValueError("output_kind must be one of {}".format(OUTPUT_KINDS))
        self.model = model
        self.input_format = input_format
        self.output_kind = output_kind
        self.form = form or IO_FORMS[DEFAULT_IO_FORM]
        mul, add = frame_coefficients(normalization)
        self.register_buffer("mul", mul, persistent=False)
        self.register_buffer("add", add, persistent=False)
        self.bgr = color_order == "BGR"
        self.outlier_head = bool(getattr(model, "outlier_head", False))

    @property
    def extra_outputs(self):
        """Names of the outputs after the class map / logits (the outlier score, if any)."""
        return [OUTLIER_OUTPUT] if self.outlier_head else []

    def forward(self, x):
        if self.input_format == "frame":
            x = frame_to_input(x, self.mul, self.add, self.bgr)
        out = self.model(x)
        score = None
        if self.outlier_head:
            from export.models.swiftnet import outlier_score
            logits, score = out[0], outlier_score(out[1])
        else:
            logits = out
        if self.output_kind != "logits":
            logits = class_ids(logits, self.form)
        return logits if score is None else (logits, score)


def export_onnx(wrapper, size, path, opset=17, input_format="frame", input_name=None,
                output_name=None, batch=1):
    """Trace ``wrapper`` at a static ``batch`` (frames per inference, default 1) and static
    ``size`` = (H, W) and write ONNX to ``path``.

    Written to a temporary file first and moved into place, so a failed export never
    leaves a half-written model. Returns (input_name, output_name, input_shape, input_dtype);
    ``output_name`` is the first output (class map / logits), followed in the graph by
    ``wrapper.extra_outputs``.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError("opset {} not supported (use {}..{})".format(opset, MIN_OPSET, MAX_OPSET))
    height, width = size
    if input_format == "frame":
        dummy = torch.randint(0, 256, (batch, height, width, 3), dtype=torch.uint8)
        form = getattr(wrapper, "form", None)
        if form is not None and form.frame_dtype == "float32":
            dummy = dummy.float()
        input_name = input_name or "frame"
    else:
        dummy = torch.randn(batch, 3, height, width)
        input_name = input_name or "image"
    output_name = output_name or wrapper.output_kind
    wrapper.eval()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(suffix=".onnx", dir=folder)
    os.close(handle)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints are intended
            torch.onnx.export(wrapper, (dummy,), tmp, dynamo=False, opset_version=opset,
                              input_names=[input_name],
                              output_names=[output_name] + list(getattr(wrapper, "extra_outputs", [])),
                              do_constant_folding=True)
        chmod_default(tmp)  # mkstemp's 0600 would stay on the artifact
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return input_name, output_name, list(dummy.shape), str(dummy.dtype).replace("torch.", "")


def written_opset(path):
    """The default-domain opset recorded in an ONNX file."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ValueError("{} has no default-domain opset".format(path))


def check_model(path, opset):
    """ONNX checker + assert the opset written is the one asked for."""
    import onnx
    onnx.checker.check_model(path)
    got = written_opset(path)
    if got != opset:
        raise RuntimeError("asked for opset {} but the exporter wrote {}".format(opset, got))
    return got
