"""Frames for the post-build plan-vs-ONNX check (runtime.plan.check), found on the device itself.

rt-plan runs on the Jetson, where the workstation's scene generator (export/scenes.py) is not.
The check needs inputs like the ones the network will see: on colour patterns or noise a
network trained on roads answers far from its training distribution, where FP32 and INT8
legitimately disagree more than the check's limits allow (measured: 3-8 % of class decisions
on patterns vs 0.1-0.3 % on road scenes, ONNX Runtime INT8 vs FP32). So the package ships four
generated road scenes (check_frames/scene_<i>.jpg, written by export.scenes.write_check_frames,
256x512) and the check runs on them by default; with ``source`` (a folder of images or a video)
the user's own frames are used instead. The check hands the camera frames to libswiftrt, which
preprocesses them as it does every frame, so they fit any input size. ``batched`` groups
preprocessed tensors for a batch-N model (the export's parity gate, export/api.py).
"""
import glob
import os

import cv2
import numpy as np

from runtime.errors import UserError
from runtime.sources import EndOfStream, open_source

CHECK_FRAMES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_frames")


def shipped_frames(count):
    """``count`` BGR frames from the shipped road scenes (a second pass mirrors them, so that
    more than four checks are still different inputs)."""
    paths = sorted(glob.glob(os.path.join(CHECK_FRAMES, "scene_*.jpg")))
    scenes = [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]
    if not scenes or any(s is None for s in scenes):
        raise UserError("the plan check's scenes are missing or unreadable in {} (reinstall the "
                        "runtime, or give --check-images)".format(CHECK_FRAMES))
    frames = []
    for index in range(count):
        frame = scenes[index % len(scenes)]
        frames.append(frame[:, ::-1].copy() if (index // len(scenes)) % 2 else frame)
    return frames


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


def check_frames(count, source=None):
    """The check's BGR frames: ``count`` of the shipped scenes, or up to ``count`` of ``source``."""
    return read_frames(source, count) if source is not None else shipped_frames(count)


def batched(tensors, batch):
    """Batch-1 tensors -> tensors of ``batch`` frames, what a batch-N model (rt-export --batch
    N) takes; the last one is filled up with the first frames again."""
    if batch == 1:
        return tensors
    groups = []
    for start in range(0, len(tensors), batch):
        group = tensors[start:start + batch]
        groups.append(np.concatenate(group + [tensors[i % len(tensors)]
                                              for i in range(batch - len(group))]))
    return groups


def describe(source):
    """What the check ran on, for the log and the plan's manifest."""
    return "frames of {}".format(source) if source is not None else "the shipped road scenes"
