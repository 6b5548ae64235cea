"""Training the registry's networks on Cityscapes-format folders: the library under rt-train (export/train.py).

Works unchanged on real Cityscapes (leftImg8bit/ + gtFine/*_labelTrainIds.png, or
*_labelIds.png mapped to train ids) and on the generator's synthetic scenes.
Random scale / crop / flip, ignore id, AdamW with a warm-up + cosine schedule,
validation mIoU, checkpoints in our format (see export/checkpoints.py).

Architectures with an outlier head (``swiftnet-rn18-ood``) train on negatives pasted into
the inlier images (:class:`NegativePaster`): one per training image at a random place,
covering 0.1 %-10 % of it, taken from ``--negatives DIR`` (crops of any images) or from
the generator's ``outlier_object``; there the segmentation label is ignore (255) and the
outlier target 1 (0 elsewhere, 255 where the label is ignore for other reasons). Outlier
objects the generator rendered into the scene (``*_gtFine_outlierMask.png`` beside a
label, ``rt-synth split --outliers``) are outlier targets too. The loss
is segmentation CE + ``--outlier-weight`` (0.2) x outlier CE. Validation pastes negatives
the same way, deterministically per image, and adds outlier AP / AUROC / FPR at 95 % TPR
to the inlier mIoU.
"""
import dataclasses
import math
import os
import time
from typing import Callable, Optional, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from runtime.data.cityscapes import OUTLIER, find_pairs, outlier_mask_path, read_label, read_outlier_mask
from runtime.errors import UserError
from runtime.metrics import ConfusionMatrix, OutlierHistogram

NEGATIVE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp")
IN_SCENE_OUTLIER = 254  # label value carrying an outlier-mask pixel through augmentation


# Mixed precision for the forward pass: bf16 roughly halves CPU training time where the
# CPU has bf16 instructions (AVX512-BF16/AMX); fp16 is for CUDA.
_AMP_DTYPES = {None: torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def normalization_coefficients(norm):
    """(mul, add) per channel with (x * scale - mean) / std == x * mul + add, in float32.

    Training's own copy of the normalization the exporter records in the manifest: augmented
    crops never pass through the runtime, so the data pipeline normalizes them itself, in the
    same float32 arithmetic the core uses for a host-normalized input (libswiftrt's
    fold_normalization). The runtime computes nothing here: it takes scale, mean and std from
    the manifest and hands them to the core.
    """
    std = np.asarray(norm["std"], dtype=np.float32)
    mul = (np.float32(norm["scale"]) / std).astype(np.float32)
    add = (-np.asarray(norm["mean"], dtype=np.float32) / std).astype(np.float32)
    return mul, add


class NegativePaster(object):
    """Pastes one negative (outlier) into an RGB image and makes the targets.

    ``images``: paths of negative images (a random crop of one is pasted as a box), or
    None for the generator's ``outlier_object`` (pasted with its alpha mask). The pasted
    area is uniform in [min_area, max_area] of the image, or log-uniform with ``log_area``:
    uniform sampling puts half the negatives above 5 % of the image, while the outliers a
    road scene shows are mostly far smaller (issue 22: objects under 1 % of the image were
    the ones missed), so log-uniform gives every size decade the same share.
    """

    def __init__(self, images=None, min_area=0.001, max_area=0.1, ignore_id=255, log_area=False):
        self.images = list(images) if images else None
        self.min_area, self.max_area = float(min_area), float(max_area)
        if not 0.0 < self.min_area <= self.max_area <= 1.0:
            raise UserError("negative area must satisfy 0 < min <= max <= 1, got {} and {}".format(
                min_area, max_area))
        self.log_area = bool(log_area)
        self.ignore_id = ignore_id

    @classmethod
    def from_folder(cls, folder, **kwargs):
        if not os.path.isdir(folder):
            raise UserError("--negatives {}: not a folder".format(folder))
        images = sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                        for name in names if name.lower().endswith(NEGATIVE_EXTENSIONS))
        if not images:
            raise UserError("--negatives {}: no images ({})".format(
                folder, ", ".join(NEGATIVE_EXTENSIONS)))
        return cls(images, **kwargs)

    def _object(self, rng, area, aspect):
        """(patch RGB uint8, alpha float32 0..1) whose opaque part covers about ``area`` px."""
        if self.images is None:
            from export.scenes import outlier_object
            patch, alpha = outlier_object(rng.randint(0, 2 ** 31 - 1), rng.randint(0, 10 ** 6))
            patch = np.ascontiguousarray(patch[:, :, ::-1])
            coverage = max(float(np.mean(alpha > 127)), 0.05)
            aspect = alpha.shape[0] / float(alpha.shape[1])
            box = area / coverage
        else:
            path = self.images[rng.randint(0, len(self.images))]
            source = cv2.imread(path, cv2.IMREAD_COLOR)
            if source is None:
                raise UserError("cannot read negative image {}".format(path))
            sh, sw = source.shape[:2]
            ch = max(1, int(round(min(sh, sw * aspect) * rng.uniform(0.3, 1.0))))
            cw = max(1, min(sw, int(round(ch / aspect))))
            y, x = rng.randint(0, sh - ch + 1), rng.randint(0, sw - cw + 1)
            patch = np.ascontiguousarray(source[y:y + ch, x:x + cw, ::-1])
            alpha = np.full(patch.shape[:2], 255, np.uint8)
            box = area
        return patch, alpha, box, aspect

    def __call__(self, image, label, rng=np.random):
        """(image with the negative, label with ignore there, outlier target) for RGB ``image``."""
        image, label = np.array(image, copy=True), np.array(label, copy=True)
        height, width = label.shape
        target = np.where(label == self.ignore_id, self.ignore_id, 0).astype(np.uint8)
        if self.log_area:
            area = float(np.exp(rng.uniform(np.log(self.min_area), np.log(self.max_area)))) * height * width
        else:
            area = rng.uniform(self.min_area, self.max_area) * height * width
        aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        patch, alpha, box, aspect = self._object(rng, area, aspect)
        ph = int(np.clip(round(np.sqrt(box * aspect)), 2, height))
        pw = int(np.clip(round(np.sqrt(box / aspect)), 2, width))
        patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (pw, ph), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        y, x = rng.randint(0, height - ph + 1), rng.randint(0, width - pw + 1)
        region = image[y:y + ph, x:x + pw].astype(np.float32)
        a = alpha[..., None]
        image[y:y + ph, x:x + pw] = (region * (1.0 - a) + patch * a + 0.5).astype(np.uint8)
        inside = alpha > 0.5
        label[y:y + ph, x:x + pw][inside] = self.ignore_id
        target[y:y + ph, x:x + pw][inside] = 1
        return image, label, target


