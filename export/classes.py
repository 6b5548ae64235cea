"""Class lists for manifests: Cityscapes' 19 train classes from the one table, runtime.data.classes
(which mirrors cityscapesscripts' label definitions; tests/test_synthetic.py checks that it does)."""
from runtime.data.classes import CLASSES, IGNORE_ID

__all__ = ["cityscapes_classes", "IGNORE_ID"]


def cityscapes_classes():
    """Cityscapes' 19 train classes as manifest entries: [{id, name, color (RGB)}]."""
    return [{"id": int(c.train_id), "name": c.name, "color": [int(v) for v in c.color]} for c in CLASSES]
