"""Small, checkable forecast bundles built with onnx.helper (real ONNX graphs, real sessions).

features: uint8 NHWC BGR frame -> Cast -> Transpose -> AveragePool (1/4) -> 1x1 Conv to C
channels -> (1, C, h, w). Channels 0-2 are the mean B, G, R of each cell, the others constants
(100 + k), so that argmax picks the dominant colour or "dark", and moving colour bars
give class maps that differ from frame to frame.
f2f: ``copy-last`` (Slice of the newest frame's channels: the forecast equals the decoder
of the current frame) or ``copy-oldest`` (the oldest frame's channels: the forecast equals
the decoder of the frame picked for the oldest offset).
decoder: Resize (nearest) to the input size -> ArgMax over channels -> uint8 class map, or
the resized scores as logits.
"""
import copy
import os

import numpy as np

from runtime.manifest import write_manifest_json

SIZE = (32, 64)        # network input (h, w)
CHANNELS = 4
STRIDE = 4             # features at 1/4: 8 x 16
OPSET = 13
COLORS = [[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
          [153, 153, 153], [250, 170, 30], [220, 220, 0]]


def _onnx():
    import onnx
    from onnx import TensorProto, helper
    return onnx, TensorProto, helper


def _save(model, path):
    onnx, _, _ = _onnx()
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def features_model(path, size=SIZE, channels=CHANNELS):
    _, TP, h = _onnx()
    height, width = size
    weight = np.zeros((channels, 3, 1, 1), np.float32)
    bias = np.zeros((channels,), np.float32)
    for k in range(channels):
        if k < 3:
            weight[k, k, 0, 0] = 1.0
        else:
            bias[k] = 100.0 + k  # wins where the frame is dark
    nodes = [
        h.make_node("Cast", ["frame"], ["x"], to=TP.FLOAT),
        h.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        h.make_node("AveragePool", ["nchw"], ["pooled"], kernel_shape=[STRIDE, STRIDE],
                    strides=[STRIDE, STRIDE]),
        h.make_node("Conv", ["pooled", "w", "b"], ["features"]),
    ]
    graph = h.make_graph(
        nodes, "features",
        [h.make_tensor_value_info("frame", TP.UINT8, [1, height, width, 3])],
        [h.make_tensor_value_info("features", TP.FLOAT,
                                  [1, channels, height // STRIDE, width // STRIDE])],
        initializer=[h.make_tensor("w", TP.FLOAT, weight.shape, weight.ravel()),
                     h.make_tensor("b", TP.FLOAT, bias.shape, bias.ravel())])
    _save(h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)]), path)


def f2f_model(path, past, size=SIZE, channels=CHANNELS, mode="copy-last"):
    _, TP, h = _onnx()
    fh, fw = size[0] // STRIDE, size[1] // STRIDE
    first = (past - 1) * channels if mode == "copy-last" else 0
    inits = [h.make_tensor(n, TP.INT64, [1], [v]) for n, v in
             (("starts", first), ("ends", first + channels), ("axes", 1))]
    graph = h.make_graph(
        [h.make_node("Slice", ["past_features", "starts", "ends", "axes"], ["future_features"])],
        "f2f",
        [h.make_tensor_value_info("past_features", TP.FLOAT, [1, past * channels, fh, fw])],
        [h.make_tensor_value_info("future_features", TP.FLOAT, [1, channels, fh, fw])],
        initializer=inits)
    _save(h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)]), path)


def decoder_model(path, size=SIZE, channels=CHANNELS, output_kind="class_map"):
    _, TP, h = _onnx()
    height, width = size
    fh, fw = height // STRIDE, width // STRIDE
    sizes = h.make_tensor("sizes", TP.INT64, [4], [1, channels, height, width])
    nodes = [h.make_node("Resize", ["features", "", "", "sizes"], ["up"], mode="nearest")]
    if output_kind == "class_map":
        nodes += [h.make_node("ArgMax", ["up"], ["ids"], axis=1, keepdims=0),
                  h.make_node("Cast", ["ids"], ["class_map"], to=TP.UINT8)]
        out = h.make_tensor_value_info("class_map", TP.UINT8, [1, height, width])
    else:
        nodes += [h.make_node("Identity", ["up"], ["logits"])]
        out = h.make_tensor_value_info("logits", TP.FLOAT, [1, channels, height, width])
    graph = h.make_graph(
        nodes, "decoder", [h.make_tensor_value_info("features", TP.FLOAT, [1, channels, fh, fw])],
        [out], initializer=[sizes])
    _save(h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)]), path)