class SegmentationFolder(Dataset):
    """Image/label pairs of a Cityscapes-format folder, augmented for training.

    With ``negatives`` (a :class:`NegativePaster`) items are (image, label, outlier
    target) with one negative pasted (for validation deterministically per image).
    """

    def __init__(self, pairs, normalization, crop=None, scale=(0.75, 1.5), flip=True,
                 train=True, ignore_id=255, size=None, negatives=None):
        self.negatives = negatives
        self.pairs = pairs
        self.crop = crop
        self.scale = scale
        self.flip = flip
        self.train = train
        self.ignore_id = ignore_id
        self.size = size  # (H, W) every image is first resized to (the network's input size)
        self.mul, self.add = normalization_coefficients(normalization)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        image_path, label_path = self.pairs[index]
        image = cv2.imread(image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise UserError("cannot read image {}".format(image_path))
        image = image[:, :, ::-1]  # RGB
        label = read_label(label_path)
        if self.negatives is not None:
            # Outliers the generator placed in the scene (a mask beside the label) are positives of
            # the outlier head like pasted negatives; they ride through augmentation inside the label.
            mask_path = outlier_mask_path(label_path)
            if os.path.exists(mask_path):
                label = np.where(read_outlier_mask(mask_path) == OUTLIER, IN_SCENE_OUTLIER, label).astype(np.uint8)
        if self.size is not None and image.shape[:2] != tuple(self.size):
            image = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)
            label = cv2.resize(label, (self.size[1], self.size[0]), interpolation=cv2.INTER_NEAREST)
        if self.train:
            image, label = self._augment(image, label)
        target = None
        if self.negatives is not None:
            in_scene = label == IN_SCENE_OUTLIER
            label = np.where(in_scene, np.uint8(self.ignore_id), label)
            rng = np.random if self.train else np.random.RandomState(100003 + index)
            image, label, target = self.negatives(image, label, rng)
            target[in_scene] = 1
        image = image.astype(np.float32) * self.mul + self.add
        item = (torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                torch.from_numpy(np.ascontiguousarray(label)).long())
        if target is not None:
            item += (torch.from_numpy(target).long(),)
        return item

    def _augment(self, image, label):
        rng = np.random
        factor = rng.uniform(*self.scale)
        height, width = label.shape
        new_h, new_w = int(round(height * factor)), int(round(width * factor))
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
        if self.crop:
            ch, cw = self.crop
            pad_h, pad_w = max(0, ch - new_h), max(0, cw - new_w)
            if pad_h or pad_w:
                image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)
                label = cv2.copyMakeBorder(label, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                           value=self.ignore_id)
            y = rng.randint(0, image.shape[0] - ch + 1)
            x = rng.randint(0, image.shape[1] - cw + 1)
            image, label = image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]
        if self.flip and rng.rand() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        return image, label


