#!/usr/bin/env python
"""Accuracy tables of every committed checkpoint under the evaluation protocol (docs/evaluation.md).

    python benchmarks/accuracy_tables.py                        # all checkpoints -> docs/accuracy.md
    python benchmarks/accuracy_tables.py --models ood seg       # some of them
    python benchmarks/accuracy_tables.py --threads 2 --output out/accuracy.md

For each checkpoint in checkpoints/ it exports the engines the README reports (FP32, and INT8 for the
two segmentation-head models), runs ``rt-eval`` on each of the DECLARED test splits (image seeds
301-303, sequence seeds 311-313; generated here when missing) and writes Markdown with the mean ±
sample sd over the splits and every per-split number. Everything is cached under ``out/accuracy``
(engines keyed by the checkpoint's sha256, one JSON per engine and split), so a second run only
redoes what changed; the run time is printed and written into the Markdown.

Never use these splits for a decision (which run to keep, which threshold, which calibration): that
is what val splits are for. The tools are run as ``python -m`` modules of this checkout.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime.cli.common import run_cli  # noqa: E402
from runtime.jsonfile import check_output, write_text_atomic  # noqa: E402
from runtime.manifest import sha256_file  # noqa: E402

# Declared in docs/evaluation.md before any result on them was looked at.
TEST_IMAGE_SEEDS = (301, 302, 303)
TEST_SEQUENCE_SEEDS = (311, 312, 313)
IMAGES = {"count": 200, "outliers": 0.5, "size": "256x512"}
SEQUENCES = {"count": 40, "length": 30, "fps": 15}
CALIB = {"root": "data/synthetic", "split": "val", "seed": 1, "count": 200, "calib_count": 100}

# name -> (arch, checkpoint, kind, precisions)
MODELS = [
    ("seg", "swiftnet-rn18", "checkpoints/swiftnet-rn18_synthetic.pt", "images", ("fp32", "int8")),
    ("ood", "swiftnet-rn18-ood", "checkpoints/swiftnet-rn18-ood_synthetic.pt", "images", ("fp32", "int8")),
    ("sl", "swiftnet-rn18-sl", "checkpoints/swiftnet-rn18-sl_synthetic.pt", "images", ("fp32",)),
    ("f2f-mid", "swiftnet-rn18-f2f", "checkpoints/f2f-8-mid_synthetic.pt", "sequences", ("fp32",)),
    ("f2f-conv-mid", "swiftnet-rn18-f2f", "checkpoints/f2f-8-conv-mid_synthetic.pt", "sequences", ("fp32",)),
    ("f2f-short", "swiftnet-rn18-f2f", "checkpoints/f2f-8-short_synthetic.pt", "sequences", ("fp32",)),
]


def log(message):
    sys.stderr.write("[accuracy {:6.0f}s] {}\n".format(time.time() - STARTED, message))
    sys.stderr.flush()


def run(args, logfile):
    """Run ``python -m MODULE ARGS`` in the repository; a failure ends the script with its log."""
    cmd = [sys.executable, "-m"] + [str(a) for a in args]
    with open(logfile, "a") as handle:
        handle.write("$ {}\n".format(" ".join(cmd)))
        handle.flush()
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        if subprocess.call(cmd, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, env=env) != 0:
            sys.exit("accuracy_tables: {} failed, see {}".format(" ".join(cmd[:4]), logfile))


DATA = "data"  # --data-root


def image_split(seed, logfile):
    root = os.path.join(DATA, "test_s{}".format(seed))
    if not os.path.isfile(os.path.join(REPO, root, "synth_test.json")):
        log("generating {}".format(root))
        run(["export.synth_cli", "split", root, "--split", "test", "--count", IMAGES["count"], "--seed", seed,
             "--outliers", IMAGES["outliers"], "--size", IMAGES["size"], "-q"], logfile)
    return root


def sequence_split(seed, logfile):
    root = os.path.join(DATA, "seqtest_s{}".format(seed))
    if not os.path.isfile(os.path.join(REPO, root, "synth_test.json")):
        log("generating {}".format(root))
        run(["export.synth_cli", "sequences", root, "--split", "test", "--count", SEQUENCES["count"],
             "--length", SEQUENCES["length"], "--fps", SEQUENCES["fps"], "--seed", seed, "-q"], logfile)
    return root


def calibration_data(logfile):
    root = CALIB["root"]
    if not os.path.isfile(os.path.join(REPO, root, "synth_val.json")):
        log("generating {} (val seed {}: INT8 calibration)".format(root, CALIB["seed"]))
        run(["export.synth_cli", "split", root, "--split", CALIB["split"], "--count", CALIB["count"],
             "--seed", CALIB["seed"], "-q"], logfile)
    return os.path.join(root, "leftImg8bit", CALIB["split"])


def engine(name, arch, checkpoint, precision, work, logfile):
    """Export (once per checkpoint content) and return the engine path."""
    tag = "{}_{}_{}".format(name, sha256_file(os.path.join(REPO, checkpoint))[:10], precision)
    bundle = arch == "swiftnet-rn18-f2f"
    out = os.path.join(work, "engines", tag if bundle else tag + ".onnx")
    done = os.path.join(out, "forecast.json") if bundle else out + ".json"
    if not os.path.exists(done):
        log("exporting {} {}".format(checkpoint, precision))
        cmd = ["export.cli", "--arch", arch, "--checkpoint", checkpoint, "--output", out, "-q"]
        if precision == "int8":
            cmd += ["--precision", "int8", "--calib", calibration_data(logfile), "--calib-count",
                    CALIB["calib_count"], "--calib-method", "percentile"]
        run(cmd, logfile)
    return out


def evaluate(engine_path, data, threads, work, logfile):
    """rt-eval JSON of one engine on one test split (cached)."""
    key = "{}__{}.json".format(os.path.basename(engine_path.rstrip("/")), os.path.basename(data))
    path = os.path.join(work, "results", key)
    if not os.path.exists(path):
        log("evaluating {} on {}".format(os.path.basename(engine_path), data))
        run(["runtime.cli.eval", "--engine", engine_path, "--data", data, "--split", "test", "--threads", threads,
             "--json", path, "-q"], logfile)
    with open(path) as handle:
        return json.load(handle)


def mean_sd(values, scale=100.0):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return "{:.2f} ± {:.2f}".format(scale * float(np.mean(values)), scale * sd)


def per_split(values, scale=100.0, fmt="{:.2f}"):
    return " / ".join("n/a" if v is None else fmt.format(scale * v) for v in values)


def image_rows(name, results):
    """Markdown rows for an image-split model: {precision: [json per seed]}."""
    rows = []
    for precision, per_seed in results.items():
        miou = [r.get("inlier_miou", r["miou"]) for r in per_seed]
        row = {"model": name, "precision": precision, "miou": miou}
        if "outlier" in per_seed[0]:
            row.update({"ap": [r["outlier"]["ap"] for r in per_seed],
                        "fpr95": [r["outlier"]["fpr_at_95_tpr"] for r in per_seed],
                        "auroc": [r["outlier"]["auroc"] for r in per_seed]})
        rows.append(row)
    return rows


def markdown(image_tables, sequence_tables, seconds, models):
    seeds = ", ".join(str(s) for s in TEST_IMAGE_SEEDS)
    lines = ["# Accuracy of the committed checkpoints", "",
             "Written by `python benchmarks/accuracy_tables.py --models {}` under the protocol of "
             "`docs/evaluation.md`: mean ± sample sd over the declared test splits, then the per-split values "
             "in seed order. Run time {:.0f} min on this machine (cached steps are not redone).".format(
                 " ".join(models), seconds / 60.0), ""]
    if image_tables:
        lines += ["## Single images: test splits seeds {} ({} images each, 256×512, half with outlier "
                  "objects; outlier pixels ignored for mIoU)".format(seeds, IMAGES["count"]), "",
                  "| checkpoint | engine | mIoU (mean ± sd) | per split |", "|---|---|---|---|"]
        for row in image_tables:
            lines.append("| {} | {} | {} % | {} |".format(row["model"], row["precision"].upper(), mean_sd(row["miou"]),
                                                          per_split(row["miou"])))
        ood = [row for row in image_tables if "ap" in row]
        if ood:
            lines += ["", "Outlier detection (pixel level, void ignored):", "",
                      "| checkpoint | engine | AP (mean ± sd) | AP per split | min AP | FPR95 (mean ± sd) | "
                      "FPR95 per split | AUROC (mean ± sd) |", "|---|---|---|---|---|---|---|---|"]
            for row in ood:
                lines.append("| {} | {} | {} % | {} | {:.2f} % | {} % | {} | {} % |".format(
                    row["model"], row["precision"].upper(), mean_sd(row["ap"]), per_split(row["ap"]),
                    100 * min(row["ap"]), mean_sd(row["fpr95"]), per_split(row["fpr95"]), mean_sd(row["auroc"])))
            fp32 = [r for r in ood if r["precision"] == "fp32"]
            int8 = [r for r in ood if r["precision"] == "int8"]
            if fp32 and int8:
                drop = [a - b for a, b in zip(fp32[0]["ap"], int8[0]["ap"])]
                lines += ["", "INT8 AP drop vs FP32: {} pp (per split {})".format(
                    mean_sd(drop), per_split(drop))]
            plain = [r for r in image_tables if r["model"] == "swiftnet-rn18" and r["precision"] == "fp32"]
            if fp32 and plain:
                diff = [a - b for a, b in zip(fp32[0]["miou"], plain[0]["miou"])]
                lines += ["", "Inlier mIoU of the outlier model minus the plain model (FP32, same pixels): {} pp "
                          "(per split {})".format(mean_sd(diff), per_split(diff))]
    if sequence_tables:
        lines += ["", "## Forecasting: test sequences seeds {} ({} sequences of {} frames at {} fps each)".format(
            ", ".join(str(s) for s in TEST_SEQUENCE_SEEDS), SEQUENCES["count"], SEQUENCES["length"],
            SEQUENCES["fps"]), "",
            "| checkpoint | horizon | forecast mIoU | per split | moving mIoU | copy-last | oracle | "
            "gain over copy-last (pp) | gain per split |", "|---|---|---|---|---|---|---|---|---|"]
        for name, per_seed in sequence_tables:
            gain = [r["gain_over_copy_last_pp"] / 100.0 for r in per_seed]
            lines.append("| {} | {:+.1f} s | {} % | {} | {} % | {} % | {} % | {} | {} |".format(
                name, per_seed[0]["horizon"]["s"], mean_sd([r["forecast"]["miou"] for r in per_seed]),
                per_split([r["forecast"]["miou"] for r in per_seed]),
                mean_sd([r["forecast"]["moving_miou"] for r in per_seed]),
                mean_sd([r["copy_last"]["miou"] for r in per_seed]),
                mean_sd([r["oracle"]["miou"] for r in per_seed]), mean_sd(gain), per_split(gain)))
    return "\n".join(lines) + "\n"


def main(argv=None):
    global STARTED, DATA
    STARTED = time.time()
    names = [m[0] for m in MODELS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=names, default=names)
    parser.add_argument("--threads", type=int, default=1, help="inference threads per rt-eval (default 1)")
    parser.add_argument("--work", default="out/accuracy", help="engines, JSON results and the log")
    parser.add_argument("--output", default="docs/accuracy.md", help="Markdown to write")
    parser.add_argument("--data-root", default="data", help="where the test splits are (generated if missing)")
    args = parser.parse_args(argv)
    output = check_output(os.path.join(REPO, args.output), "--output")  # before hours of work
    DATA = args.data_root
    work = os.path.join(REPO, args.work)
    for sub in ("engines", "results"):
        if not os.path.isdir(os.path.join(work, sub)):
            os.makedirs(os.path.join(work, sub))
    logfile = os.path.join(work, "accuracy.log")
    image_tables, sequence_tables = [], []
    for name, arch, checkpoint, kind, precisions in MODELS:
        if name not in args.models:
            continue
        if kind == "images":
            splits = [image_split(s, logfile) for s in TEST_IMAGE_SEEDS]
            results = {}
            for precision in precisions:
                path = engine(name, arch, checkpoint, precision, work, logfile)
                results[precision] = [evaluate(path, d, args.threads, work, logfile) for d in splits]
            label = {"seg": "swiftnet-rn18", "ood": "swiftnet-rn18-ood", "sl": "swiftnet-rn18-sl"}[name]
            image_tables += image_rows(label, results)
        else:
            splits = [sequence_split(s, logfile) for s in TEST_SEQUENCE_SEEDS]
            path = engine(name, arch, checkpoint, "fp32", work, logfile)
            sequence_tables.append((os.path.basename(checkpoint).replace("_synthetic.pt", ""),
                                    [evaluate(path, d, args.threads, work, logfile) for d in splits]))
    seconds = time.time() - STARTED
    text = markdown(image_tables, sequence_tables, seconds, args.models)
    write_text_atomic(output, text)
    sys.stdout.write(text)
    sys.stdout.write("\naccuracy_tables: {:.1f} min\n".format(seconds / 60.0))
    return 0


STARTED = time.time()

if __name__ == "__main__":
    sys.exit(run_cli(main, prog="accuracy_tables"))
