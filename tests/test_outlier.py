"""Dense outlier detection (issue 7): swiftnet-rn18-ood, its checkpoints, the two-output
export, the runtime composition (Engine, rt-segment, report), rt-eval metrics and rt-train."""
import json
import os

import cv2
import numpy as np
import pytest

from runtime.data import cityscapes as cs

torch = pytest.importorskip("torch")

ARCH = "swiftnet-rn18-ood"
SIZE = (64, 128)  # the smallest export size: every stage down to 1/32 still exists


def _brute_force(scores, labels):
    """AP / AUROC / FPR at 95 % TPR by their definitions, one threshold at a time."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels)
    keep = (labels == 0) | (labels == 1)
    scores, labels = scores[keep], labels[keep]
    n_pos, n_neg = np.sum(labels == 1), np.sum(labels == 0)
    ap, prev_recall, fpr95 = 0.0, 0.0, None
    for t in np.unique(scores)[::-1]:  # decreasing thresholds, ties together
        chosen = scores >= t
        tp = np.sum(chosen & (labels == 1))
        fp = np.sum(chosen & (labels == 0))
        recall = tp / float(n_pos)
        ap += (recall - prev_recall) * tp / float(tp + fp)
        prev_recall = recall
        if fpr95 is None and recall >= 0.95:
            fpr95 = fp / float(n_neg)
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return {"ap": ap, "auroc": wins / float(n_pos * n_neg), "fpr_at_95_tpr": fpr95}


# -- model and checkpoints ------------------------------------------------------------------

def test_model_outputs_and_score_range():
    from export import models
    from export.models.swiftnet import outlier_score
    torch.manual_seed(0)
    model = models.create(ARCH).eval()
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        logits, conf = model(x)
        features = model.forward_features(x)
    assert logits.shape == (1, 19) + SIZE and conf.shape == (1, 2) + SIZE
    assert features.shape == (1, 128, SIZE[0] // 4, SIZE[1] // 4)
    score = outlier_score(conf)
    assert score.shape == (1,) + SIZE
    assert float(score.min()) >= 0.0 and float(score.max()) <= 1.0
    reference = 1.0 - torch.softmax(conf, dim=1)[:, 0]
    assert torch.allclose(score, reference, atol=1e-6)
    head = model.logits_conf
    assert head.conv.kernel_size == (1, 1) and head.conv.bias is not None
    assert head.conv.in_channels == 128 and head.conv.out_channels == 2


def test_rn18_checkpoints_load_with_a_new_head(tmp_path):
    from export import models
    from export.checkpoints import load_checkpoint, save_checkpoint
    torch.manual_seed(1)
    rn18 = models.create("swiftnet-rn18").eval()
    plain = tmp_path / "swiftnet_ss_cs.pt"  # the published March-2019 layout: a state_dict
    torch.save(rn18.state_dict(), str(plain))
    ours = tmp_path / "rn18_ours.pt"
    save_checkpoint(ours, rn18, "swiftnet-rn18", {"input_size": [64, 128]})
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        expected = rn18(x)
    for path, layout in ((plain, "march2019"), (ours, "swiftrt")):
        model, info = load_checkpoint(ARCH, path)
        assert info["layout"] == layout and info["new_head"] is True
        assert info["new_heads"] == ["logits_conf"]
        with torch.no_grad():
            logits, conf = model(x)
        assert torch.allclose(logits, expected, atol=1e-5)
        assert conf.shape == (1, 2) + SIZE
    # the plain architecture's own loads say no new head
    assert load_checkpoint("swiftnet-rn18", plain)[1]["new_head"] is False


def test_own_ood_checkpoints_load_strictly(tmp_path):
    from export import models
    from export.checkpoints import load_checkpoint, save_checkpoint
    from runtime.errors import UserError
    torch.manual_seed(2)
    model = models.create(ARCH).eval()
    path = tmp_path / "ood.pt"
    save_checkpoint(path, model, ARCH)
    loaded, info = load_checkpoint(ARCH, path)
    assert info["new_head"] is False
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # an OOD state_dict missing part of its head is an error, not a fresh head
    state = model.state_dict()
    del state["logits_conf.conv.bias"]
    broken = tmp_path / "broken.pt"
    torch.save(state, str(broken))
    with pytest.raises(UserError, match="logits_conf.conv.bias"):
        load_checkpoint(ARCH, broken)
    # and an OOD checkpoint is not a swiftnet-rn18 one
    with pytest.raises(UserError, match="is for arch"):
        load_checkpoint("swiftnet-rn18", path)


# -- export ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ood_checkpoint(tmp_path_factory):
    from export import models
    from export.checkpoints import save_checkpoint
    torch.manual_seed(3)
    model = models.create(ARCH).eval()
    # a head that says something: bias towards "inlier", so the scores spread around 0.5
    with torch.no_grad():
        model.logits_conf.conv.bias.copy_(torch.tensor([0.3, -0.3]))
    path = str(tmp_path_factory.mktemp("ckpt") / "ood.pt")
    save_checkpoint(path, model, ARCH)
    return path


@pytest.fixture(scope="module")
def ood_engine(ood_checkpoint, tmp_path_factory):
    from export.api import export
    out = str(tmp_path_factory.mktemp("engines") / "ood_fp32.onnx")
    export(ARCH, ood_checkpoint, SIZE, out, parity_images=2, log=lambda m: None)
    return out


def test_export_manifest_describes_both_outputs(ood_engine):
    from runtime import manifest
    data = manifest.Manifest.load(ood_engine).to_dict()
    assert data["task"] == "outlier"
    meanings = [(o["name"], o["meaning"], o["dtype"], o["shape"]) for o in data["outputs"]]
    assert meanings == [("class_map", "class_map", "uint8", [1, 64, 128]),
                        ("outlier_score", "outlier_score", "float32", [1, 64, 128])]
    assert data["outlier"]["default_threshold"] == 0.5
    assert data["outlier"]["score"] == "1 - P(inlier)"
    assert data["outlier"]["keep_fp32"] and all("logits_conf" in n for n in data["outlier"]["keep_fp32"])
    parity = data["parity"]
    assert parity["argmax_agreement"] >= 0.999
    assert parity["outlier_max_abs_error"] < 1e-4


def test_onnxruntime_matches_pytorch_on_both_outputs(ood_engine, ood_checkpoint):
    import onnxruntime as ort

    from export.checkpoints import load_checkpoint
    from export.onnx_export import DeployWrapper
    from export.scenes import render_scene
    model, info = load_checkpoint(ARCH, ood_checkpoint)
    wrapper = DeployWrapper(model, info["normalization"]).eval()
    frame = render_scene(seed=5, index=0, size=SIZE, outliers=True)[0]
    session = ort.InferenceSession(ood_engine, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["class_map", "outlier_score"]
    class_map, score = session.run(None, {"frame": frame[None]})
    with torch.no_grad():
        ref_map, ref_score = wrapper(torch.from_numpy(frame[None]))
    assert score.dtype == np.float32 and score.shape == (1,) + SIZE
    assert np.abs(score - ref_score.numpy()).max() < 1e-4
    assert np.mean(class_map == ref_map.numpy()) > 0.999
    assert 0.0 <= score.min() and score.max() <= 1.0


def test_parity_gate_checks_the_outlier_score(ood_engine, ood_checkpoint):
    from export import parity
    from export.checkpoints import load_checkpoint
    from export.onnx_export import DeployWrapper
    from export.scenes import render_scene
    model, info = load_checkpoint(ARCH, ood_checkpoint)
    with torch.no_grad():  # PyTorch's head now disagrees with the exported one
        model.logits_conf.conv.bias.add_(torch.tensor([-2.0, 2.0]))
    wrapper = DeployWrapper(model, info["normalization"])
    frames = [render_scene(seed=5, index=1, size=SIZE)[0][None]]
    with pytest.raises(parity.ParityError, match="outlier score"):
        parity.run_parity(wrapper, ood_engine, frames)


# -- runtime -------------------------------------------------------------------------------------

def test_engine_returns_the_outlier_score(ood_engine):
    import onnxruntime as ort

    from export.scenes import render_scene
    from runtime import open_engine
    engine = open_engine(ood_engine)
    frame = render_scene(seed=6, index=0, size=SIZE)[0]
    result = engine.segment(frame)
    assert result.class_map.shape == SIZE and result.class_map.dtype == np.uint8
    assert result.outlier_score.shape == SIZE and result.outlier_score.dtype == np.float32
    session = ort.InferenceSession(ood_engine, providers=["CPUExecutionProvider"])
    tensor = engine.preprocessor(frame)[0]   # the core's own preprocessing, as a tensor
    expected = session.run(["outlier_score"], {"frame": tensor})[0][0]
    assert np.allclose(result.outlier_score, expected)
    assert engine.outlier_threshold == 0.5 and engine.describe()["task"] == "outlier"


def test_visualizer_draws_outliers_only_above_the_threshold(ood_engine):
    from runtime import manifest
    from runtime.tasks.outlier import OUTLIER_COLOR, OutlierVisualizer
    from runtime.visualize import Visualizer
    data = manifest.Manifest.load(ood_engine)
    frame = np.full(SIZE + (3,), 100, np.uint8)
    class_map = np.zeros(SIZE, np.uint8)
    score = np.zeros(SIZE, np.float32)
    score[10:30, 20:60] = 0.9
    plain = Visualizer(data, legend=False, hud=False).render(frame, class_map)
    for view in ("mask", "heatmap"):
        vis = OutlierVisualizer(data, legend=False, hud=False, view=view)
        image = vis.render(frame, class_map, outlier_score=score)
        assert image.shape == plain.shape
        assert not np.array_equal(image[12:28, 22:58], plain[12:28, 22:58])
        if view == "mask":
            assert np.array_equal(image[40:, :], plain[40:, :])  # below the threshold: untouched
            assert (image[12:28, 22:58] == OUTLIER_COLOR).all(axis=2).any()
    high = OutlierVisualizer(data, legend=False, hud=False, threshold=0.95)
    assert np.array_equal(high.render(frame, class_map, outlier_score=score), plain)


def _write_video(path, frames=6):
    from export.scenes import render_scene
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (SIZE[1], SIZE[0]))
    for index in range(frames):
        writer.write(render_scene(seed=8, index=index, size=SIZE, outliers=True)[0])
    writer.release()
    return str(path)


def test_rt_segment_reports_outliers(ood_engine, tmp_path):
    from runtime.cli.segment import main
    video = _write_video(tmp_path / "drive.avi")
    report_path = tmp_path / "report.json"
    frames_dir = tmp_path / "frames"
    code = main(["--engine", ood_engine, "--video", video, "--output", str(tmp_path / "out.avi"),
                 "--save-frames", str(frames_dir), "--report", str(report_path),
                 "--outlier-threshold", "0.0", "--outlier-view", "heatmap", "--quiet"])
    assert code == 0
    report = json.loads(report_path.read_text())
    outliers = report["outliers"]
    assert outliers["threshold"] == 0.0 and outliers["frames"] == 6
    assert outliers["frames_with_outliers"] == 6  # every score is > 0
    assert outliers["pixels_per_frame"]["max"] == SIZE[0] * SIZE[1]
    assert 0.0 < outliers["fraction_per_frame"]["mean"] <= 1.0
    assert report["engine"]["task"] == "outlier"
    saved = cv2.imread(str(frames_dir / "000000_outlier.png"), cv2.IMREAD_UNCHANGED)
    assert saved.shape == SIZE and saved.dtype == np.uint8
    # the manifest's default threshold, and a threshold nothing exceeds
    report_path2 = tmp_path / "report2.json"
    assert main(["--engine", ood_engine, "--video", video, "--report", str(report_path2),
                 "--outlier-threshold", "1.0", "--max-frames", "2", "--quiet"]) == 0
    outliers = json.loads(report_path2.read_text())["outliers"]
    assert outliers["frames"] == 2 and outliers["frames_with_outliers"] == 0
    assert outliers["pixels_per_frame"] == {"mean": 0.0, "max": 0}


def test_rt_segment_outlier_flags_are_checked(ood_engine, tmp_path):
    from runtime.cli.segment import main
    from runtime.errors import UserError
    video = _write_video(tmp_path / "v.avi", frames=1)
    with pytest.raises(UserError, match="--outlier-view"):
        main(["--engine", ood_engine, "--video", video, "--outlier-view", "dots"])
    with pytest.raises(UserError, match="between 0 and 1"):
        main(["--engine", ood_engine, "--video", video, "--outlier-threshold", "2"])


def test_pipeline_without_outlier_output_has_no_outlier_summary():
    from runtime.tasks.outlier import OutlierCounter
    counter = OutlierCounter(0.5)
    assert counter.update(np.array([[0.2, 0.7], [0.5, 0.9]])) == 2
    assert counter.update(np.zeros((2, 2))) == 0
    summary = counter.summary()
    assert summary["frames"] == 2 and summary["frames_with_outliers"] == 1
    assert summary["pixels_per_frame"] == {"mean": 1.0, "max": 2}
    assert summary["fraction_per_frame"]["max"] == 0.5


# -- metrics --------------------------------------------------------------------------------------

def test_exact_metrics_match_brute_force_with_ties():
    from runtime.metrics import outlier_metrics_exact
    rng = np.random.RandomState(0)
    for trial in range(5):
        n = 400
        labels = (rng.rand(n) < 0.2).astype(np.uint8)
        labels[rng.rand(n) < 0.1] = 255  # void
        scores = np.round(rng.rand(n) * 0.6 + 0.4 * labels.clip(0, 1), 2)  # ties on purpose
        ours = outlier_metrics_exact(scores, labels)
        brute = _brute_force(scores, labels)
        for key in ("ap", "auroc", "fpr_at_95_tpr"):
            assert abs(ours[key] - brute[key]) < 1e-12, (trial, key, ours[key], brute[key])


def test_histogram_metrics_are_exact_on_the_bin_grid_and_close_otherwise():
    from runtime.metrics import OutlierHistogram, outlier_metrics_exact
    rng = np.random.RandomState(1)
    bins = 10000
    labels = (rng.rand(20000) < 0.1).astype(np.uint8)
    labels[rng.rand(labels.size) < 0.05] = 255
    continuous = np.clip(rng.normal(0.3 + 0.35 * (labels == 1), 0.2), 0, 1)
    on_grid = (np.floor(continuous * 100) + 0.5) / 100.0  # 100 levels, each inside one bin
    for scores, tolerance in ((on_grid, 1e-12), (continuous, 1e-3)):
        hist = OutlierHistogram(bins=bins)
        half = labels.size // 2  # accumulated in two images, as rt-eval does
        hist.update(scores[:half].reshape(100, -1), labels[:half].reshape(100, -1))
        hist.update(scores[half:], labels[half:])
        ours = hist.metrics()
        exact = outlier_metrics_exact(scores, labels)
        for key in ("ap", "auroc", "fpr_at_95_tpr"):
            assert abs(ours[key] - exact[key]) <= tolerance, (key, ours[key], exact[key])
    brute = _brute_force(on_grid[:3000], labels[:3000])
    small = OutlierHistogram(bins=bins)
    small.update(on_grid[:3000], labels[:3000])
    for key, value in small.metrics().items():
        assert abs(value - brute[key]) < 1e-12, key
    summary = small.summary()
    assert summary["bins"] == bins
    assert summary["outlier_pixels"] == int(np.sum(labels[:3000] == 1))
    assert summary["inlier_pixels"] == int(np.sum(labels[:3000] == 0))


def test_perfect_and_empty_scores():
    from runtime.metrics import OutlierHistogram
    hist = OutlierHistogram()
    hist.update(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0]))
    assert hist.metrics() == {"ap": 1.0, "auroc": 1.0, "fpr_at_95_tpr": 0.0}
    empty = OutlierHistogram()
    empty.update(np.array([0.5]), np.array([255]))
    assert empty.summary()["ap"] is None


@pytest.fixture(scope="module")
def outlier_dataset(tmp_path_factory):
    from export.scenes import render_scene
    root = str(tmp_path_factory.mktemp("outlier-data"))
    for index in range(2):
        image, label, mask = render_scene(seed=31, index=index, size=SIZE, outliers=True, split="val")
        cs.write_sample(root, "val", "oddtown", 0, index, image, label, outlier_mask=mask)
    return root


def test_rt_eval_reports_outlier_metrics(ood_engine, outlier_dataset, tmp_path, capsys):
    from runtime.cli.eval import main
    from runtime.metrics import OutlierHistogram
    out = tmp_path / "eval.json"
    assert main(["--engine", ood_engine, "--data", outlier_dataset, "--json", str(out),
                 "--quiet"]) == 0
    result = json.loads(out.read_text())
    outlier = result["outlier"]
    assert outlier["bins"] == 10000 and outlier["outlier_pixels"] > 0 and outlier["inlier_pixels"] > 0
    for key in ("ap", "auroc", "fpr_at_95_tpr"):
        assert 0.0 <= outlier[key] <= 1.0
    assert result["inlier_miou"] == result["miou"]
    assert "AUROC" in capsys.readouterr().out
    # the same numbers by hand: engine scores at the mask resolution, void ignored
    from runtime import open_engine
    engine = open_engine(ood_engine)
    hist = OutlierHistogram()
    for image_path, label_path in cs.find_pairs(outlier_dataset, "val"):
        score = engine.segment(cv2.imread(image_path)).outlier_score
        hist.update(score, cs.read_outlier_mask(cs.outlier_mask_path(label_path)))
    assert hist.summary() == outlier


# -- training ---------------------------------------------------------------------------------------

def test_negative_paster_targets():
    from export.training import NegativePaster
    image = np.full((64, 128, 3), 50, np.uint8)
    label = np.zeros((64, 128), np.uint8)
    label[:4] = 255  # ignore for another reason
    paster = NegativePaster(None)  # the generator's outlier objects
    for seed in range(10):
        new_image, new_label, target = paster(image, label, np.random.RandomState(seed))
        outlier = target == 1
        assert 0 < outlier.sum() <= 0.1 * label.size * 1.5
        assert (new_label[outlier] == 255).all()
        assert (target[:4] != 0).all() and set(np.unique(target)) <= {0, 1, 255}
        assert (new_label[~outlier & (label != 255)] == 0).all()
        assert not np.array_equal(new_image[outlier], image[outlier])
    assert (label[4:] == 0).all()  # the inputs are not modified


def test_in_scene_outliers_of_the_generator_are_outlier_targets(outlier_dataset):
    from export.training import NegativePaster, SegmentationFolder
    from export.models.swiftnet import IMAGENET_NORMALIZATION
    pairs = cs.find_pairs(outlier_dataset, "val")
    tiny = NegativePaster(None, min_area=1e-4, max_area=2e-4)
    data = SegmentationFolder(pairs, IMAGENET_NORMALIZATION, train=False, negatives=tiny)
    seen = 0
    for index, (_, label_path) in enumerate(pairs):
        mask = cs.read_outlier_mask(cs.outlier_mask_path(label_path))
        _, label, target = data[index]
        in_scene = mask == cs.OUTLIER
        seen += int(in_scene.sum())
        assert (target.numpy()[in_scene] == 1).all() and (label.numpy()[in_scene] == 255).all()
        assert (label.numpy() != 254).all()  # the carrier value never reaches the loss
    assert seen > 0
    # Plain segmentation training reads no masks: the label is untouched.
    plain = SegmentationFolder(pairs, IMAGENET_NORMALIZATION, train=False)
    assert np.array_equal(plain[0][1].numpy(), cs.read_label(pairs[0][1]))


def test_negatives_from_a_folder(tmp_path):
    from export.training import NegativePaster
    from runtime.errors import UserError
    with pytest.raises(UserError, match="no images"):
        NegativePaster.from_folder(str(tmp_path))
    cv2.imwrite(str(tmp_path / "n.png"), np.full((40, 60, 3), (0, 0, 255), np.uint8))
    paster = NegativePaster.from_folder(str(tmp_path))
    image = np.zeros((64, 128, 3), np.uint8)
    areas = []
    for seed in range(20):
        new_image, _, target = paster(image, np.zeros((64, 128), np.uint8), np.random.RandomState(seed))
        outlier = target == 1
        areas.append(outlier.mean())
        assert (new_image[outlier][:, 0] == 255).all()  # RGB: the red of the BGR file
        assert (new_image[~outlier] == 0).all()
    assert 0.0005 <= min(areas) and max(areas) <= 0.11


def test_tiny_ood_training_lowers_the_loss_and_loads(tmp_path):
    from export.checkpoints import load_checkpoint
    from export.training import TrainOptions, train
    from export.scenes import write_split
    root = str(tmp_path / "data")
    write_split(root, split="train", count=2, seed=0, size=SIZE)
    write_split(root, split="val", count=1, seed=1, size=SIZE)
    out = str(tmp_path / "ood.pt")
    threads = torch.get_num_threads()
    try:  # one thread: on a loaded 2-core machine more threads spin instead of working
        result = train(ARCH, root, out, TrainOptions(iterations=10, batch_size=2, crop=SIZE, lr=3e-3,
                       warmup=1, val_every=10, scale=(1.0, 1.0), flip=False, threads=1, progress=False,
                       log=lambda m: None))
    finally:
        torch.set_num_threads(threads)
    assert result["loss_last"] < result["loss_first"]
    assert result["outlier_loss_last"] < result["outlier_loss_first"]
    model, info = load_checkpoint(ARCH, out)
    assert info["layout"] == "swiftrt" and info["new_head"] is False
    metrics = info["metadata"]["metrics"]
    assert metrics["step"] == 10 and 0.0 <= metrics["val_miou"] <= 1.0
    assert 0.0 <= metrics["val_outlier"]["ap"] <= 1.0 and metrics["val_outlier"]["outlier_pixels"] > 0
    assert info["metadata"]["outlier"]["outlier_weight"] == 0.2


def test_log_uniform_negative_area_gives_small_negatives_their_share():
    from export.training import NegativePaster
    from runtime.errors import UserError
    image = np.full((64, 128, 3), 50, np.uint8)
    label = np.zeros((64, 128), np.uint8)
    shares = {}
    for log_area in (False, True):
        paster = NegativePaster(None, min_area=0.002, max_area=0.1, log_area=log_area)
        areas = [(paster(image, label, np.random.RandomState(seed))[2] == 1).mean() for seed in range(60)]
        shares[log_area] = np.mean(np.array(areas) < 0.01)
    # below 1 % of the image: ~8 % of uniform draws, ~40 % of log-uniform ones (alpha masks cover less)
    assert shares[True] > 0.3 and shares[True] > shares[False] + 0.2
    with pytest.raises(UserError, match="negative area"):
        NegativePaster(None, min_area=0.1, max_area=0.01)


def test_frozen_encoder_training_changes_only_the_decoder_and_heads(tmp_path):
    from export import models
    from export.checkpoints import load_checkpoint
    from export.training import TrainOptions, train
    from export.scenes import write_split
    root = str(tmp_path / "data")
    write_split(root, split="train", count=2, seed=0, size=SIZE, outliers=1.0)
    write_split(root, split="val", count=1, seed=1, size=SIZE)
    torch.manual_seed(0)
    start = models.create(ARCH).state_dict()
    out = str(tmp_path / "ood.pt")
    threads = torch.get_num_threads()
    try:
        train(ARCH, root, out, TrainOptions(iterations=3, batch_size=2, crop=SIZE, lr=3e-3, warmup=1,
              val_every=3, scale=(1.0, 1.0), flip=False, threads=1, seed=0, progress=False,
              log=lambda m: None, freeze_encoder=True))
    finally:
        torch.set_num_threads(threads)
    trained = load_checkpoint(ARCH, out)[0].state_dict()
    encoder = [k for k in start if k.startswith("backbone.") and not k.startswith(("backbone.spp", "backbone.upsample"))]
    assert encoder and all(torch.equal(start[k], trained[k]) for k in encoder)  # weights and BN statistics
    assert not torch.equal(start["logits_conf.conv.weight"], trained["logits_conf.conv.weight"])
    assert not all(torch.equal(start[k], trained[k]) for k in start if k.startswith("backbone.upsample"))


def test_int8_keeps_the_outlier_head_in_fp32(ood_engine):
    """calib.int8.export_int8 adds the manifest's outlier-head nodes to its keep-FP32 list
    (those the prepared model still has)."""
    import onnx

    from calib.qdq import manifest_keep_fp32
    from runtime import manifest
    data = manifest.Manifest.load(ood_engine)
    model = onnx.load(ood_engine)
    head = data.outlier["keep_fp32"]
    assert manifest_keep_fp32(data, model, log=lambda m: None) == head
    assert manifest_keep_fp32(data, model, already=head[:1], log=lambda m: None) == head[1:]
    model.graph.node[[n.name for n in model.graph.node].index(head[0])].name = "merged"
    assert manifest_keep_fp32(data, model, log=lambda m: None) == head[1:]
    plain = data.derive(outlier=None)
    assert manifest_keep_fp32(plain, model, log=lambda m: None) == []


def test_fp16_keeps_the_outlier_head_in_fp32(ood_engine, tmp_path):
    """An FP16 export leaves the manifest's outlier-head nodes in FP32 (the rest of the network
    in FP16) and still gives both outputs."""
    import onnx

    from calib import fp16
    from runtime import manifest
    out = str(tmp_path / "ood_fp16.onnx")
    data = fp16.export_fp16(ood_engine, out, agreement_images=1, progress=False).to_dict()
    head = manifest.Manifest.load(ood_engine).outlier["keep_fp32"]
    kept = data["fp16"]["fp32_nodes"]["keep_fp32"]
    assert kept and set(kept) <= set(head)
    model = onnx.load(out)
    weights = dict((t.name, t.data_type) for t in model.graph.initializer)
    nodes = dict((n.name, n) for n in model.graph.node)
    head_convs = [nodes[name] for name in kept if nodes[name].op_type == "Conv"]
    assert head_convs and all(weights[c.input[1]] == onnx.TensorProto.FLOAT for c in head_convs)
    other_convs = [n for n in model.graph.node if n.op_type == "Conv" and n.name not in kept]
    assert other_convs and all(weights[c.input[1]] == onnx.TensorProto.FLOAT16 for c in other_convs)
    from runtime import open_engine
    engine = open_engine(out)
    try:
        frame = np.zeros((64, 128, 3), np.uint8)
        outputs = engine.infer(engine.preprocess(frame)[0])
        score = engine.outlier_score(outputs)
        assert score is not None and np.all((score >= 0) & (score <= 1))
    finally:
        engine.close()


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_plans_keep_the_outlier_head_in_fp32(ood_engine, tmp_path, precision):
    """build_plan passes the manifest's outlier-head layers to the builder as FP32 layers."""
    from runtime.plan.build import build_plan
    from runtime import manifest
    from runtime.errors import UserError
    seen = {}

    def recording_build(onnx_path, plan_path, **options):
        seen.update(options)
        raise UserError("recorded")

    with pytest.raises(UserError, match="recorded"):
        build_plan(ood_engine, str(tmp_path / "ood.plan"), precision=precision, int8_mode="qdq",
                   fp32_layers=("/model/logits/conv/Conv",), build=recording_build, log=lambda m: None,
                   open_plan=lambda path, manifest: None)   # never reached: the build stops first
    head = manifest.Manifest.load(ood_engine).outlier["keep_fp32"]
    assert seen["fp32_layers"] == ("/model/logits/conv/Conv",) + tuple(head)


