"""Inputs for the post-build plan-vs-ONNX check, made on the device itself.

rt-plan runs on the Jetson, where the workstation's scene generator (export/scenes.py) is not.
The check needs inputs that drive the network through its whole range, not just noise (on
uniform noise a segmentation network answers almost one class, so a plan that is wrong on real
structure could still agree). So by default a deterministic structured pattern is built with
numpy: gradients, colour blocks, stripes, a disc and some noise, different per index. With
``source`` (a folder of images or a video) the user's own frames are used instead. Either way the
frames are preprocessed exactly as the runtime does (runtime.preprocess.Preprocessor).
"""
import numpy as np

from runtime.errors import UserError
from runtime.preprocess import Preprocessor
from runtime.sources import EndOfStream, open_source

DEFAULT_SEED = 4242


def pattern(size, index, seed=DEFAULT_SEED):
    """A BGR uint8 frame of ``size`` (h, w): smooth gradients under colour blocks, stripes, a
    disc and mild noise; deterministic in (seed, index)."""
    height, width = int(size[0]), int(size[1])
    rng = np.random.RandomState((int(seed) * 7919 + int(index)) % (2 ** 32))
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    image = np.empty((height, width, 3), np.float32)
    for channel in range(3):  # a different ramp per channel: sky-like top, ground-like bottom
        a, b, c = rng.uniform(-1.0, 1.0, 3)
        image[..., channel] = 128.0 + 100.0 * np.clip(a * y + b * x + c * x * y, -1.0, 1.0)
    for _ in range(rng.randint(6, 12)):  # flat colour blocks (objects with edges)
        h = rng.randint(max(1, height // 16), max(2, height // 2))
        w = rng.randint(max(1, width // 16), max(2, width // 3))
        top, left = rng.randint(0, max(1, height - h)), rng.randint(0, max(1, width - w))
        image[top:top + h, left:left + w] = rng.uniform(0, 255, 3)
    period = rng.randint(4, 24)  # stripes (lane marks, fences, windows)
    band = slice(rng.randint(0, max(1, height // 2)), None)
    stripes = ((np.arange(width) // period) % 2).astype(np.float32)[None, :, None]
    image[band] = image[band] * (0.6 + 0.4 * stripes)
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)  # a disc (a round object)
    radius = rng.uniform(0.05, 0.25) * min(height, width)
    yy, xx = np.ogrid[:height, :width]
    image[(yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] = rng.uniform(0, 255, 3)
    image += rng.normal(0.0, 6.0, image.shape).astype(np.float32)  # sensor-like noise
    return np.clip(image, 0, 255).astype(np.uint8)


def read_frames(source, count):
    """Up to ``count`` decodable BGR frames of a folder of images or a video (fewer if it has fewer)."""
    frames = []
    with open_source(str(source), reconnect=0) as stream:
        while len(frames) < count:
            try:
                frame = stream.read()
            except EndOfStream:
                break
            if frame is not None:
                frames.append(frame)
    if not frames:
        raise UserError("--check-images {}: no frame could be read".format(source))
    return frames


def check_inputs(manifest, count, source=None, seed=DEFAULT_SEED):
    """The input tensors of the check: ``count`` frames (patterns, or read from ``source``)
    preprocessed as the runtime does, or (a forecast stage that takes features) standardized
    features drawn from N(0, 1)."""
    spec = manifest.input
    if spec.kind == "features":
        rng = np.random.RandomState(seed)
        shape = [int(d) for d in spec.shape]
        return [rng.standard_normal(shape).astype(spec.dtype) for _ in range(count)]
    pre = Preprocessor(spec)
    if source is not None:
        frames = read_frames(source, count)
    else:
        size = spec.size
        frames = [pattern(size, i, seed) for i in range(count)]
    return [pre(frame)[0] for frame in frames]


def describe(source):
    """What the check ran on, for the log and the plan's manifest."""
    return "frames of {}".format(source) if source is not None else "generated patterns"