def _seed_worker(worker_id):
    np.random.seed((torch.initial_seed() + worker_id) % 2 ** 32)


def evaluate(model, loader, num_classes, ignore_id, device, progress=True, outliers=None):
    """Validation mIoU at the label resolution of the loader's images.

    Models with an outlier head on a loader with outlier targets also fill ``outliers``
    (an OutlierHistogram) with their scores.
    """
    from tqdm import tqdm

    from export.models.swiftnet import outlier_score
    model.eval()
    matrix = ConfusionMatrix(num_classes, ignore_id)
    with torch.no_grad():
        for batch in tqdm(loader, desc="validate", leave=False, disable=not progress):
            images, labels = batch[0], batch[1]
            out = model(images.to(device))
            conf = None
            if isinstance(out, (tuple, list)):
                out, conf = out[0], out[1]
            logits = out
            if logits.shape[-2:] != labels.shape[-2:]:
                logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear",
                                       align_corners=False)
            matrix.update(logits.argmax(1).cpu().numpy(), labels.numpy())
            if outliers is not None and conf is not None and len(batch) > 2:
                if conf.shape[-2:] != labels.shape[-2:]:
                    conf = F.interpolate(conf, size=labels.shape[-2:], mode="bilinear",
                                         align_corners=False)
                outliers.update(outlier_score(conf.float()).cpu().numpy(), batch[2].numpy())
    return matrix


def lr_at(step, total, base_lr, warmup):
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return base_lr * (step + 1) / float(warmup)
    progress = (step - warmup) / float(max(1, total - warmup))
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(1.0, progress)))


MAX_RATE = 10.0  # --lr and other rates: AdamW diverges long before this (and 1e38 overflows)


def check_numbers(values):
    """Numeric options a user can get wrong, by name (rt-train's flags, '_' for '-'): one line
    each, before any work. ``values`` maps names to values; absent and None ones pass. The
    forecaster trainer's counts (depth, horizon, finetune_*) are checked here too."""
    positive = ("iterations", "batch_size", "val_every", "depth", "horizon", "finetune_batch_size")
    for name in positive:
        value = values.get(name)
        if value is not None and value < 1:
            raise UserError("--{} must be at least 1 (got {})".format(name.replace("_", "-"), value))
    for name in ("warmup", "workers", "finetune_iterations"):
        value = values.get(name)
        if value is not None and value < 0:
            raise UserError("--{} must be >= 0 (got {})".format(name.replace("_", "-"), value))
    for name in ("lr", "weight_decay", "outlier_weight"):
        value = values.get(name)
        if value is not None and (not math.isfinite(value) or value < 0 or (name == "lr" and value == 0)
                                  or value > MAX_RATE):
            raise UserError("--{} must be a finite {} number up to {:g} (got {})".format(
                name.replace("_", "-"), "positive" if name == "lr" else "non-negative", MAX_RATE, value))
    threads = values.get("threads")
    if threads is not None and not 1 <= threads <= 8 * (os.cpu_count() or 1):
        raise UserError("--threads must be between 1 and {} on this machine (got {})".format(
            8 * (os.cpu_count() or 1), threads))


