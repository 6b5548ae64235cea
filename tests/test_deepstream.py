"""The DeepStream form and its nvinfer configuration, checked by emulating nvinfer.

DeepStream itself is not run here (no GPU, no DeepStream). What is run: the written nvinfer
config's net-scale-factor / offsets / model-color-format applied with nvinfer's documented
preprocessing formula (y = net-scale-factor * (x - offsets[c]), planar float), the deepstream
export on that, and nvinfer's segmentation parser rule (per pixel the class whose score is
highest and above segmentation-threshold and -1), compared with the standard path (rt-segment's
engine on the uint8-frame export of the same checkpoint).
"""
import configparser
import os

import cv2
import numpy as np
import pytest

from tests.conftest import REPO

torch = pytest.importorskip("torch")

from runtime.errors import ManifestError, UserError  # noqa: E402
from runtime import deepstream  # noqa: E402

CHECKPOINT = os.path.join(REPO, "checkpoints", "swiftnet-rn18_synthetic.pt")
SIZE = (128, 256)


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """(standard uint8-frame export, deepstream export) of the same trained checkpoint."""
    from export.api import export
    folder = tmp_path_factory.mktemp("engines")
    standard = str(folder / "rn18_frame.onnx")
    ds = str(folder / "rn18_deepstream.onnx")
    export("swiftnet-rn18", CHECKPOINT, SIZE, standard, parity_images=1, log=lambda m: None)
    export("swiftnet-rn18", CHECKPOINT, SIZE, ds, input_format="deepstream", parity_images=1,
           log=lambda m: None)
    return standard, ds


def _nvinfer_settings(config_path):
    parser = configparser.ConfigParser()
    parser.read(config_path)
    return parser["property"]


def _nvinfer_class_map(session, prop, fitted_bgr):
    """What nvinfer computes for a frame already scaled to the network size."""
    scale = float(prop["net-scale-factor"])
    offsets = np.array([float(v) for v in prop["offsets"].split(";")], np.float32)
    pixels = fitted_bgr[:, :, ::-1] if prop["model-color-format"] == "0" else fitted_bgr
    planes = (np.float32(scale) * (pixels.astype(np.float32) - offsets)).transpose(2, 0, 1)
    name = session.get_inputs()[0].name
    scores = session.run([prop["output-blob-names"]], {name: planes[None]})[0][0]
    threshold = float(prop["segmentation-threshold"])
    best = scores.max(axis=0)
    classes = scores.argmax(axis=0).astype(np.int32)
    classes[(best <= threshold) | (best <= -1)] = -1  # nvinfer: unclassified
    return classes


def test_nvinfer_preprocessing_feeds_the_deepstream_form_exactly(engines, tmp_path):
    import onnxruntime
    import runtime
    from export.scenes import render_scene
    standard, ds = engines
    config, labels = deepstream.write_nvinfer_config(ds, str(tmp_path / "nvinfer.txt"))
    prop = _nvinfer_settings(config)
    assert prop["network-type"] == "2" and prop["segmentation-output-order"] == "0"
    assert prop["onnx-file"] == os.path.abspath(ds) and prop["num-detected-classes"] == "19"
    assert prop["infer-dims"] == "3;128;256" and prop["model-color-format"] == "0"
    assert open(labels).read().splitlines()[0] == "road"
    session = onnxruntime.InferenceSession(ds, providers=["CPUExecutionProvider"])
    engine = runtime.open_engine(standard)
    same = total = 0
    try:
        for index in range(6):
            frame = render_scene(seed=31, index=index, size=(192, 384))[0]
            fitted = cv2.resize(frame, (SIZE[1], SIZE[0]), interpolation=cv2.INTER_LINEAR)
            expected = engine.segment(fitted).class_map
            got = _nvinfer_class_map(session, prop, fitted)
            assert (got >= 0).all()  # every pixel classified (softmax scores, threshold 0)
            same += int((got == expected).sum())
            total += expected.size
    finally:
        engine.close()
    assert same / float(total) >= 0.9999, same / float(total)


def test_deepstream_form_runs_in_the_runtime_like_the_standard_path(engines):
    """Its manifest (std 1, scale, mean) makes the runtime's preprocessing nvinfer's."""
    import runtime
    from export.scenes import render_scene
    standard, ds = engines
    a, b = runtime.open_engine(standard), runtime.open_engine(ds)
    try:
        frame = render_scene(seed=32, index=0, size=SIZE)[0]
        agree = (a.segment(frame).class_map == b.segment(frame).class_map).mean()
    finally:
        a.close()
        b.close()
    assert agree >= 0.9999


def test_engines_nvinfer_cannot_feed_are_refused(engines, tmp_path):
    standard, _ = engines
    with pytest.raises(ManifestError, match="deepstream"):
        deepstream.write_nvinfer_config(standard, str(tmp_path / "x.txt"))
    assert not os.path.exists(str(tmp_path / "x.txt"))


def test_outlier_networks_have_no_deepstream_form(tmp_path):
    from export.api import export
    with pytest.raises(UserError, match="one output"):
        export("swiftnet-rn18-ood", None, (64, 128), str(tmp_path / "ood.onnx"),
               input_format="deepstream", parity_images=1, log=lambda m: None)


def test_rt_deepstream_writes_the_config_and_refuses_to_overwrite_the_engine(engines, tmp_path):
    from runtime.cli.common import run_cli
    from runtime.cli.deepstream import main
    _, ds = engines
    before = open(ds, "rb").read()
    assert run_cli(main, [ds, ds]) == 2  # the engine itself as the config: refused
    assert run_cli(main, [ds, ds + ".json"]) == 2  # its manifest: refused
    assert open(ds, "rb").read() == before
    config = str(tmp_path / "nv.txt")
    assert run_cli(main, [ds, config, "-q"]) == 0
    assert _nvinfer_settings(config)["output-blob-names"] == "probabilities"
