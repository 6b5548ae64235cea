"""rt-train: a compact trainer for the registry's networks on Cityscapes-format folders.

Works unchanged on real Cityscapes (leftImg8bit/ + gtFine/*_labelTrainIds.png, or
*_labelIds.png mapped to train ids) and on the generator's synthetic scenes.
Random scale / crop / flip, ignore id, AdamW with a warm-up + cosine schedule,
validation mIoU, checkpoints in our format (see export/checkpoints.py).
"""
import argparse
import json
import math
import os
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from runtime.cli.common import add_common_args, run_cli
from runtime.data.cityscapes import find_pairs, read_label
from runtime.errors import UserError
from runtime.metrics import ConfusionMatrix


# Mixed precision for the forward pass: bf16 roughly halves CPU training time where the
# CPU has bf16 instructions (AVX512-BF16/AMX); fp16 is for CUDA.
_AMP_DTYPES = {None: torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class SegmentationFolder(Dataset):
    """Image/label pairs of a Cityscapes-format folder, augmented for training."""

    def __init__(self, pairs, normalization, crop=None, scale=(0.75, 1.5), flip=True,
                 train=True, ignore_id=255, size=None):
        self.pairs = pairs
        self.crop = crop
        self.scale = scale
        self.flip = flip
        self.train = train
        self.ignore_id = ignore_id
        self.size = size  # (H, W) every image is first resized to (the network's input size)
        std = np.asarray(normalization["std"], np.float32)
        self.mul = (float(normalization["scale"]) / std).astype(np.float32)
        self.add = (-np.asarray(normalization["mean"], np.float32) / std).astype(np.float32)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        image_path, label_path = self.pairs[index]
        image = cv2.imread(image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise UserError("cannot read image {}".format(image_path))
        image = image[:, :, ::-1]  # RGB
        label = read_label(label_path)
        if self.size is not None and image.shape[:2] != tuple(self.size):
            image = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)
            label = cv2.resize(label, (self.size[1], self.size[0]), interpolation=cv2.INTER_NEAREST)
        if self.train:
            image, label = self._augment(image, label)
        image = image.astype(np.float32) * self.mul + self.add
        return (torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                torch.from_numpy(np.ascontiguousarray(label)).long())

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


def evaluate(model, loader, num_classes, ignore_id, device, progress=True):
    """Validation mIoU at the label resolution of the loader's images."""
    from tqdm import tqdm
    model.eval()
    matrix = ConfusionMatrix(num_classes, ignore_id)
    with torch.no_grad():
        for images, labels in tqdm(loader, desc="validate", leave=False, disable=not progress):
            logits = model(images.to(device))
            if logits.shape[-2:] != labels.shape[-2:]:
                logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear",
                                       align_corners=False)
            matrix.update(logits.argmax(1).cpu().numpy(), labels.numpy())
    return matrix