@dataclasses.dataclass
class TrainOptions:
    """How :func:`train` trains (rt-train's flags for segmentation and outlier architectures)."""

    iterations: int = 2000
    """Optimizer steps."""
    batch_size: int = 8
    """Crops per step."""
    crop: Tuple[int, int] = (256, 256)
    """(height, width) of the random training crop."""
    size: Optional[Tuple[int, int]] = None
    """(height, width) every image is resized to first (None: as stored); also the checkpoint's
    input size (else ``crop``)."""
    lr: float = 2e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to zero)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup: int = 100
    """Steps of linear learning-rate warm-up."""
    val_every: int = 500
    """Steps between validations (and after the last); the best val mIoU is kept."""
    val_limit: Optional[int] = None
    """Validate on the first N val images only (None: all)."""
    workers: int = 0
    """Data-loading processes (0: in this process)."""
    device: str = "cpu"
    """'cpu' or 'cuda'."""
    seed: int = 0
    """Seed of torch, NumPy and the data loaders."""
    threads: Optional[int] = None
    """torch CPU threads (None: torch's default)."""
    init: Optional[str] = None
    """Checkpoint to start from (None: the registry's initialization, export.models.create)."""
    half: bool = False
    """Store the weights as fp16 (small committed demo checkpoints)."""
    amp: Optional[str] = None
    """Mixed-precision forward pass: 'bf16', 'fp16' or None."""
    scale: Tuple[float, float] = (0.75, 1.5)
    """(min, max) random rescale of the training images."""
    flip: bool = True
    """Random horizontal flips."""
    progress: bool = True
    """Show progress bars."""
    log: Callable[[str], None] = print
    """Receives each progress line."""
    negatives: Optional[str] = None
    """Outlier architectures: folder of negative images pasted into the training images
    (None: the generator's outlier objects)."""
    outlier_weight: float = 0.2
    """Outlier architectures: weight of the outlier cross-entropy."""
    negative_area: Tuple[float, float] = (0.001, 0.1)
    """Outlier architectures: (min, max) share of the image a pasted negative covers."""
    negative_area_log: bool = False
    """Outlier architectures: draw the pasted area log-uniformly (else uniformly)."""
    freeze_encoder: bool = False
    """Keep the ResNet stages (weights and BatchNorm statistics) as they are and train the decoder
    and heads only: about half the cost per iteration on a CPU, and the features the segmentation
    head was trained on stay the same."""

    def check(self):
        """The numeric options, one line each (see :func:`check_numbers`)."""
        check_numbers(vars(self))


