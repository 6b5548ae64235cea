"""rt-synth: procedural road scenes (Cityscapes layout), sequences and demo videos.

    rt-synth split ROOT --split train --count 2000 --seed 0 [--size 256x512] [--outliers 0.1] [--workers N]
    rt-synth sequences ROOT --split val --count 20 --length 30 --fps 15 --seed 1
    rt-synth video OUT.mp4 --frames 300 --fps 30 --seed 7 --size 256x512

Images go to ROOT/leftImg8bit/{split}/{city}/..._leftImg8bit.png, labels to
ROOT/gtFine/{split}/{city}/..._gtFine_labelTrainIds.png and _labelIds.png (and
_outlierMask.png with --outliers > 0); ROOT/synth_{split}.json records seed,
size and, for sequences, the frame rate. Everything is deterministic in the seed.
Workstation side (export/scenes.py); the device image has neither.
"""
import argparse
import os
import sys
import time

from export import scenes
from runtime.cli.common import add_common_args, run_cli
from runtime.errors import UserError


def build_parser():
    parser = argparse.ArgumentParser(prog="rt-synth", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:5]))
    sub = parser.add_subparsers(dest="command", metavar="{split,sequences,video}")

    p = sub.add_parser("split", help="write COUNT single images with labels")
    p.add_argument("root", help="output root (Cityscapes layout)")
    p.add_argument("--split", default="train", help="split name (default train)")
    p.add_argument("--count", type=int, default=2000, help="number of images (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="256x512", help="HxW (default 256x512)")
    p.add_argument("--outliers", type=float, default=0.0,
                   help="fraction 0..1 of images with outlier objects; > 0 also writes outlier masks")
    p.add_argument("--workers", type=int, default=1, help="processes (0 = one per CPU)")
    p.add_argument("--color", action="store_true", help="also write *_gtFine_color.png")
    add_common_args(p)

    p = sub.add_parser("sequences", help="write COUNT sequences of LENGTH frames with labels")
    p.add_argument("root", help="output root (Cityscapes layout)")
    p.add_argument("--split", default="val", help="split name (default val)")
    p.add_argument("--count", type=int, default=20, help="number of sequences (default 20)")
    p.add_argument("--length", type=int, default=30, help="frames per sequence (default 30)")
    p.add_argument("--fps", type=float, default=15.0, help="frame rate (default 15)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--size", default="256x512", help="HxW (default 256x512)")
    p.add_argument("--outliers", type=float, default=0.0, help="fraction 0..1 of sequences with outliers")
    p.add_argument("--workers", type=int, default=1, help="processes (0 = one per CPU)")
    p.add_argument("--color", action="store_true", help="also write *_gtFine_color.png")
    add_common_args(p)

    p = sub.add_parser("video", help="write one continuous drive as an MP4 (mp4v)")
    p.add_argument("output", help="output .mp4 path")
    p.add_argument("--frames", type=int, default=300, help="number of frames (default 300)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="256x512", help="HxW (default 256x512)")
    add_common_args(p)
    return parser


class Progress(object):
    """``progress(done, total)`` callback: tqdm when installed, else a line every ~5 %."""

    def __init__(self, label, unit, quiet=False):
        self.label, self.unit, self.quiet = label, unit, quiet
        self.bar = None
        self.next_pct = 0
        self.start = time.time()

    def __call__(self, done, total):
        if self.quiet or total <= 0:
            return
        if self.bar is None and self.next_pct == 0:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=self.label, unit=self.unit, file=sys.stderr)
            except ImportError:
                self.bar = False
        if self.bar:
            self.bar.update(done - self.bar.n)
            if done >= total:
                self.bar.close()
            return
        pct = 100 * done // total
        if pct >= self.next_pct or done >= total:
            elapsed = time.time() - self.start
            sys.stderr.write("{}: {}/{} {} ({}%, {:.0f} s)\n".format(self.label, done, total, self.unit, pct,
                                                                      elapsed))
            sys.stderr.flush()
            self.next_pct = (pct // 5 + 1) * 5


def _workers(value):
    if value is None or value == 1:
        return 1
    if value < 0:
        raise UserError("--workers must be >= 0")
    if value == 0:
        return max(1, os.cpu_count() or 1)
    return value


def main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        raise UserError("choose a command: split, sequences or video")
    size = scenes.parse_size(args.size)
    start = time.time()
    if args.command == "split":
        n = scenes.write_split(args.root, args.split, args.count, args.seed, size, args.outliers,
                                  _workers(args.workers), Progress("rt-synth " + args.split, "img", args.quiet),
                                  color=args.color)
        took = time.time() - start
        print("wrote {} images ({}x{}) to {} split {!r} in {:.1f} s ({:.1f} ms/image)".format(
            n, size[0], size[1], args.root, args.split, took, 1e3 * took / max(1, n)))
    elif args.command == "sequences":
        n = scenes.write_sequences(args.root, args.split, args.count, args.length, args.fps, args.seed, size,
                                      args.outliers, _workers(args.workers),
                                      Progress("rt-synth " + args.split, "frame", args.quiet), color=args.color)
        took = time.time() - start
        print("wrote {} sequences x {} frames ({}x{}, {:g} fps) to {} split {!r} in {:.1f} s".format(
            args.count, args.length, size[0], size[1], args.fps, args.root, args.split, took))
    else:
        count = scenes.write_video(args.output, args.frames, args.fps, args.seed, size,
                                      Progress("rt-synth video", "frame", args.quiet))
        took = time.time() - start
        if count != args.frames:
            raise UserError("{} reads back {} frames instead of {}".format(args.output, count, args.frames))
        print("wrote {} ({} frames, {}x{}, {:g} fps) in {:.1f} s".format(
            args.output, args.frames, size[0], size[1], args.fps, took))
    return 0


def entry():
    sys.exit(run_cli(main, prog="rt-synth"))


if __name__ == "__main__":
    entry()
