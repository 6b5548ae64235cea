"""rt-ros2's conversions (runtime.ros2_convert) on real sensor_msgs messages, against references
computed here by hand: every camera encoding the node takes (bgra8, rgba8, mono8, the YUV 4:2:2
orders and the four Bayer patterns), and the camera intrinsics moved to a fitted map (a hand
computation, and a 3-D point projected into the camera image and into the fitted map).

Skipped (with the reason) where the ROS 2 wheels are not installed."""
import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("rclpy") is None:
    pytest.skip("ROS 2's rclpy is not installed (pip install '.[ros]')", allow_module_level=True)

from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from runtime import ros2_convert as convert  # noqa: E402
from runtime.core_preprocess import fit_frame, fit_geometry  # noqa: E402

H, W = 6, 8


def message(pixels, encoding, pad=0):
    """A sensor_msgs/Image of ``pixels`` (H x W x bytes-per-pixel uint8) with ``pad`` bytes per row."""
    rows = pixels.reshape(pixels.shape[0], -1)
    if pad:
        rows = np.concatenate([rows, np.full((rows.shape[0], pad), 77, np.uint8)], axis=1)
    msg = convert.fill_image(Image(), Image().header, rows, "mono8")
    msg.width, msg.encoding = pixels.shape[1], encoding
    return msg


def random_bgr(seed=0):
    return np.random.RandomState(seed).randint(0, 256, (H, W, 3)).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["bgra8", "rgba8"])
def test_four_channel_images_lose_alpha_in_the_right_order(encoding):
    bgr = random_bgr()
    alpha = np.full((H, W, 1), 9, np.uint8)
    pixels = np.concatenate([bgr if encoding == "bgra8" else bgr[:, :, ::-1], alpha], axis=2)
    np.testing.assert_array_equal(convert.image_to_bgr(message(pixels, encoding, pad=4)), bgr)


def test_mono8_is_grey_in_all_three_channels():
    grey = random_bgr()[:, :, 0]
    frame = convert.image_to_bgr(message(grey[:, :, None], "mono8", pad=3))
    np.testing.assert_array_equal(frame, np.repeat(grey[:, :, None], 3, axis=2))


def bt601(y, u, v):
    """BGR of YUV (BT.601, video range), the reference for the 4:2:2 conversions."""
    y, u, v = (np.asarray(a, np.float64) for a in (y, u, v))
    c, d, e = 1.164 * (y - 16), u - 128, v - 128
    rgb = [c + 1.596 * e, c - 0.392 * d - 0.813 * e, c + 2.017 * d]
    return np.clip(np.stack(rgb[::-1], axis=-1), 0, 255)


@pytest.mark.parametrize("encoding,order", [("yuv422", "uyvy"), ("uyvy", "uyvy"),
                                            ("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv")])
