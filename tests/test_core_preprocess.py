"""runtime.core_preprocess: the core's preprocessing (srt_preprocess, srt_fit_geometry) from Python.

Hand-computed expectations (normalized values of a tiny frame, colour order and layout, a 2x
box-average downscale, letterbox / crop / stretch geometry on known sizes), the tensor fed to
ONNX Runtime giving the class maps the core's own engine gives, and the one-line errors.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from runtime import core_preprocess as cp
from runtime.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Spec(object):
    """The fields of a runtime.manifest.Input that preprocessing reads (a manifest's input block)."""

    def __init__(self, size, layout="NHWC", dtype="uint8", color_order="BGR", in_graph=True,
                 scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize=None):
        self.name = "frame"
        self.size, self.layout, self.dtype = size, layout, dtype
        self.color_order, self.resize = color_order, resize
        self.normalization = {"in_graph": in_graph, "scale": scale, "mean": list(mean),
                              "std": list(std)}


def frame_2x2():
    """B, G, R per pixel: chosen so that (x / 255 - 0.5) / 0.25 is exact in float32."""
    return np.array([[[0, 51, 255], [255, 0, 51]],
                     [[51, 255, 0], [102, 153, 204]]], dtype=np.uint8)


def test_host_normalized_nchw_rgb_tensor_by_hand():
    pre = cp.Preprocessor(Spec((2, 2), "NCHW", "float32", "RGB", in_graph=False, scale=1 / 255.0,
                               mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    tensor, fitted, fit = pre(frame_2x2())
    # (x / 255 - 0.5) / 0.25: 0 -> -2, 51 -> -1.2, 102 -> -0.4, 153 -> 0.4, 204 -> 1.2, 255 -> 2
    want = np.array([[[2.0, -1.2], [-2.0, 1.2]],     # R plane
                     [[-1.2, -2.0], [2.0, 0.4]],     # G plane
                     [[-2.0, 2.0], [-1.2, -0.4]]],   # B plane
                    dtype=np.float32)[None]
    assert tensor.shape == (1, 3, 2, 2) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor, want, rtol=0, atol=1e-6)
    assert np.array_equal(fitted, frame_2x2())     # the network's size already: used as it is
    assert (fit.mode, fit.scale_x, fit.scale_y, fit.resized_h, fit.resized_w) == ("stretch", 1.0, 1.0, 2, 2)


def test_uint8_layouts_and_colour_orders():
    frame = frame_2x2()
    nhwc_bgr = cp.Preprocessor(Spec((2, 2)))(frame)[0]
    assert nhwc_bgr.dtype == np.uint8 and np.array_equal(nhwc_bgr[0], frame)
    nhwc_rgb = cp.Preprocessor(Spec((2, 2), color_order="RGB")).to_tensor(frame)
    assert np.array_equal(nhwc_rgb[0], frame[:, :, ::-1])
    nchw_bgr = cp.Preprocessor(Spec((2, 2), layout="NCHW")).to_tensor(frame)
    assert nchw_bgr.shape == (1, 3, 2, 2) and np.array_equal(nchw_bgr[0, 2], frame[:, :, 2])
    raw = cp.Preprocessor(Spec((2, 2), dtype="float32")).to_tensor(frame)  # normalized in the graph
    assert raw.dtype == np.float32 and np.array_equal(raw[0], frame.astype(np.float32))


def test_exact_half_size_is_a_box_average():
    # OpenCV's (and so the core's) INTER_LINEAR at exactly half size: (a + b + c + d + 2) >> 2.
    plane = np.array([[0, 0, 10, 11],
                      [4, 4, 12, 13],
                      [200, 200, 255, 254],
                      [200, 200, 253, 0]], np.uint8)
    frame = np.repeat(plane[:, :, None], 3, axis=2)
    fitted, fit = cp.fit_frame(frame, (2, 2), "stretch")
    assert fitted[:, :, 0].tolist() == [[2, 12], [200, 191]]
    assert (fit.scale_x, fit.scale_y, fit.resized_h, fit.resized_w) == (0.5, 0.5, 2, 2)


def test_letterbox_geometry_and_bars():
    # 480x640 into 128x256: scale min(256/640, 128/480) = 4/15 -> 171x128, bars of 42 and 43 columns.
    fit = cp.fit_geometry((480, 640), (128, 256), "letterbox")
    assert (fit.resized_h, fit.resized_w, fit.pad_x, fit.pad_y) == (128, 171, 42, 0)
    assert (fit.crop_x, fit.crop_y) == (0, 0)
    assert fit.scale_x == fit.scale_y == pytest.approx(4 / 15.0)
    frame = np.full((480, 640, 3), (10, 120, 230), np.uint8)
    fitted, fitted_fit = cp.fit_frame(frame, (128, 256), "letterbox")
    assert fitted_fit.pad_x == 42 and fitted.shape == (128, 256, 3)
    assert (fitted[:, :42] == 0).all() and (fitted[:, 42 + 171:] == 0).all()
    assert (fitted[:, 42:42 + 171] == (10, 120, 230)).all()


def test_crop_and_stretch_geometry():
    # 480x640 into 128x128 by crop: scale max(128/640, 128/480) = 4/15 -> 171x128, cut 21 columns.
    crop = cp.fit_geometry((480, 640), (128, 128), "crop")
    assert (crop.resized_h, crop.resized_w, crop.crop_x, crop.crop_y, crop.pad_x) == (128, 171, 21, 0, 0)
    stretch = cp.fit_geometry((480, 640), (128, 256), "stretch")
    assert (stretch.scale_x, stretch.scale_y) == (0.4, 128 / 480.0)
    assert (stretch.resized_h, stretch.resized_w, stretch.height, stretch.width) == (128, 256, 128, 256)
    same = cp.fit_geometry((128, 256), (128, 256), "letterbox")
    assert (same.scale_x, same.pad_x, same.resized_w, same.mode) == (1.0, 0, 256, "letterbox")


def test_user_errors_are_one_line():
    with pytest.raises(UserError, match="unknown resize mode 'zoom'"):
        cp.fit_geometry((10, 10), (4, 4), "zoom")
    with pytest.raises(UserError, match="uint8 or float32"):
        cp.Preprocessor(Spec((4, 4), dtype="float16"))
    with pytest.raises(UserError, match="normalize needs dtype SRT_DTYPE_FLOAT32"):
        cp.Preprocessor(Spec((4, 4), dtype="uint8", in_graph=False))(frame_2x2())
    with pytest.raises(UserError, match="std has a 0"):
        cp.Preprocessor(Spec((4, 4), dtype="float32", in_graph=False, std=(1, 0, 1)))(frame_2x2())
    with pytest.raises(UserError, match="height is 0"):
        cp.fit_geometry((0, 10), (4, 4), "crop")
    with pytest.raises(ValueError, match="HxWx3"):
        cp.fit_frame(np.zeros((4, 4), np.uint8), (2, 2))


def test_without_the_library_one_line_names_the_build_command(tmp_path):
    code = ("from runtime import core_preprocess\n"
            "from runtime.errors import UserError\n"
            "try:\n"
            "    core_preprocess.fit_geometry((4, 4), (2, 2))\n"
            "except UserError as exc:\n"
            "    print(exc)\n")
    env = dict(os.environ, SWIFTRT_LIBRARY=str(tmp_path / "no" / "libswiftrt.so"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().count("\n") == 0 and "make native-lib" in proc.stdout


@pytest.mark.parametrize("name,resize", [("seg", "letterbox"), ("logits", "crop")])
def test_tensor_runs_to_the_class_map_the_core_engine_gives(name, resize):
    """The wrapper's tensor, run by ONNX Runtime, segments a camera-sized frame as the core's own
    engine does on that frame: the tensor is the one the engine feeds its network."""
    ort = pytest.importorskip("onnxruntime")
    from runtime.backends.native import CoreEngine
    from runtime.manifest import Manifest
    path = os.path.join(REPO, "build", "native-engines", name + ".onnx")
    if not os.path.exists(path):
        pytest.skip("no test engines in build/native-engines (tests/test_native.py makes them)")
    from export.scenes import render_scene
    frame = render_scene(5, 0, size=(300, 500))[0]
    spec = Manifest.load(path).input
    tensor = cp.Preprocessor(spec, resize=resize)(frame)[0]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = session.run(None, {spec.name: tensor})[0][0]
    mine = out if out.ndim == 2 else out.argmax(axis=0)
    core = CoreEngine(path, threads=1, resize=resize, backend="onnxruntime")
    try:
        theirs = core.run(frame)["class_map"]
    finally:
        core.close()
    assert np.count_nonzero(mine == theirs) / float(mine.size) >= 0.9999
    assert len(np.unique(theirs)) > 2
