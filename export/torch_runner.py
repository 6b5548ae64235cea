"""The PyTorch eager peer for rt-bench (``--torch ARCH[:CHECKPOINT]``).

The number a user would get by running the model in PyTorch: FP32, eager, inference
mode, the same input and the same number of threads as the engines. rt-bench imports
this module (and with it torch) only when ``--torch`` is given.

Fair comparison: the engine's graph also casts, normalizes and transposes the frame and
takes the argmax; PyTorch here runs the *model only* (normalized float NCHW in, logits at
the input resolution out: the model's own final upsample is part of its forward). The
input is exactly what the engine's network sees after its in-graph preprocessing, so the
difference is the runtime, not the work.
"""
import numpy as np
import torch

from runtime.bench import Runner


def model_input(engine_tensor, spec, normalization):
    """The engine's input tensor -> the normalized float32 NCHW RGB tensor the model takes.
    ``spec``: the engine's input (a runtime.manifest.Input)."""
    tensor = np.asarray(engine_tensor)
    if not spec.normalization["in_graph"]:
        return np.ascontiguousarray(tensor, dtype=np.float32)  # already the model's input
    frame = tensor.astype(np.float32)  # (1, H, W, 3) in the engine's colour order
    if (spec.color_order or "BGR") == "BGR":
        frame = frame[..., ::-1]
    scale = np.float32(normalization["scale"])
    mean = np.asarray(normalization["mean"], dtype=np.float32)
    std = np.asarray(normalization["std"], dtype=np.float32)
    frame = (frame * scale - mean) / std
    return np.ascontiguousarray(frame.transpose(0, 3, 1, 2), dtype=np.float32)


def load_model(arch, checkpoint=None):
    """(model in eval mode, normalization): a checkpoint, or seeded untrained weights."""
    from export import checkpoints, models
    if checkpoint:
        model, info = checkpoints.load_checkpoint(arch, checkpoint)
        return model, info["normalization"]
    torch.manual_seed(0)
    model = models.create(arch)
    return model.eval(), model.normalization


class TorchRunner(Runner):
    """PyTorch eager FP32 forward of ``arch`` on the engine's input, in inference mode."""

    kind = "peer"
    includes = ("PyTorch eager FP32 model forward only (inference mode): normalized float "
                "NCHW in, logits at the input resolution out (the model's final upsample "
                "included); no cast/normalize/transpose, no argmax")

    def __init__(self, arch, engine_tensor, spec, checkpoint=None, threads=None):
        if threads:
            torch.set_num_threads(int(threads))
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:  # can only be set once, before any parallel work
                pass
        self.arch, self.checkpoint = arch, checkpoint
        self.model, normalization = load_model(arch, checkpoint)
        self.model = self.model.float().eval()
        self.input = torch.from_numpy(model_input(engine_tensor, spec, normalization))
        self.name = "pytorch-eager-fp32"

    def run_once(self):
        with torch.inference_mode():
            self.model(self.input)
        return None

    def describe(self):
        return {"backend": "pytorch", "version": torch.__version__, "arch": self.arch,
                "checkpoint": self.checkpoint, "threads": torch.get_num_threads(),
                "input_shape": list(self.input.shape), "precision": "fp32", "mode": "eager"}
