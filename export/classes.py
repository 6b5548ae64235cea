"""Class lists for manifests, taken from cityscapesscripts' label definitions."""


def cityscapes_classes():
    """Cityscapes' 19 train classes as manifest entries: [{id, name, color (RGB)}]."""
    from cityscapesscripts.helpers.labels import labels
    by_train_id = {}
    for label in labels:
        if 0 <= label.trainId < 255 and label.trainId not in by_train_id:
            by_train_id[label.trainId] = {"id": int(label.trainId), "name": label.name,
                                          "color": [int(c) for c in label.color]}
    return [by_train_id[i] for i in sorted(by_train_id)]


IGNORE_ID = 255