# -- breakdown by outlier kind / size / lighting and the score plot (issue 22) ---------------------

@pytest.fixture(scope="module")
def described_outliers(tmp_path_factory, run_cli_subprocess_module):
    """A generated split whose every image has outlier objects, with the generator's sidecars."""
    root = str(tmp_path_factory.mktemp("described"))
    done = run_cli_subprocess_module("export.synth_cli", "split", root, "--split", "val", "--count", 8,
                                     "--seed", 31, "--outliers", 1.0, "--size", "64x128", "-q")
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def run_cli_subprocess_module():
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def run(module, *args):
        return subprocess.run([sys.executable, "-m", module] + [str(a) for a in args],
                              capture_output=True, text=True, cwd=repo, timeout=300)
    return run


def test_generator_sidecars_describe_the_outlier_mask(described_outliers):
    from export.scenes import render_scene
    pairs = cs.find_pairs(described_outliers, "val")
    objects = 0
    for index, (image_path, label_path) in enumerate(pairs):
        mask = cs.read_outlier_mask(cs.outlier_mask_path(label_path))
        instances, info = cs.read_outlier_details(label_path)
        # the instance map covers exactly the outlier pixels, one id per described object
        assert np.array_equal(instances > 0, mask == cs.OUTLIER)
        ids = sorted(int(v) for v in np.unique(instances) if v)
        assert ids == sorted(o["id"] for o in info["objects"])
        for obj in info["objects"]:
            assert obj["pixels"] == int(np.count_nonzero(instances == obj["id"])) > 0
            assert obj["shape"] in ("blob", "animal", "boxes", "ring", "star")
            assert obj["texture"] in ("checker", "stripes", "noise", "solid", "dots", "gradient")
            objects += 1
        assert set(info["image"]) >= {"sunny", "mean_luma"}
        # the written image and mask are those of render_scene: the sidecars change nothing
        city, seq, _ = cs.parse_name(image_path)
        image, _, scene_mask = render_scene(31, seq, (64, 128), outliers=True, split="val")
        assert np.array_equal(cv2.imread(image_path), image) and np.array_equal(scene_mask, mask)
    assert objects >= len(pairs)


