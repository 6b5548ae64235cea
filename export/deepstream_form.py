"""The ``deepstream`` I/O form: a network that DeepStream's nvinfer can feed exactly.

nvinfer preprocesses every pixel as ``y = net-scale-factor * (x - offsets[c])``: one scale for
all channels, one offset per channel. Our networks want ``(x * scale - mean[c]) / std[c]``, a
per-channel scale. With ``net-scale-factor = scale`` and ``offsets[c] = mean[c] / scale``,
nvinfer gives ``y = x * scale - mean[c] = std[c] * wanted``; so the 1 / std[c] goes into the
first convolution's weights (W[:, c] / std[c]: exact, its zero padding included) and the
network takes nvinfer's ``y`` directly. The input is float NCHW RGB (model-color-format=0);
the output ``probabilities`` is the softmax of the logits, NCHW: nvinfer's segmentation parser
picks, per pixel, the class whose score is above -1, above ``segmentation-threshold`` and
highest, so it needs scores in [0, 1] (raw logits below -1 would leave pixels unclassified).
The manifest gives it the meaning ``logits`` (per-class scores: the runtime argmaxes them, and
softmax keeps the argmax). Segmentation networks only (nvinfer's parser reads one output).

The manifest says it plainly: normalization {in_graph: false, scale, mean, std: [1, 1, 1]}:
what the runtime's Preprocessor computes for it is nvinfer's ``y``, so the same engine runs in
rt-segment, and runtime/deepstream.py derives nvinfer's two numbers from it.
"""
import copy

import torch
from torch import nn

from runtime.errors import UserError

FOLD_TOLERANCE = 1e-4  # relative: float reassociation only


def first_convolution(model, size=(64, 64)):
    """The Conv2d that sees the network input first, and whether it takes the input tensor itself."""
    calls = []
    hooks = [m.register_forward_hook(lambda module, inputs, output: calls.append((module, inputs[0])))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    x = torch.zeros(1, 3, size[0], size[1])
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    if not calls:
        raise UserError("the network has no convolution to fold the normalization into")
    conv, seen = calls[0]
    return conv, seen is x


OUTPUT_NAME = "probabilities"


class Softmaxed(nn.Module):
    """The network with a softmax over its class scores (what nvinfer's parser expects)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, x):
        return torch.softmax(self.model(x), dim=1)


def deepstream_model(model, normalization, size=(64, 128)):
    """(a copy of ``model`` with 1/std folded into its first convolution and a softmax after
    it, the normalization the manifest records for it). Checked: the folded network on
    nvinfer's ``y`` gives what the original gives on the normalized input (refused otherwise)."""
    if getattr(model, "outlier_head", False):
        raise UserError("--input deepstream: nvinfer's segmentation parser reads one output; "
                        "outlier networks (two outputs) have no deepstream form")
    std = [float(s) for s in normalization["std"]]
    folded = copy.deepcopy(model).eval()
    conv, direct = first_convolution(folded, size)
    if not direct or conv.in_channels != 3 or conv.groups != 1:
        raise UserError("--input deepstream: the network's first operation is not a plain "
                        "convolution of the 3-channel input; 1/std cannot be folded into it")
    with torch.no_grad():
        conv.weight.div_(torch.tensor(std, dtype=conv.weight.dtype).view(1, 3, 1, 1))
    _check_fold(model.eval(), folded, normalization, size)
    recorded = dict(normalization, std=[1.0, 1.0, 1.0])
    return Softmaxed(folded).eval(), recorded


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _check_fold(original, folded, normalization, size):
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (1, 3, size[0], size[1]), generator=generator).float()
    scale = float(normalization["scale"])
    mean = torch.tensor(normalization["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(normalization["std"], dtype=torch.float32).view(1, 3, 1, 1)
    with torch.no_grad():
        want = _outputs(original((x * scale - mean) / std))
        got = _outputs(folded(x * scale - mean))
    for a, b in zip(want, got):
        error = float((a - b).abs().max()) / max(float(a.abs().max()), 1e-6)
        if error > FOLD_TOLERANCE:
            raise UserError("--input deepstream: folding 1/std into the first convolution changes "
                            "the network's output (relative error {:.2e}); this network cannot "
                            "take that form".format(error))
