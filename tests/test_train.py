"""rt-train: a tiny real training run on generated Cityscapes-format data."""
import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from export.scenes import write_split
    root = str(tmp_path_factory.mktemp("synthetic"))
    write_split(root, split="train", count=2, seed=0, size=(64, 128))
    write_split(root, split="val", count=2, seed=1, size=(64, 128))
    return root


def test_training_lowers_the_loss_and_writes_a_loadable_checkpoint(tiny_dataset, tmp_path):
    from export.checkpoints import load_checkpoint
    from export.training import TrainOptions, train
    out = str(tmp_path / "tiny.pt")
    result = train("swiftnet-rn18", tiny_dataset, out, TrainOptions(
        iterations=12, batch_size=2, crop=(64, 128), lr=3e-3, warmup=1, val_every=12, scale=(1.0, 1.0),
        flip=False, progress=False, log=lambda m: None))
    assert result["loss_last"] < result["loss_first"]
    model, info = load_checkpoint("swiftnet-rn18", out)
    assert info["layout"] == "swiftrt"
    assert info["input_size"] == [64, 128]
    assert len(info["classes"]) == 19
    metrics = info["metadata"]["metrics"]
    assert metrics["step"] == 12 and 0.0 <= metrics["val_miou"] <= 1.0


def test_training_without_data_is_a_user_error(tmp_path):
    from export.training import TrainOptions, train
    from runtime.errors import UserError
    with pytest.raises(UserError, match="Cityscapes-format"):
        train("swiftnet-rn18", str(tmp_path), str(tmp_path / "x.pt"), TrainOptions(iterations=1,
              progress=False, log=lambda m: None))


@pytest.mark.parametrize("changes, needle", [
    ({"iterations": 0}, "--iterations must be at least 1"),
    ({"weight_decay": float("inf")}, "--weight-decay must be a finite non-negative number"),
    ({"outlier_weight": -1.0}, "--outlier-weight must be a finite non-negative number"),
])
def test_train_checks_its_options_before_any_work(tmp_path, changes, needle):
    """A programmatic caller gets rt-train's one-line errors (export.training.check_numbers)."""
    from export.training import TrainOptions, train
    from runtime.errors import UserError
    with pytest.raises(UserError, match=needle):
        train("swiftnet-rn18", str(tmp_path), str(tmp_path / "x.pt"), TrainOptions(progress=False, **changes))
    assert not (tmp_path / "x.pt").exists()
