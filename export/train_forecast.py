"""Training F2F forecasters (``f2f-8``, ``f2f-8-conv``) on Cityscapes-format sequences.

``rt-train --arch f2f-8 --features-from SL.pt --data SEQ_ROOT --horizon 9`` (see export/train.py):

1. Every frame of every train (and val) sequence goes once through the frozen single-level
   model (``swiftnet-rn18-sl``); the SPP features (128 x H/32 x W/32) and the labels at 1/4
   resolution are cached in memory (float16 / uint8).
2. Per-channel mean / std over the training features standardize everything.
3. Stage 1: MSE between F2F(features of t-9, t-6, t-3, t) and the features of t + horizon.
4. Stage 2 (``--finetune-iterations``): cross-entropy of the frozen decoder's logits on the
   forecast features against the labels of t + horizon (plus the MSE term, kept small).
5. Validation on the val sequences: mIoU of the forecast at t + horizon, next to copy-last
   (the segmentation of frame t) and the oracle (the segmentation of frame t + horizon), all
   at 1/4 resolution with the torch model (rt-eval measures the exported bundle at full size).

The checkpoint stores the forecaster, the feature statistics, the past offsets, the horizon,
the training frame rate and which feature checkpoint (sha256) the features came from.
"""
import copy
import dataclasses
import math
import os
import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from runtime.data.cityscapes import find_pairs, group_sequences, read_image, read_label, read_split_info
from export.models.forecast import PAST_OFFSETS
from runtime.errors import UserError, first_line
from runtime.forecast_eval import ForecastScores
from runtime.metrics import ConfusionMatrix



