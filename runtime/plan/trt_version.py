"""TensorRT version strings and CUDA compute capabilities, as the plan builder records them.

Plain Python (``tensorrt`` is never imported here): the builder, the calibration cache's side
file and rt-plan --print-trtexec read versions with it. Running a plan, and refusing one built for
another TensorRT or GPU, is libswiftrt's (runtime/native/src/backend_tensorrt.cpp).
"""
import re


def parse_version(text):
    """'8.5.2.2' -> (8, 5, 2); '10.3.0' -> (10, 3, 0); missing parts are 0."""
    parts = []
    for piece in str(text).strip().split(".")[:3]:
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group(0)))
    if not parts:
        raise ValueError("not a TensorRT version: {!r}".format(text))
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def version_string(version):
    """(8, 5, 2) or '8.5.2.2' -> '8.5.2'."""
    if not isinstance(version, tuple):
        version = parse_version(version)
    return "{}.{}.{}".format(*version)


def compute_capability(value):
    """'7.2', (7, 2), [7, 2], 72 or 'sm_72' -> '7.2'; None stays None."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return "{}.{}".format(int(value[0]), int(value[1]))
    if isinstance(value, int):
        return "{}.{}".format(value // 10, value % 10)
    text = str(value).strip().lower().replace("sm_", "").replace("sm", "").strip()
    if text.isdigit():  # 'sm_87' / '87'
        return compute_capability(int(text))
    return text
