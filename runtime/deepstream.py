"""DeepStream: the Gst-nvinfer configuration of a ``deepstream``-form engine.

nvinfer feeds a network ``y = net-scale-factor * (x - offsets[c])`` per pixel (x: 0..255 in
``model-color-format`` order, planar float). The ``deepstream`` export form
(export/deepstream_form.py) takes exactly that: its manifest records normalization
{in_graph: false, scale, mean, std: [1, 1, 1]}, so ``net-scale-factor = scale`` and
``offsets[c] = mean[c] / scale``. Any other engine is refused with the reason (a per-channel
std cannot be expressed in nvinfer's single scale factor; a uint8 frame input or a class-map
output is not what nvinfer's segmentation parser takes).

Everything comes from the manifest (runtime.manifest.Manifest): input size, colour order,
resize mode, output name and layout, class count, precision. ``write_nvinfer_config`` also
writes the labels file nvinfer reads (one class name a line, in id order).
"""
import os

from runtime import manifest as manifest_mod
from runtime.errors import ManifestError
from runtime.jsonfile import Inputs, check_output, write_text_atomic
from runtime.manifest import Manifest

NETWORK_MODES = {"fp32": 0, "int8": 1, "fp16": 2}
COLOR_FORMATS = {"RGB": 0, "BGR": 1}


def nvinfer_preprocessing(manifest):
    """(net-scale-factor, [offsets per channel], model-color-format) that feed ``manifest``'s
    input exactly; ManifestError (one line) for an engine nvinfer cannot feed."""
    inp = manifest.input
    norm = inp.normalization
    where = manifest.where
    if inp.kind != "frame" or inp.layout != "NCHW" or inp.dtype not in ("float32", "float16"):
        raise ManifestError("{}: nvinfer feeds float NCHW planes; this input is {} {} (export "
                            "with rt-export --input deepstream)".format(where, inp.dtype, inp.layout))
    if norm["in_graph"] or any(abs(float(s) - 1.0) > 1e-9 for s in norm["std"]):
        raise ManifestError("{}: normalization with std {} cannot be expressed in nvinfer's single "
                            "net-scale-factor (export with rt-export --input deepstream, which folds "
                            "the std into the first convolution)".format(where, norm["std"]))
    scale = float(norm["scale"])
    if scale <= 0:
        raise ManifestError("{}: normalization scale must be positive".format(where))
    offsets = [float(m) / scale for m in norm["mean"]]
    return scale, offsets, COLOR_FORMATS[inp.color_order]


def segmentation_output(manifest):
    """The logits output nvinfer's segmentation parser reads: (name, order 0 NCHW)."""
    logits = manifest.output("logits")
    if logits is None:
        raise ManifestError("{}: nvinfer's segmentation parser takes per-class scores; this engine "
                            "has no logits output (export with rt-export --input deepstream)"
                            .format(manifest.where))
    shape = logits.shape
    if len(shape) != 4 or shape[1] != len(manifest.classes):
        raise ManifestError("{}: logits output {} is not [1, classes, H, W]".format(
            manifest.where, shape))
    return logits.name, 0


def nvinfer_config(manifest, model_file, labels_file, unique_id=1, batch_size=1, gpu_id=0):
    """The text of the [property] group for ``manifest``'s engine at ``model_file``
    (``.onnx``: onnx-file, nvinfer builds and caches a plan; ``.plan``/``.engine``:
    model-engine-file)."""
    scale, offsets, color = nvinfer_preprocessing(manifest)
    output, order = segmentation_output(manifest)
    height, width = manifest.input.size
    resize = manifest.input.resize or "stretch"
    if resize == "crop":
        raise ManifestError("{}: resize mode 'crop' has no nvinfer equivalent (stretch or "
                            "letterbox)".format(manifest.where))
    plan = manifest.artifact_format == "tensorrt"
    lines = [
        "# Gst-nvinfer configuration written by swiftrt (runtime/deepstream.py) from {}".format(
            os.path.basename(manifest.where)),
        "# nvinfer: y = net-scale-factor * (x - offsets[c]); the network folds 1/std in.",
        "[property]",
        "gpu-id={}".format(gpu_id),
        "gie-unique-id={}".format(unique_id),
        "process-mode=1",
        "network-type=2",
        "{}={}".format("model-engine-file" if plan else "onnx-file", model_file),
        "labelfile-path={}".format(labels_file),
        "batch-size={}".format(batch_size),
        "network-mode={}".format(NETWORK_MODES.get(manifest.precision, 0)),
        "infer-dims=3;{};{}".format(height, width),
        "net-scale-factor={:.9g}".format(scale),  # 9 digits: every float32 nvinfer reads exactly
        "offsets={}".format(";".join("{:.9g}".format(o) for o in offsets)),
        "model-color-format={}".format(color),
        "maintain-aspect-ratio={}".format(1 if resize == "letterbox" else 0),
        "symmetric-padding={}".format(1 if resize == "letterbox" else 0),
        "scaling-filter=1",
        "output-blob-names={}".format(output),
        "segmentation-output-order={}".format(order),
        "num-detected-classes={}".format(len(manifest.classes)),
        "segmentation-threshold=0.0",
        "output-tensor-meta=0",
    ]
    return "\n".join(lines) + "\n"


def write_nvinfer_config(engine_path, config_path, labels_path=None):
    """Write the nvinfer config of ``engine_path`` (and its labels file, default
    ``<config>.labels.txt``), atomically; paths in it are absolute. Returns (config, labels)."""
    manifest = Manifest.load(engine_path)
    artifact = os.path.abspath(manifest_mod.resolve(engine_path)[0])
    inputs = Inputs()
    inputs.add(artifact, "engine")
    inputs.add(manifest_mod.resolve(engine_path)[1], "manifest")
    labels_path = labels_path or os.path.splitext(str(config_path))[0] + ".labels.txt"
    config_path = check_output(config_path, "config", inputs, others=[("labels", labels_path)])
    labels_path = check_output(labels_path, "labels", inputs, others=[("config", config_path)])
    text = nvinfer_config(manifest, artifact, os.path.abspath(labels_path))
    write_text_atomic(labels_path, "\n".join(manifest.class_names) + "\n")
    write_text_atomic(config_path, text)
    return config_path, labels_path