class SequenceFeatures(object):
    """Features (S, T, C, h, w) float16 and 1/4-resolution labels (S, T, H/4, W/4) of a split."""

    def __init__(self, features, labels, names, fps):
        self.features, self.labels, self.names, self.fps = features, labels, names, fps

    def save(self, path):
        tmp = path + ".tmp.npz"
        np.savez(tmp, features=self.features, labels=self.labels, names=np.array(self.names),
                 fps=np.array(self.fps if self.fps else 0.0))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path):
        data = np.load(path)
        return cls(data["features"], data["labels"], [str(n) for n in data["names"]], float(data["fps"]) or None)

    @classmethod
    def cached(cls, cache, key, model, root, split, normalization, limit=None, progress=True, log=print):
        """``extract``, or its result from ``cache`` (a folder) for the same checkpoint, data and limit."""
        if not cache:
            return cls.extract(model, root, split, normalization, limit=limit, progress=progress, log=log)
        import hashlib
        tag = hashlib.sha256("{}|{}|{}|{}".format(key, os.path.abspath(root), split, limit).encode()).hexdigest()
        path = os.path.join(cache, "features_{}_{}.npz".format(split, tag[:16]))
        if os.path.exists(path):
            log("features of {} split {} from the cache {}".format(root, split, path))
            return cls.load(path)
        data = cls.extract(model, root, split, normalization, limit=limit, progress=progress, log=log)
        os.makedirs(cache, exist_ok=True)
        data.save(path)
        return data

    @classmethod
    def extract(cls, model, root, split, normalization, limit=None, progress=True, log=print):
        from tqdm import tqdm
        pairs = find_pairs(root, split)
        groups = list(group_sequences(pairs).items())
        if limit:
            groups = groups[:limit]
        if not groups:
            raise UserError("no sequences under {}/leftImg8bit/{} (write some with rt-synth sequences)"
                            .format(root, split))
        lengths = sorted(set(len(frames) for _, frames in groups))
        if len(lengths) != 1:
            raise UserError("{} split {}: sequences of different lengths {}".format(root, split, lengths))
        info = read_split_info(root, split) or {}
        fps = (info.get("sequences") or {}).get("fps")
        scale = float(normalization["scale"])
        mean = torch.tensor(normalization["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(normalization["std"]).view(1, 3, 1, 1)
        features, labels = [], []
        bar = tqdm(total=len(groups) * lengths[0], desc="features " + split, disable=not progress)
        with torch.inference_mode():
            for _, frames in groups:
                images, seq_labels = [], []
                for image_path, label_path in frames:
                    image = read_image(image_path)[:, :, ::-1]  # BGR -> RGB
                    label = read_label(label_path)
                    images.append(np.ascontiguousarray(image))
                    seq_labels.append(label[2::4, 2::4])  # nearest at 1/4, centre samples
                x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
                x = (x * scale - mean) / std
                feats = torch.cat([model.encode(chunk) for chunk in x.split(8)])
                features.append(feats.half().numpy())
                labels.append(np.stack(seq_labels))
                bar.update(len(frames))
        bar.close()
        log("{} split {}: {} sequences x {} frames, features {}".format(
            root, split, len(groups), lengths[0], tuple(features[0].shape[1:])))
        names = ["{}_{}".format(*key) for key, _ in groups]
        return cls(np.stack(features), np.stack(labels), names, fps)

    @classmethod
    def concat(cls, parts):
        """One training set from several roots' train splits (same frames per sequence and rate)."""
        if len(parts) == 1:
            return parts[0]
        shapes = set(p.features.shape[1:] for p in parts)
        rates = set(p.fps for p in parts)
        if len(shapes) != 1 or len(rates) != 1:
            raise UserError("the training folders differ in sequence length, feature shape or frame rate: "
                            "{} / {}".format(sorted(shapes), sorted(rates, key=str)))
        return cls(np.concatenate([p.features for p in parts]), np.concatenate([p.labels for p in parts]),
                   [n for p in parts for n in p.names], parts[0].fps)

    def samples(self, offsets, horizon):
        """All (sequence, t) with every past frame and the target inside the sequence."""
        length = self.features.shape[1]
        first, last = -min(offsets), length - 1 - horizon
        if last < first:
            raise UserError("sequences of {} frames are too short for offsets {} and horizon {}"
                            .format(length, list(offsets), horizon))
        return [(s, t) for s in range(self.features.shape[0]) for t in range(first, last + 1)]


def feature_stats(features):
    """Per-channel mean and std over (S, T, C, h, w) features."""
    f = features.astype(np.float32).transpose(2, 0, 1, 3, 4).reshape(features.shape[2], -1)
    return f.mean(axis=1), np.maximum(f.std(axis=1), 1e-6)


class _Batches(object):
    """Standardized (past, target features, target labels) batches from cached features."""

    def __init__(self, data, mean, std, offsets, horizon):
        self.data, self.offsets, self.horizon = data, list(offsets), int(horizon)
        self.mean = torch.from_numpy(mean).view(1, -1, 1, 1)
        self.std = torch.from_numpy(std).view(1, -1, 1, 1)
        self.samples = data.samples(offsets, horizon)

    def standardize(self, array):
        return (torch.from_numpy(array.astype(np.float32)) - self.mean) / self.std

    def get(self, chosen):
        past = torch.cat([torch.cat([self.standardize(self.data.features[s, t + o][None]) for o in self.offsets], 1)
                          for s, t in chosen])
        target = torch.cat([self.standardize(self.data.features[s, t + self.horizon][None]) for s, t in chosen])
        labels = torch.from_numpy(np.stack([self.data.labels[s, t + self.horizon] for s, t in chosen])).long()
        current = torch.cat([self.standardize(self.data.features[s, t][None]) for s, t in chosen])
        return past, target, labels, current


def augment(batch, rng, crop_fraction=0.75):
    """Random horizontal flip and a random horizontal crop of the whole clip (features and labels).

    A fully convolutional forecaster trains on crops as well as on whole maps; the crop moves
    every structure to other columns, against memorising where things are in few sequences.
    """
    past, target, labels = batch
    if rng.rand() < 0.5:
        past, target, labels = past.flip(-1), target.flip(-1), labels.flip(-1)
    width = past.shape[-1]
    crop = max(1, int(round(width * crop_fraction)))
    if crop < width:
        x0 = rng.randint(0, width - crop + 1)
        factor = labels.shape[-1] // width
        past, target = past[..., x0:x0 + crop], target[..., x0:x0 + crop]
        labels = labels[..., factor * x0:factor * (x0 + crop)]
    return past, target, labels


def _val_score(model, decoder, batches, finetune, classes, ignore_id, subset=160, batch_size=32):
    """Val MSE (MSE stage) or forecast mIoU on the first ``subset`` samples (fine-tuning)."""
    model.eval()
    samples = batches.samples if not finetune else batches.samples[::max(1, len(batches.samples) // subset)]
    matrix = ConfusionMatrix(len(classes), ignore_id)
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(samples), batch_size):
            past, target, labels, _ = batches.get(samples[i:i + batch_size])
            predicted = model(past)
            if finetune:
                for p, l in zip(decoder(predicted).argmax(1).numpy(), labels.numpy()):
                    matrix.update(p.astype(np.uint8), l.astype(np.uint8))
            else:
                total += float(F.mse_loss(predicted, target)) * len(past)
    return matrix.miou() if finetune else total / len(samples)


def _lr(step, total, base, warmup=50):
    if step < warmup:
        return base * (step + 1) / float(warmup)
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, (step - warmup) / float(max(1, total - warmup)))))


def evaluate_forecast(f2f, decoder, batches, classes, ignore_id=255, batch_size=32):
    """mIoU and moving-object mIoU at 1/4 resolution: forecast, copy-last, oracle (rt-eval's scorer)."""
    scores = ForecastScores(classes, ignore_id)
    mse = []
    f2f.eval()
    with torch.inference_mode():
        for i in range(0, len(batches.samples), batch_size):
            past, target, labels, current = batches.get(batches.samples[i:i + batch_size])
            predicted = f2f(past)
            mse.append(float(F.mse_loss(predicted, target)) * len(past))
            for key, feats in (("forecast", predicted), ("copy_last", current), ("oracle", target)):
                pred = decoder(feats).argmax(1).numpy().astype(np.uint8)
                for p, l in zip(pred, labels.numpy()):
                    scores.matrices[key].update(p, l.astype(np.uint8))
    summary = scores.summary()
    out = {"mse": sum(mse) / len(batches.samples)}
    for key in ("forecast", "copy_last", "oracle"):
        out[key] = {"miou": summary[key]["miou"], "moving_miou": summary[key]["moving_miou"]}
    return out


def _load_init(model, arch, init, features_sha256, offsets, horizon, log):
    """Load ``init`` into ``model`` after checking it forecasts the same features and future."""
    from export import checkpoints
    loaded, info = checkpoints.load_checkpoint(arch, init)
    forecast = (info.get("metadata") or {}).get("forecast") or {}
    theirs = {"feature checkpoint": (forecast.get("features_checkpoint") or {}).get("sha256"),
              "past offsets": forecast.get("past_offsets"), "horizon": forecast.get("horizon")}
    ours = {"feature checkpoint": features_sha256, "past offsets": list(offsets),
            "horizon": int(horizon)}
    for what in ours:
        if theirs[what] != ours[what]:
            raise UserError("--init {} was trained with another {} ({} here, {} there)".format(
                init, what, ours[what], theirs[what]))
    try:
        model.load_state_dict(loaded.float().state_dict())
    except RuntimeError as exc:
        raise UserError("--init {} does not fit {} as configured (--depth?): {}".format(
            init, arch, first_line(exc)))
    log("starting from {}".format(init))


@dataclasses.dataclass
class ForecasterOptions:
    """How :func:`train_forecaster` trains (rt-train's flags for f2f-8 and f2f-8-conv)."""

    horizon: int = 9
    """Frames ahead the forecast is for (3 short, 9 mid term)."""
    offsets: Sequence[int] = PAST_OFFSETS
    """Past frames read, relative to the present (distinct, ending with 0)."""
    iterations: int = 2000
    """Iterations of the feature MSE loss."""
    finetune_iterations: int = 500
    """Iterations through the frozen decoder with the segmentation loss (after ``iterations``)."""
    batch_size: int = 16
    """Batch of the MSE iterations."""
    lr: float = 5e-4
    """Peak AdamW learning rate (half of it while fine-tuning)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    seq_limit: Optional[int] = None
    """Use the first N train sequences of each folder only (None: all)."""
    val_limit: Optional[int] = None
    """Use the first N val sequences only (None: all)."""
    threads: Optional[int] = None
    """torch CPU threads (None: torch's default)."""
    seed: int = 0
    """Seed of torch and the batch draw."""
    half: bool = False
    """Store the weights as fp16 (small committed demo checkpoints)."""
    depth: int = 8
    """F2F units."""
    cache: Optional[str] = None
    """Folder the extracted features are kept in and reused from (same checkpoint, data, limit)."""
    val_every: int = 250
    """Iterations between validations; the best weights are kept."""
    finetune_batch_size: int = 8
    """Batch of the fine-tuning iterations (decoder at 1/4 resolution)."""
    init: Optional[str] = None
    """Continue from this forecaster checkpoint (same arch, depth, offsets, horizon and feature
    checkpoint: anything else forecasts other features or another future)."""
    extra_train: Sequence[str] = ()
    """More roots whose train sequences join the data's (validation stays on its val split);
    each root's features are cached on their own."""
    progress: bool = True
    """Show progress bars."""
    log: Callable[[str], None] = print
    """Receives each progress line."""


def train_forecaster(arch, data, output, features_from, options=None):
    """Train an F2F forecaster ``arch`` on features of ``features_from`` (a swiftnet-rn18-sl
    checkpoint) over the sequences under ``data``; write its checkpoint to ``output``.
    ``options``: a :class:`ForecasterOptions` (None: its defaults). Returns the losses and
    validation figures."""
    options = options or ForecasterOptions()
    horizon, offsets, iterations, batch_size = options.horizon, options.offsets, options.iterations, \
        options.batch_size
    finetune_iterations, finetune_batch_size = options.finetune_iterations, options.finetune_batch_size
    lr, weight_decay, seq_limit = options.lr, options.weight_decay, options.seq_limit
    val_limit, threads, seed, half = options.val_limit, options.threads, options.seed, options.half
    depth, cache = options.depth, options.cache
    val_every, init, extra_train = options.val_every, options.init, options.extra_train
    progress, log = options.progress, options.log
    from tqdm import tqdm

    from export import checkpoints, models
    from export.classes import IGNORE_ID

    output = checkpoints.check_checkpoint_output(output, {
        "--data": data, "--features-from": features_from, "--init": init,
        "--extra-train": list(extra_train or ()), "--features-cache": cache})
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    if not features_from:
        raise UserError("--arch {} needs --features-from: the swiftnet-rn18-sl checkpoint whose "
                        "features it forecasts".format(arch))
    if horizon < 1:
        raise UserError("--horizon must be at least 1 frame")
    offsets = sorted(int(o) for o in offsets)
    if offsets[-1] != 0 or len(set(offsets)) != len(offsets):
        raise UserError("--past-offsets must be distinct and end with 0, e.g. -9,-6,-3,0")
    sl, sl_info = checkpoints.load_checkpoint("swiftnet-rn18-sl", features_from)
    sl.eval()
    for p in sl.parameters():
        p.requires_grad_(False)
    classes = sl_info.get("classes")
    if not classes:
        from export.classes import cityscapes_classes
        classes = cityscapes_classes()
    key = sl_info["sha256"]
    train_data = SequenceFeatures.concat([
        SequenceFeatures.cached(cache, key, sl, root, "train", sl.normalization, limit=seq_limit,
                                progress=progress, log=log) for root in [data] + list(extra_train or ())])
    has_val = os.path.isdir(os.path.join(data, "leftImg8bit", "val"))
    val_data = (SequenceFeatures.cached(cache, key, sl, data, "val", sl.normalization, limit=val_limit,
                                        progress=progress, log=log) if has_val else None)
    mean, std = feature_stats(train_data.features)
    batches = _Batches(train_data, mean, std, offsets, horizon)
    val_batches = _Batches(val_data, mean, std, offsets, horizon) if val_data is not None else None
    model = models.create(arch, depth=depth, num_past=len(offsets), num_features=train_data.features.shape[2])
    if init:
        _load_init(model, arch, init, sl_info["sha256"], offsets, horizon, log)
    mean_t, std_t = torch.from_numpy(mean).view(1, -1, 1, 1), torch.from_numpy(std).view(1, -1, 1, 1)
    h4, w4 = train_data.labels.shape[2:]

    def decoder(standardized):
        """Logits at the labels' 1/4 resolution (8x the 1/32 features; crops included)."""
        h, w = standardized.shape[-2:]
        return sl.decode(standardized * std_t + mean_t, (8 * int(h), 8 * int(w)))

    log("training {} (depth {}) on {} samples ({} sequences), offsets {}, horizon {}: "
        "{} MSE iterations of batch {} + {} fine-tuning iterations of batch {}".format(
            arch, depth, len(batches.samples), train_data.features.shape[0], offsets, horizon,
            iterations, batch_size, finetune_iterations, finetune_batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total = iterations + finetune_iterations
    started, history = time.time(), []
    best_state, best_score, best_step = None, float("inf"), total
    bar = tqdm(total=total, desc="f2f", disable=not progress)
    for step in range(total):
        finetune = step >= iterations
        model.train()
        if finetune and step == iterations:
            optimizer = torch.optim.AdamW(model.parameters(), lr=lr * 0.5, weight_decay=weight_decay)
        for group in optimizer.param_groups:
            group["lr"] = (_lr(step - iterations, finetune_iterations, lr * 0.5) if finetune
                           else _lr(step, iterations, lr))
        if finetune and step == iterations and best_state is not None:
            model.load_state_dict(best_state)  # fine-tune from the MSE stage's best on val
            best_score = _val_score(model, decoder, val_batches, True, classes, IGNORE_ID)
            log("fine-tuning from step {}: val forecast mIoU (subset) {:.4f}".format(best_step, best_score))
        size = finetune_batch_size if finetune else batch_size
        chosen = [batches.samples[i] for i in rng.randint(0, len(batches.samples), size)]
        past, target, labels = augment(batches.get(chosen)[:3], rng)
        predicted = model(past)
        loss = F.mse_loss(predicted, target)
        if finetune:
            ce = F.cross_entropy(decoder(predicted), labels, ignore_index=IGNORE_ID)
            loss = ce + 0.1 * loss
        checkpoints.refuse_diverged(loss, step, output)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
        if val_batches is not None and ((step + 1) % val_every == 0 or step + 1 in (iterations, total)):
            score = _val_score(model, decoder, val_batches, finetune, classes, IGNORE_ID)
            log("step {}: val {} {:.4f}".format(step + 1, "forecast mIoU (subset)" if finetune else "MSE", score))
            if best_state is None or (score > best_score if finetune else score < best_score):
                best_state, best_score, best_step = copy.deepcopy(model.state_dict()), score, step + 1
        bar.update(1)
        bar.set_postfix(loss="{:.3f}".format(loss.item()), stage="ft" if finetune else "mse")
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
        log("kept the weights of step {} (best on val)".format(best_step))
    metrics = {"train_seconds": round(time.time() - started, 1), "loss_first": history[0],
               "loss_last": float(np.mean(history[-20:])), "kept_step": best_step}
    if val_batches is not None:
        metrics["val"] = evaluate_forecast(model, decoder, val_batches, classes, IGNORE_ID)
        v = metrics["val"]
        log("val (1/4 resolution, {} samples): forecast mIoU {:.2%} (moving {:.2%}), copy-last {:.2%} "
            "({:.2%}), oracle {:.2%} ({:.2%})".format(
                len(val_batches.samples), v["forecast"]["miou"], v["forecast"]["moving_miou"],
                v["copy_last"]["miou"], v["copy_last"]["moving_miou"], v["oracle"]["miou"],
                v["oracle"]["moving_miou"]))
    metrics["train_sequences"] = int(train_data.features.shape[0])
    meta = {"classes": classes, "ignore_id": IGNORE_ID, "seed": seed, "metrics": metrics,
            "forecast": {"past_offsets": offsets, "horizon": int(horizon),
                         "frame_rate": train_data.fps,
                         "feature_stats": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
                         "features_arch": "swiftnet-rn18-sl",
                         "features_checkpoint": {"path": os.path.abspath(features_from),
                                                 "sha256": sl_info["sha256"]},
                         "feature_shape": [1] + list(train_data.features.shape[2:]),
                         "input_size": [int(4 * h4), int(4 * w4)]}}
    checkpoints.save_checkpoint(output, model, arch, meta, half=half)
    result = {"checkpoint": output, "samples": len(batches.samples)}
    result.update(metrics)
    return result
