"""sensor_msgs <-> numpy for the ROS 2 node, without cv_bridge.

cv_bridge is not on PyPI and on JetPack it is built against the system OpenCV, so the
node converts the encodings it takes and gives itself with OpenCV's own conversions (the
ones cv_bridge uses): bgr8, rgb8, bgra8, rgba8, mono8, yuv422 / uyvy, yuv422_yuy2 / yuyv,
bayer_{rggb,bggr,gbrg,grbg}8 (and jpeg / png CompressedImage) in; mono8, bgr8, rgb8 and
32FC1 out; sensor_msgs/CameraInfo intrinsics moved to a fitted map (``fit_camera_info``). Message classes are passed in (the
node imports them lazily), so this module needs neither rclpy nor the message packages.

Sequences of uint8 arrive as ``array.array('B')`` (rclpy since Dashing) and are viewed,
not copied; outgoing data is handed over as ``array.array('B')``, the generated
setters' fast path (a ``bytes`` would be checked element by element).
"""
import array
import sys

import cv2
import numpy as np

# encoding -> (bytes per pixel, OpenCV conversion to BGR or None). ROS's "yuv422" is UYVY and
# "yuv422_yuy2" is YUYV (sensor_msgs/image_encodings.hpp); ROS's bayer_rggb8 is OpenCV's
# BayerBG (OpenCV names the pattern by the second row: cv_bridge's mapping).
_RAW = {
    "bgr8": (3, None), "rgb8": (3, cv2.COLOR_RGB2BGR),
    "bgra8": (4, cv2.COLOR_BGRA2BGR), "rgba8": (4, cv2.COLOR_RGBA2BGR),
    "mono8": (1, cv2.COLOR_GRAY2BGR),
    "yuv422": (2, cv2.COLOR_YUV2BGR_UYVY), "uyvy": (2, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (2, cv2.COLOR_YUV2BGR_YUY2), "yuyv": (2, cv2.COLOR_YUV2BGR_YUY2),
    "bayer_rggb8": (1, cv2.COLOR_BayerBG2BGR), "bayer_bggr8": (1, cv2.COLOR_BayerRG2BGR),
    "bayer_gbrg8": (1, cv2.COLOR_BayerGR2BGR), "bayer_grbg8": (1, cv2.COLOR_BayerGB2BGR),
}
RAW_ENCODINGS = tuple(sorted(_RAW))
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")
_NS = 1000000000


class RefusedImage(Exception):
    """An incoming image the node does not take (encoding, format, malformed); one line."""


def _bytes_view(data):
    """uint8 view of a message's byte sequence (array.array, bytes; a list on old rclpy)."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        return np.asarray(data, dtype=np.uint8)


def image_to_bgr(msg):
    """sensor_msgs/Image (any of RAW_ENCODINGS, any row step) -> HxWx3 BGR uint8 frame."""
    encoding = msg.encoding
    if encoding not in _RAW:
        raise RefusedImage("encoding {!r} is not supported; publish one of {} (or use "
                           "transport:=compressed)".format(encoding, ", ".join(RAW_ENCODINGS)))
    channels, conversion = _RAW[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = _bytes_view(msg.data)
    if height < 1 or width < 1 or step < width * channels or data.size < step * height or (
            channels == 2 and width % 2):
        raise RefusedImage("malformed {} image: {}x{}, step {}, {} bytes of data".format(
            encoding, width, height, step, data.size))
    rows = data[:step * height].reshape(height, step)[:, :width * channels]
    frame = rows.reshape(height, width, channels) if channels > 1 else rows
    if conversion is None:
        return np.ascontiguousarray(frame)
    return cv2.cvtColor(np.ascontiguousarray(frame), conversion)


def compressed_to_bgr(msg):
    """sensor_msgs/CompressedImage (jpeg or png, as image_transport's compressed plugin sends) -> BGR."""
    fmt = (msg.format or "").lower()
    if "compresseddepth" in fmt or not any(name in fmt for name in COMPRESSED_FORMATS):
        raise RefusedImage("compressed format {!r} is not supported; publish jpeg or png".format(
            msg.format))
    frame = cv2.imdecode(_bytes_view(msg.data), cv2.IMREAD_COLOR)
    if frame is None:
        raise RefusedImage("a {} image could not be decoded ({} bytes)".format(
            msg.format, len(msg.data)))
    return frame


def fill_image(msg, header, array_hw, encoding):
    """Fill a sensor_msgs/Image ``msg`` from an (H, W) or (H, W, C) array; returns ``msg``.

    ``encoding``: mono8 (uint8 HxW), bgr8 / rgb8 (uint8 HxWx3) or 32FC1 (float32 HxW, host
    byte order).
    """
    dtype = np.float32 if encoding == "32FC1" else np.uint8
    data = np.ascontiguousarray(array_hw, dtype=dtype)
    msg.header = header
    msg.height, msg.width = int(data.shape[0]), int(data.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big" and data.itemsize > 1)
    msg.step = int(data.strides[0])
    msg.data = _byte_array(data)
    return msg


def _byte_array(data):
    """The bytes of a contiguous array as array.array('B'), copied once."""
    out = array.array("B")
    out.frombytes(data.reshape(-1).view(np.uint8).data)
    return out


def image_array(msg):
    """A published Image back to numpy (mono8 / bgr8 -> uint8, 32FC1 -> float32); for consumers and tests."""
    channels = {"mono8": 1, "bgr8": 3, "rgb8": 3, "32FC1": 1}[msg.encoding]
    dtype = np.dtype(np.float32 if msg.encoding == "32FC1" else np.uint8)
    if msg.is_bigendian != (sys.byteorder == "big"):
        dtype = dtype.newbyteorder()
    rows = _bytes_view(msg.data)[:msg.step * msg.height].reshape(msg.height, msg.step)
    rows = rows[:, :msg.width * channels * dtype.itemsize]
    values = np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width, channels)
    return values[:, :, 0] if channels == 1 else values


def stamp_plus(stamp, seconds, time_type):
    """A builtin_interfaces/Time ``seconds`` after ``stamp`` (a new ``time_type`` message)."""
    total = int(stamp.sec) * _NS + int(stamp.nanosec) + int(round(float(seconds) * _NS))
    out = time_type()
    out.sec, out.nanosec = total // _NS, total % _NS
    return out


def copy_header(header, header_type, stamp=None):
    """A new std_msgs/Header with ``header``'s frame_id and its stamp (or ``stamp``)."""
    out = header_type()
    out.frame_id = header.frame_id
    out.stamp = stamp if stamp is not None else header.stamp
    return out


def fit_camera_info(info, geometry, info_type):
    """The camera's sensor_msgs/CameraInfo for a map fitted by ``geometry`` (a core_preprocess.Fit
    from ``fit_geometry``): a new ``info_type`` message whose K and P are in the map's pixels.

    Each axis was resized by ``s`` = resized / source length (cv2.resize: pixel centres map
    as u' = (u + 0.5) s - 0.5), then shifted by the letterbox padding or the crop offset:
    f' = f s, c' = (c + 0.5) s - 0.5 + pad - crop. D and R do not change (they act on
    normalised coordinates); binning and ROI are the map's own (none).
    """
    sx, sy = geometry.resized_w / float(geometry.src_w), geometry.resized_h / float(geometry.src_h)
    ox, oy = geometry.pad_x - geometry.crop_x, geometry.pad_y - geometry.crop_y
    out = info_type()
    out.header = info.header
    out.height, out.width = int(geometry.height), int(geometry.width)
    out.distortion_model = info.distortion_model
    out.d = list(info.d)
    out.r = list(info.r)
    k = [float(v) for v in info.k]
    k[0], k[1], k[2] = k[0] * sx, k[1] * sx, (k[2] + 0.5) * sx - 0.5 + ox
    k[4], k[5] = k[4] * sy, (k[5] + 0.5) * sy - 0.5 + oy
    out.k = k
    p = [float(v) for v in info.p]
    p[0], p[1], p[2], p[3] = p[0] * sx, p[1] * sx, (p[2] + 0.5) * sx - 0.5 + ox, p[3] * sx
    p[5], p[6], p[7] = p[5] * sy, (p[6] + 0.5) * sy - 0.5 + oy, p[7] * sy
    out.p = p
    return out


def unfit_map(values, geometry, fill, nearest=True):
    """A map at the network's size back on the camera image's pixels (``output_size:=input``):
    the letterbox padding is cut off, a crop's cut-away border gets ``fill``, then it is
    resized to the source size (nearest for class ids and masks, linear for scores)."""
    g = geometry
    values = np.asarray(values)
    if g.mode == "letterbox":
        values = values[g.pad_y:g.pad_y + g.resized_h, g.pad_x:g.pad_x + g.resized_w]
    elif g.mode == "crop" and (g.resized_h, g.resized_w) != values.shape[:2]:
        full = np.full((g.resized_h, g.resized_w) + values.shape[2:], fill, dtype=values.dtype)
        full[g.crop_y:g.crop_y + g.height, g.crop_x:g.crop_x + g.width] = values
        values = full
    if values.shape[:2] == (g.src_h, g.src_w):
        return np.ascontiguousarray(values)
    return cv2.resize(values, (g.src_w, g.src_h),
                      interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)