def frame_input(size=SIZE):
    return {"name": "frame", "shape": [1, size[0], size[1], 3], "dtype": "uint8",
            "layout": "NHWC", "color_order": "BGR", "resize": "stretch",
            "normalization": {"in_graph": True, "scale": 1.0 / 255, "mean": [0.485, 0.456, 0.406],
                              "std": [0.229, 0.224, 0.225]}}


def classes(count=CHANNELS):
    return [{"id": i, "name": "class{}".format(i), "color": COLORS[i % len(COLORS)]}
            for i in range(count)]


def _stage_manifest(stage, artifact, inp, outputs, extra=None):
    from runtime.manifest import sha256_file
    data = {"schema_version": 1, "arch": "test-f2f", "task": "forecast_stage", "stage": stage,
            "artifact": {"file": os.path.basename(str(artifact)), "format": "onnx",
                         "sha256": sha256_file(artifact)},
            "input": inp, "outputs": outputs, "classes": classes(), "ignore_id": 255,
            "precision": "fp32"}
    data.update(extra or {})
    return data


def build_bundle(folder, past_offsets=(-4, -2, 0), horizon=3, frame_rate=15.0, f2f="copy-last",
                 output_kind="class_map", patch=None, size=SIZE):
    """Write a bundle into ``folder``; returns the path of its forecast.json.

    ``patch(manifests)`` may edit the four manifests (keys: bundle, features, f2f,
    decoder) before they are written, to make broken bundles.
    """
    folder = str(folder)
    if not os.path.isdir(folder):
        os.makedirs(folder)
    past = len(past_offsets)
    fh, fw = size[0] // STRIDE, size[1] // STRIDE
    feature_shape = [1, CHANNELS, fh, fw]
    paths = dict((name, os.path.join(folder, name + ".onnx"))
                 for name in ("features", "f2f", "decoder"))
    features_model(paths["features"], size)
    f2f_model(paths["f2f"], past, size, mode=f2f)
    decoder_model(paths["decoder"], size, output_kind=output_kind)
    feats_in = {"name": "features", "shape": feature_shape, "dtype": "float32",
                "layout": "NCHW", "kind": "features"}
    out_shape = [1, size[0], size[1]] if output_kind == "class_map" else [1, CHANNELS] + list(size)
    manifests = {
        "features": _stage_manifest("features", paths["features"], frame_input(size), [
            {"name": "features", "shape": feature_shape, "dtype": "float32",
             "meaning": "features"}]),
        "f2f": _stage_manifest("f2f", paths["f2f"], dict(
            feats_in, name="past_features", shape=[1, past * CHANNELS, fh, fw]), [
            {"name": "future_features", "shape": feature_shape, "dtype": "float32",
             "meaning": "features"}],
            extra={"frame_rate": frame_rate, "past_offsets": list(past_offsets),
                   "horizon": horizon}),
        "decoder": _stage_manifest("decoder", paths["decoder"], feats_in, [
            {"name": output_kind, "shape": out_shape,
             "dtype": "uint8" if output_kind == "class_map" else "float32",
             "meaning": output_kind}]),
        "bundle": {
            "schema_version": 1, "task": "forecast", "arch": "test-f2f", "precision": "fp32",
            "stages": {"features": "features.onnx", "f2f": "f2f.onnx",
                       "decoder": "decoder.onnx"},
            "past_offsets": list(past_offsets), "horizon": horizon, "frame_rate": frame_rate,
            "feature_shape": feature_shape,
            "forecaster": {"kind": f2f},
            "input": frame_input(size), "classes": classes(), "ignore_id": 255},
    }
    manifests = copy.deepcopy(manifests)
    if patch is not None:
        patch(manifests)
    for name in ("features", "f2f", "decoder"):
        write_manifest_json(paths[name] + ".json", manifests[name])  # sealed, as every writer
    bundle_path = os.path.join(folder, "forecast.json")
    write_manifest_json(bundle_path, manifests["bundle"])
    return bundle_path


def write_video(path, frames, fps, size=(48, 96)):
    """A video whose class maps change from frame to frame (moving colour bars)."""
    import cv2
    height, width = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps),
                             (width, height))
    assert writer.isOpened()
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    for i in range(frames):
        frame = np.full((height, width, 3), 40, np.uint8)
        for k, color in enumerate(palette):
            x = (i * 8 + k * width // 4) % width
            frame[:, x:x + width // 8] = color
        writer.write(frame)
    writer.release()
    return str(path)


def read_frames(path):
    import cv2
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames
