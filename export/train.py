"""rt-train: a compact trainer for the registry's networks on Cityscapes-format folders.

Parses the flags and prints the result; the training is export/training.py (segmentation and
outlier architectures) and export/train_forecast.py (forecasters).
"""
import argparse
import json
import sys

from export.api import parse_size
from export.training import TrainOptions, check_numbers, train
from runtime.cli.common import add_common_args, run_cli
from runtime.errors import UserError


def _area(text):
    """'MIN,MAX' -> (min, max) shares of the image (checked by NegativePaster)."""
    try:
        low, high = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError("malformed --negative-area {!r}: expected MIN,MAX, e.g. 0.0002,0.05".format(text))
    return low, high


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
    parser.add_argument("--negatives", metavar="DIR",
                        help="outlier architectures: folder of negative images pasted into the "
                             "training images (default: the generator's outlier objects)")
    parser.add_argument("--outlier-weight", type=float, default=0.2,
                        help="outlier architectures: weight of the outlier CE loss (default 0.2)")
    parser.add_argument("--negative-area", default="0.001,0.1", metavar="MIN,MAX",
                        help="outlier architectures: share of the image a pasted negative covers "
                             "(default 0.001,0.1)")
    parser.add_argument("--freeze-encoder", action="store_true",
                        help="train the decoder and heads only (ResNet stages and their BatchNorm fixed)")
    parser.add_argument("--negative-area-log", action="store_true",
                        help="outlier architectures: draw the pasted area log-uniformly in MIN..MAX "
                             "(default uniform)")
    group = parser.add_argument_group("forecasters (f2f-8, f2f-8-conv; see export/train_forecast.py)")
    group.add_argument("--features-from", metavar="CKPT",
                       help="the swiftnet-rn18-sl checkpoint whose SPP features are forecast")
    group.add_argument("--horizon", type=int, default=9, help="frames ahead (3 short, 9 mid term; default 9)")
    group.add_argument("--past-offsets", default="-9,-6,-3,0", help="past frames used (default -9,-6,-3,0)")
    group.add_argument("--finetune-iterations", type=int, default=500,
                       help="iterations through the frozen decoder with the segmentation loss (default 500)")
    group.add_argument("--finetune-batch-size", type=int, default=8,
                       help="batch of the fine-tuning iterations (decoder at 1/4 resolution; default 8)")
    group.add_argument("--depth", type=int, default=8, help="F2F units (default 8)")
    group.add_argument("--seq-limit", type=int, help="use the first N train sequences only (of each folder)")
    group.add_argument("--extra-train", metavar="DIR", action="append", default=[],
                       help="another sequence folder whose train split joins --data's (repeatable; "
                            "validation stays on --data's val split)")
    group.add_argument("--features-cache", metavar="DIR",
                       help="keep the extracted features here and reuse them (same checkpoint, data, limit)")
    parser.add_argument("--half", action="store_true",
                        help="store weights as fp16 (small committed demo checkpoints)")
    add_common_args(parser)
    return parser


FORECASTERS = ("f2f-8", "f2f-8-conv")


def main(argv):
    args = build_parser().parse_args(argv)
    if args.arch in FORECASTERS:
        return _main_forecaster(args)
    if args.extra_train:
        raise UserError("--extra-train is for forecasters ({}): train {} on one --data root"
                        .format(", ".join(sorted(FORECASTERS)), args.arch))
    result = train(args.arch, args.data, args.output, TrainOptions(
        iterations=args.iterations, batch_size=args.batch_size, crop=parse_size(args.crop, "--crop"),
        size=parse_size(args.size) if args.size else None, lr=args.lr, weight_decay=args.weight_decay,
        warmup=args.warmup, val_every=args.val_every, val_limit=args.val_limit, workers=args.workers,
        device=args.device, seed=args.seed, threads=args.threads, init=args.init, half=args.half,
        amp=args.amp, negatives=args.negatives, outlier_weight=args.outlier_weight,
        negative_area=_area(args.negative_area), negative_area_log=args.negative_area_log,
        freeze_encoder=args.freeze_encoder, progress=not args.quiet,
        log=lambda m: sys.stderr.write(m + "\n")))
    print(json.dumps(result, indent=2))
    return 0


def _main_forecaster(args):
    from export.train_forecast import ForecasterOptions, train_forecaster
    check_numbers(vars(args))
    try:
        offsets = [int(v) for v in args.past_offsets.split(",") if v.strip()]
    except ValueError:
        raise UserError("malformed --past-offsets {!r}: expected e.g. -9,-6,-3,0".format(args.past_offsets))
    result = train_forecaster(args.arch, args.data, args.output, args.features_from, ForecasterOptions(
        horizon=args.horizon, offsets=offsets, iterations=args.iterations,
        finetune_iterations=args.finetune_iterations, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, seq_limit=args.seq_limit, val_limit=args.val_limit,
        threads=args.threads, seed=args.seed, half=args.half, depth=args.depth, cache=args.features_cache,
        val_every=args.val_every, finetune_batch_size=args.finetune_batch_size, init=args.init,
        extra_train=args.extra_train, progress=not args.quiet, log=lambda m: sys.stderr.write(m + "\n")))
    print(json.dumps(result, indent=2))
    return 0


def entry():
    sys.exit(run_cli(main, prog="rt-train"))


if __name__ == "__main__":
    entry()