def test_rt_eval_breaks_outlier_ap_down_and_plots(ood_engine, described_outliers, tmp_path,
                                                   run_cli_subprocess_module):
    from runtime.metrics import OutlierHistogram
    out, plot = tmp_path / "eval.json", tmp_path / "scores.png"
    done = run_cli_subprocess_module("runtime.cli.eval", "--engine", ood_engine, "--data", described_outliers,
                                     "--json", out, "--plot", plot, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "by kind:" in done.stdout
    result = json.loads(out.read_text())
    outlier, breakdown = result["outlier"], result["outlier"]["breakdown"]
    pairs = cs.find_pairs(described_outliers, "val")
    records = [cs.read_outlier_details(label_path)[1] for _, label_path in pairs]
    n_objects = sum(len(r["objects"]) for r in records)
    # every attribute partitions the outlier pixels (and objects / images) of the split
    for attribute in ("kind", "texture", "size", "distance", "position", "contrast"):
        groups = breakdown[attribute]
        assert sum(g["outlier_pixels"] for g in groups.values()) == outlier["outlier_pixels"]
        assert sum(g["objects"] for g in groups.values()) == n_objects
    for attribute in ("lighting", "exposure"):
        groups = breakdown[attribute]
        assert sum(g["outlier_pixels"] for g in groups.values()) == outlier["outlier_pixels"]
        assert sum(g["inlier_pixels"] for g in groups.values()) == outlier["inlier_pixels"]
        assert sum(g["images"] for g in groups.values()) == len(pairs)
    # one kind by hand: its objects' pixels against all inlier pixels of the split
    from runtime import open_engine
    engine = open_engine(ood_engine)
    kind = sorted(breakdown["kind"])[0]
    hist = OutlierHistogram()
    for (image_path, label_path), record in zip(pairs, records):
        score = engine.segment(cv2.imread(image_path)).outlier_score
        mask = cs.read_outlier_mask(cs.outlier_mask_path(label_path))
        instances = cs.read_outlier_details(label_path)[0]
        ids = [o["id"] for o in record["objects"] if o["shape"] == kind]
        target = np.where(mask == 0, 0, 255).astype(np.uint8)
        target[np.isin(instances, ids) & (mask == 1)] = 1
        hist.update(score, target)
    expected = hist.metrics()
    for key in ("ap", "auroc", "fpr_at_95_tpr"):
        assert breakdown["kind"][kind][key] == pytest.approx(expected[key], abs=1e-12)
    picture = cv2.imread(str(plot))
    assert picture is not None and picture.shape[0] > 100 and picture.std() > 0


def test_rt_eval_plot_needs_an_outlier_engine(rn18_engine, described_outliers, tmp_path,
                                               run_cli_subprocess_module):
    done = run_cli_subprocess_module("runtime.cli.eval", "--engine", rn18_engine, "--data", described_outliers,
                                     "--plot", tmp_path / "p.png", "--quiet")
    assert done.returncode == 2 and "no outlier_score output" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "p.png").exists()