def test_yuv422_orders_decode_as_bt601(encoding, order):
    rng = np.random.RandomState(1)
    y = rng.randint(16, 236, (H, W)).astype(np.uint8)
    u = rng.randint(16, 241, (H, W // 2)).astype(np.uint8)  # one (u, v) per pixel pair
    v = rng.randint(16, 241, (H, W // 2)).astype(np.uint8)
    packed = np.zeros((H, W // 2, 4), np.uint8)
    if order == "uyvy":
        packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    else:
        packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    frame = convert.image_to_bgr(message(packed.reshape(H, W, 2), encoding, pad=2))
    want = bt601(y, np.repeat(u, 2, axis=1), np.repeat(v, 2, axis=1))
    assert np.abs(frame.astype(np.float64) - want).max() <= 2.0


@pytest.mark.parametrize("encoding", ["bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8"])
def test_bayer_patterns_demosaic_to_the_colour_that_was_sampled(encoding):
    """A mosaic sampled from one colour by the pattern the encoding names: demosaicing must give
    that colour back (a pattern read with the wrong phase swaps red and blue)."""
    bgr = np.array([30, 120, 220], np.uint8)
    pattern = encoding[len("bayer_"):len("bayer_") + 4].upper()  # 2x2, row-major
    channel = {"B": 0, "G": 1, "R": 2}
    mosaic = np.zeros((8, 10), np.uint8)
    for y in range(8):
        for x in range(10):
            mosaic[y, x] = bgr[channel[pattern[2 * (y % 2) + x % 2]]]
    frame = convert.image_to_bgr(message(mosaic[:, :, None], encoding, pad=5))
    np.testing.assert_array_equal(frame[2:6, 2:8], np.broadcast_to(bgr, (4, 6, 3)))


def test_unknown_and_malformed_images_are_refused_in_one_line():
    with pytest.raises(convert.RefusedImage, match="encoding '16UC1' is not supported"):
        convert.image_to_bgr(message(np.zeros((H, W, 2), np.uint8), "16UC1"))
    with pytest.raises(convert.RefusedImage, match="malformed uyvy"):  # odd width
        convert.image_to_bgr(message(np.zeros((H, 3, 2), np.uint8), "uyvy"))


def camera_info(fx=500.0, fy=480.0, cx=317.5, cy=241.25, baseline_tx=-30.0):
    info = CameraInfo()
    info.height, info.width = 480, 640
    info.distortion_model = "plumb_bob"
    info.d = [0.1, -0.05, 0.001, 0.002, 0.0]
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, baseline_tx, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def test_camera_info_of_a_letterboxed_map_by_hand():
    # 640x480 into 256x128 letterbox: scale min(256/640, 128/480) = 4/15; resized 171x128
    # (640 * 4/15 = 170.67 -> 171), padded (256 - 171) // 2 = 42 columns on the left.
    geometry = fit_geometry((480, 640), (128, 256), "letterbox")
    out = convert.fit_camera_info(camera_info(), geometry, CameraInfo)
    sx, sy = 171 / 640.0, 128 / 480.0
    assert (out.height, out.width) == (128, 256)
    assert out.k[0] == pytest.approx(500.0 * sx) and out.k[4] == pytest.approx(480.0 * sy)
    assert out.k[2] == pytest.approx((317.5 + 0.5) * sx - 0.5 + 42)   # 126.4656...
    assert out.k[5] == pytest.approx((241.25 + 0.5) * sy - 0.5)
    assert out.k[2] == pytest.approx(126.465625)
    assert out.p[3] == pytest.approx(-30.0 * sx) and out.p[2] == pytest.approx(out.k[2])
    assert list(out.d) == list(camera_info().d) and out.distortion_model == "plumb_bob"


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "crop"])
def test_a_projected_point_lands_where_the_fitted_map_shows_it(mode):
    """A 3-D point projected with the camera's K marks a spot in the 640x480 image; after
    fit_frame (what the engine sees) the spot's centre is where the fitted K projects it."""
    info = camera_info()
    point = np.array([0.7, -0.35, 4.0])  # metres, camera frame
    k = np.array(info.k).reshape(3, 3)
    u, v, _ = k.dot(point / point[2])
    yy, xx = np.mgrid[0:480, 0:640]
    spot = np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * 6.0 ** 2))  # smooth: resizing keeps its centre
    image = np.repeat((spot * 250).astype(np.uint8)[:, :, None], 3, axis=2)  # a BGR camera frame
    fitted = fit_frame(image, (128, 256), mode)[0][:, :, 0].astype(np.float32)
    geometry = fit_geometry((480, 640), (128, 256), mode)
    k2 = np.array(convert.fit_camera_info(info, geometry, CameraInfo).k).reshape(3, 3)
    u2, v2, _ = k2.dot(point / point[2])
    weights = np.clip(fitted - 0.05 * fitted.max(), 0, None)
    gy, gx = np.mgrid[0:fitted.shape[0], 0:fitted.shape[1]]
    found = (weights * gx).sum() / weights.sum(), (weights * gy).sum() / weights.sum()
    assert found == pytest.approx((u2, v2), abs=0.15)


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "crop"])
def test_maps_fitted_back_to_the_camera_image(mode):
    """output_size:=input: a map at the network size goes back onto the image's pixels; each
    class region of a fitted label image returns where it was (up to a pixel at its edges)."""
    labels = np.zeros((480, 640), np.uint8)
    labels[100:300, 200:500] = 3
    fitted, _ = fit_frame(labels[:, :, None].repeat(3, axis=2), (128, 256), mode)
    back = convert.unfit_map(fitted[:, :, 0], fit_geometry((480, 640), (128, 256), mode), 255)
    assert back.shape == (480, 640)
    inside = back[110:290, 210:490]
    assert (inside == 3).all()
    if mode == "crop":  # 640x480 scaled by 0.4 to 256x192, 32 rows cut at top and bottom
        assert (back[:75] == 255).all() and (back[-75:] == 255).all()  # (80 source rows each)
        assert (back[85:95] == 0).all()
    else:
        assert (back[:90] == 0).all() and (back[310:] == 0).all()
