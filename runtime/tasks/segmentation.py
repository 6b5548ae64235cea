"""Segmentation (task ``segmentation``): a class map per frame and nothing more, so every hook
keeps runtime.tasks.base's default."""
from runtime.tasks.base import Task


class SegmentationTask(Task):
    name = "segmentation"


TASK = SegmentationTask()
