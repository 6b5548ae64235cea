"""sensor_msgs <-> numpy for the ROS 2 node, without cv_bridge.

cv_bridge is not on PyPI and on JetPack it is built against the system OpenCV, so the
node converts the few encodings it takes and gives itself: bgr8 / rgb8 (and jpeg / png
CompressedImage) in; mono8, bgr8 and 32FC1 out. Message classes are passed in (the
node imports them lazily), so this module needs neither rclpy nor the message packages.

Sequences of uint8 arrive as ``array.array('B')`` (rclpy since Dashing) and are viewed,
not copied; outgoing data is handed over as ``array.array('B')``, the generated
setters' fast path (a ``bytes`` would be checked element by element).
"""
import array
import sys

import cv2
import numpy as np

RAW_ENCODINGS = ("bgr8", "rgb8")
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
    """sensor_msgs/Image (bgr8 or rgb8, any row step) -> HxWx3 BGR uint8 frame."""
    encoding = msg.encoding
    if encoding not in RAW_ENCODINGS:
        raise RefusedImage("encoding {!r} is not supported; publish {} (or use transport:="
                           "compressed)".format(encoding, " or ".join(RAW_ENCODINGS)))
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = _bytes_view(msg.data)
    if height < 1 or width < 1 or step < width * 3 or data.size < step * height:
        raise RefusedImage("malformed {} image: {}x{}, step {}, {} bytes of data".format(
            encoding, width, height, step, data.size))
    frame = data[:step * height].reshape(height, step)[:, :width * 3].reshape(height, width, 3)
    if encoding == "rgb8":
        frame = frame[:, :, ::-1]
    return np.ascontiguousarray(frame)


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

    ``encoding``: mono8 (uint8 HxW), bgr8 (uint8 HxWx3) or 32FC1 (float32 HxW, host byte order).
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