def train(arch, data, output, options=None):
    """Train ``arch`` on ``data`` (a Cityscapes-format root) and write the best checkpoint to
    ``output``; ``options`` is a :class:`TrainOptions` (None: its defaults). Returns the losses,
    the best val mIoU (and outlier losses) and the seconds it took."""
    options = options or TrainOptions()
    options.check()
    iterations, batch_size, crop, size = options.iterations, options.batch_size, options.crop, options.size
    lr, weight_decay, warmup, val_every = options.lr, options.weight_decay, options.warmup, options.val_every
    val_limit, workers, device, seed = options.val_limit, options.workers, options.device, options.seed
    threads, init, half, amp = options.threads, options.init, options.half, options.amp
    progress, log, negatives, outlier_weight = options.progress, options.log, options.negatives, \
        options.outlier_weight
    negative_area, freeze_encoder = options.negative_area, options.freeze_encoder
    from tqdm import tqdm

    from export import checkpoints, models
    from export.classes import IGNORE_ID, cityscapes_classes

    output = checkpoints.check_checkpoint_output(output, {"--data": data, "--init": init,
                                                          "--negatives": negatives})
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available to this PyTorch")
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    np.random.seed(seed)
    train_pairs = find_pairs(data, "train")
    has_val = os.path.isdir(os.path.join(data, "leftImg8bit", "val"))
    val_pairs = find_pairs(data, "val") if has_val else []
    if not train_pairs:
        raise UserError("no training images under {}/leftImg8bit/train with labels in gtFine/train"
                        .format(data))
    if val_limit:
        val_pairs = val_pairs[:val_limit]
    classes = cityscapes_classes()
    if init:
        model, init_info = checkpoints.load_checkpoint(arch, init)
        if init_info.get("new_head"):
            log("{}: new head(s) {} start from scratch".format(init, ", ".join(init_info["new_heads"])))
    else:
        model = models.create(arch, num_classes=len(classes))
    ood = bool(getattr(model, "outlier_head", False))
    paster = None
    if ood:
        area = {"min_area": negative_area[0], "max_area": negative_area[1],
                "log_area": options.negative_area_log}
        paster = (NegativePaster.from_folder(negatives, ignore_id=IGNORE_ID, **area) if negatives
                  else NegativePaster(None, ignore_id=IGNORE_ID, **area))
    elif negatives:
        raise UserError("--negatives only applies to architectures with an outlier head "
                        "(e.g. swiftnet-rn18-ood), not {}".format(arch))
    frozen = []
    if freeze_encoder:
        decoder = ("spp", "upsample", "upsample_bottlenecks", "upsample_blends")
        frozen = [m for name, m in model.backbone.named_children() if name not in decoder]
        for module in frozen:
            for param in module.parameters():
                param.requires_grad_(False)
        log("encoder frozen: {} of {} parameters train".format(
            sum(p.numel() for p in model.parameters() if p.requires_grad),
            sum(p.numel() for p in model.parameters())))
    model.to(device)
    normalization = model.normalization
    train_set = SegmentationFolder(train_pairs, normalization, crop=crop, size=size,
                                   scale=options.scale, flip=options.flip, ignore_id=IGNORE_ID,
                                   negatives=paster)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=workers, worker_init_fn=_seed_worker,
                        persistent_workers=workers > 0)
    val_loader = None
    if val_pairs:
        val_set = SegmentationFolder(val_pairs, normalization, train=False, size=size,
                                     ignore_id=IGNORE_ID, negatives=paster)
        val_loader = DataLoader(val_set, batch_size=4, num_workers=workers)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=weight_decay)
    log("training {} on {} images ({} val), {} iterations of batch {} at crop {}x{}{}".format(
        arch, len(train_pairs), len(val_pairs), iterations, batch_size, crop[0], crop[1],
        ", negatives from {}, outlier weight {}".format(negatives or "the generator", outlier_weight)
        if ood else ""))

    best, history, step, started = -1.0, [], 0, time.time()
    outlier_history = []
    bar = tqdm(total=iterations, desc="train", disable=not progress)
    while step < iterations:
        for batch in loader:
            images, labels = batch[0], batch[1]
            model.train()
            for module in frozen:  # frozen BatchNorm statistics too
                module.eval()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, iterations, lr, warmup)
            with torch.autocast(device, dtype=_AMP_DTYPES[amp], enabled=amp is not None):
                out = model(images.to(device))
            logits = out[0] if ood else out
            loss = F.cross_entropy(logits.float(), labels.to(device), ignore_index=IGNORE_ID)
            if ood:
                outlier_loss = F.cross_entropy(out[1].float(), batch[2].to(device),
                                               ignore_index=IGNORE_ID)
                outlier_history.append(float(outlier_loss.item()))
                loss = loss + outlier_weight * outlier_loss
            checkpoints.refuse_diverged(loss, step, output)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss="{:.3f}".format(loss.item()))
            history.append(float(loss.item()))
            last = step == iterations
            if val_loader is not None and (step % val_every == 0 or last):
                outliers = OutlierHistogram() if ood else None
                matrix = evaluate(model, val_loader, len(classes), IGNORE_ID, device, progress,
                                  outliers=outliers)
                miou = matrix.miou()
                extra = ""
                if outliers is not None:
                    extra = ", val outlier AP {:.2%}".format(outliers.metrics()["ap"])
                log("step {}: loss {:.3f}, val mIoU {:.2%}{}".format(
                    step, np.mean(history[-50:]), miou, extra))
                if miou > best:
                    best = miou
                    _save(checkpoints, output, model, arch, classes, normalization, size or crop,
                          matrix, step, seed, half, time.time() - started, outliers,
                          outlier_weight if ood else None)
            elif val_loader is None and last:
                _save(checkpoints, output, model, arch, classes, normalization, size or crop,
                      None, step, seed, half, time.time() - started, None,
                      outlier_weight if ood else None)
            if last:
                break
    bar.close()
    result = {"best_miou": best, "loss_first": history[0],
              "loss_last": float(np.mean(history[-20:])),
              "seconds": time.time() - started, "checkpoint": output}
    if ood:
        result.update({"outlier_loss_first": outlier_history[0],
                       "outlier_loss_last": float(np.mean(outlier_history[-20:]))})
    return result


def _save(checkpoints, output, model, arch, classes, normalization, input_size, matrix, step,
          seed, half, seconds, outliers=None, outlier_weight=None):
    metrics = {"step": step, "train_seconds": round(seconds, 1)}
    if matrix is not None:
        summary = matrix.summary([c["name"] for c in classes])
        metrics.update({"val_miou": summary["miou"], "val_pixel_accuracy": summary["pixel_accuracy"],
                        "val_per_class_iou": summary["per_class_iou"]})
    if outliers is not None:  # val images with pasted negatives: inlier mIoU + outlier metrics
        metrics["val_outlier"] = outliers.summary()
    meta = {"classes": classes, "normalization": normalization, "input_size": list(input_size),
            "ignore_id": 255, "metrics": metrics, "seed": seed}
    if outlier_weight is not None:
        meta["outlier"] = {"score": "1 - P(inlier)", "default_threshold": 0.5,
                           "outlier_weight": outlier_weight}
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    checkpoints.save_checkpoint(output, model, arch, meta, half=half)