def lr_at(step, total, base_lr, warmup):
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return base_lr * (step + 1) / float(warmup)
    progress = (step - warmup) / float(max(1, total - warmup))
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train(arch, data, output, iterations=2000, batch_size=8, crop=(256, 256), size=None,
          lr=2e-3, weight_decay=1e-4, warmup=100, val_every=500, val_limit=None, workers=0,
          device="cpu", seed=0, threads=None, init=None, half=False, amp=None, scale=(0.75, 1.5),
          flip=True, progress=True, log=print):
    """Train ``arch`` on ``data`` (a Cityscapes-format root) and write the best checkpoint."""
    from tqdm import tqdm

    from export import checkpoints, models
    from export.classes import IGNORE_ID, cityscapes_classes

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
        model, _ = checkpoints.load_checkpoint(arch, init)
    else:
        model = models.create(arch, num_classes=len(classes))
    model.to(device)
    normalization = model.normalization
    train_set = SegmentationFolder(train_pairs, normalization, crop=crop, size=size,
                                   scale=scale, flip=flip, ignore_id=IGNORE_ID)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=workers, worker_init_fn=_seed_worker,
                        persistent_workers=workers > 0)
    val_loader = None
    if val_pairs:
        val_set = SegmentationFolder(val_pairs, normalization, train=False, size=size,
                                     ignore_id=IGNORE_ID)
        val_loader = DataLoader(val_set, batch_size=4, num_workers=workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    log("training {} on {} images ({} val), {} iterations of batch {} at crop {}x{}".format(
        arch, len(train_pairs), len(val_pairs), iterations, batch_size, crop[0], crop[1]))

    best, history, step, started = -1.0, [], 0, time.time()
    bar = tqdm(total=iterations, desc="train", disable=not progress)
    while step < iterations:
        for images, labels in loader:
            model.train()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, iterations, lr, warmup)
            with torch.autocast(device, dtype=_AMP_DTYPES[amp], enabled=amp is not None):
                logits = model(images.to(device))
            loss = F.cross_entropy(logits.float(), labels.to(device), ignore_index=IGNORE_ID)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss="{:.3f}".format(loss.item()))
            history.append(float(loss.item()))
            last = step == iterations
            if val_loader is not None and (step % val_every == 0 or last):
                matrix = evaluate(model, val_loader, len(classes), IGNORE_ID, device, progress)
                miou = matrix.miou()
                log("step {}: loss {:.3f}, val mIoU {:.2%}".format(step, np.mean(history[-50:]), miou))
                if miou > best:
                    best = miou
                    _save(checkpoints, output, model, arch, classes, normalization, size or crop,
                          matrix, step, seed, half, time.time() - started)
            elif val_loader is None and last:
                _save(checkpoints, output, model, arch, classes, normalization, size or crop,
                      None, step, seed, half, time.time() - started)
            if last:
                break
    bar.close()
    return {"best_miou": best, "loss_first": history[0], "loss_last": float(np.mean(history[-20:])),
            "seconds": time.time() - started, "checkpoint": output}


def _save(checkpoints, output, model, arch, classes, normalization, input_size, matrix, step,
          seed, half, seconds):
    metrics = {"step": step, "train_seconds": round(seconds, 1)}
    if matrix is not None:
        summary = matrix.summary([c["name"] for c in classes])
        metrics.update({"val_miou": summary["miou"], "val_pixel_accuracy": summary["pixel_accuracy"],
                        "val_per_class_iou": summary["per_class_iou"]})
    meta = {"classes": classes, "normalization": normalization, "input_size": list(input_size),
            "ignore_id": 255, "metrics": metrics, "seed": seed}
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    checkpoints.save_checkpoint(output, model, arch, meta, half=half)


def _size(text):
    from export.cli import parse_size
    return parse_size(text)


def build_parser():
    parser = argparse.ArgumentParser(prog="rt-train", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True)
    parser.add_argument("--data", required=True, help="Cityscapes-format root (leftImg8bit/, gtFine/)")
    parser.add_argument("--output", "-o", required=True, help="checkpoint to write (best val mIoU)")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", default="256x256", help="random crop HxW (default 256x256)")
    parser.add_argument("--size", help="resize every image to HxW first (e.g. 512x1024 for Cityscapes)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--val-every", type=int, default=500)
    parser.add_argument("--val-limit", type=int, help="validate on the first N val images only")
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", help="start from this checkpoint")
    parser.add_argument("--amp", choices=["bf16", "fp16"],
                        help="mixed-precision forward pass (bf16 on CPUs with AVX512-BF16/AMX)")
    parser.add_argument("--half", action="store_true",
                        help="store weights as fp16 (small committed demo checkpoints)")
    add_common_args(parser)
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    result = train(args.arch, args.data, args.output, iterations=args.iterations,
                   batch_size=args.batch_size, crop=_size(args.crop),
                   size=_size(args.size) if args.size else None, lr=args.lr,
                   weight_decay=args.weight_decay, warmup=args.warmup, val_every=args.val_every,
                   val_limit=args.val_limit, workers=args.workers, device=args.device,
                   seed=args.seed, threads=args.threads, init=args.init, half=args.half, amp=args.amp,
                   progress=not args.quiet, log=lambda m: sys.stderr.write(m + "\n"))
    print(json.dumps(result, indent=2))
    return 0


def entry():
    sys.exit(run_cli(main, prog="rt-train"))


if __name__ == "__main__":
    entry()
