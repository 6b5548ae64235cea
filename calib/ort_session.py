"""ONNX Runtime on the CPU for the export side's tensor work: one place that opens sessions.

Why here and not in runtime/: the device runs every engine in libswiftrt; only calibration
needs tensors a whole engine does not give (logits of a probe graph, a candidate without its
manifest file yet, FP32 and INT8 timed side by side). Frames are fitted by the core's own
preprocessing (runtime.core_preprocess), so a candidate sees the pixels an engine feeds it.
"""
import numpy as np

from runtime.errors import UserError, first_line


def cpu_session(model, threads=None, spinning=True):
    """An InferenceSession on the CPU provider for ``model`` (a path or an onnx ModelProto).

    ``threads``: intra-op threads (None: ONNX Runtime's default); ``spinning=False``: worker
    threads sleep between runs (for machines where other processes compete for the cores)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("ONNX Runtime is not installed: pip install onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, str) else model.SerializeToString()
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise UserError("cannot load ONNX model {}: {}".format(
            model if isinstance(model, str) else "(in memory)", first_line(exc)))


class CpuSegmenter(object):
    """A segmentation ONNX with its Manifest on ONNX Runtime's CPU provider: BGR frame -> class map.

    ``manifest``: a staged candidate's Manifest (it has no manifest file yet; its hash was just
    computed from this file, so it is not verified again); None: the manifest beside ``path``,
    whose sha256 the file must match.
    """

    def __init__(self, path, manifest=None):
        from runtime.core_preprocess import Preprocessor
        from runtime.manifest import Manifest
        self.path = str(path)
        if manifest is None:
            manifest = Manifest.load(self.path)
            manifest.verify_artifact(self.path)
        self.manifest = manifest
        self.classes = manifest.classes
        self.preprocessor = Preprocessor(manifest.input)
        self.size = self.preprocessor.size
        self.session = cpu_session(self.path)
        self.input_name = manifest.input.name
        out = manifest.output("class_map") or manifest.output("logits")
        if out is None:
            raise UserError("{}: no output with meaning 'class_map' or 'logits'".format(self.path))
        self.output_name, self.logits = out.name, out.meaning == "logits"

    def class_map(self, frame):
        """(H, W) uint8 class map of a BGR frame at the network's resolution."""
        tensor = self.preprocessor(frame)[0]
        out = self.session.run([self.output_name], {self.input_name: tensor})[0][0]
        return (np.argmax(out, axis=0) if self.logits else out).astype(np.uint8, copy=False)

    def close(self):
        self.session = None
