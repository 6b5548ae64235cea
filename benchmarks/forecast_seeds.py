#!/usr/bin/env python
"""The forecasting ablation over several seeds: DeformF2F-8 vs the plain-conv F2F-8, mid term.

    python benchmarks/forecast_seeds.py                      # seeds 0 1 2, both variants, 2 jobs
    python benchmarks/forecast_seeds.py --seeds 0 1 --jobs 1 --output out/seeds2

One run differs from the next by up to ~0.7 pp mIoU on this data, so a claim such as
"deformable above plain" needs several seeds per variant. For every (variant, seed) this trains
with the mid-term recipe of docs/forecasting.md plus ``--seed``, exports the FP32 bundle and runs
``rt-eval`` on the test sequences; finished runs (their ``_test.json``) are reused, so an
interrupted study continues where it stopped. ``--jobs 2`` runs two trainings side by side with
one thread each (on 2 cores that finishes sooner than one after the other with two threads).
It prints a Markdown table: per seed, mean and sample standard deviation, the gain over
copy-last and the deformable-minus-plain difference paired by seed.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(os.path.abspath(sys.executable))
VARIANTS = ("f2f-8", "f2f-8-conv")
FEATURES = "checkpoints/swiftnet-rn18-sl_synthetic.pt"
TRAIN = ["--data", "data/sequences60", "--extra-train", "data/sequences60b", "--extra-train", "data/sequences60c",
         "--horizon", "9", "--iterations", "4000", "--finetune-iterations", "800", "--batch-size", "16",
         "--finetune-batch-size", "8", "--lr", "5e-4", "--val-every", "800", "--half",
         "--features-cache", "out/features"]
TEST = ["--data", "data/sequences_test", "--split", "test"]


def _tool(name):
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else name


def run_one(arch, seed, output, threads):
    """Train, export and evaluate one (variant, seed); returns the rt-eval JSON (reused if present)."""
    name = "{}-mid_s{}".format(arch, seed)
    result = os.path.join(output, name + "_test.json")
    if not os.path.exists(result):
        checkpoint, bundle = os.path.join(output, name + ".pt"), os.path.join(output, name)
        steps = [
            [_tool("rt-train"), "--arch", arch, "--features-from", FEATURES, "--output", checkpoint,
             "--seed", str(seed), "--threads", str(threads), "-q"] + TRAIN,
            [_tool("rt-export"), "--arch", "swiftnet-rn18-f2f", "--checkpoint", checkpoint, "--output", bundle, "-q"],
            [_tool("rt-eval"), "--engine", bundle, "--threads", str(threads), "--json", result, "-q"] + TEST,
        ]
        with open(os.path.join(output, name + ".log"), "a") as log:
            for step in steps:
                log.write("$ {}\n".format(" ".join(step)))
                log.flush()
                if subprocess.call(step, cwd=REPO, stdout=log, stderr=subprocess.STDOUT) != 0:
                    raise RuntimeError("{} failed: see {}".format(" ".join(step[:3]), log.name))
    with open(result) as f:
        return json.load(f)


def table(results, seeds):
    """Markdown rows: per seed, then mean +- sd, then the paired deformable - plain difference."""
    def cell(r):
        return "{:.2f} % ({:.2f} %) / {:+.2f} pp".format(100 * r["forecast"]["miou"], 100 * r["forecast"]["moving_miou"],
                                                       r["gain_over_copy_last_pp"])

    lines = ["| seed | " + " | ".join("{}: mIoU (moving) / vs copy-last".format(a) for a in VARIANTS) + " |",
             "|---" * (len(VARIANTS) + 1) + "|"]
    for s in seeds:
        lines.append("| {} | ".format(s) + " | ".join(cell(results[a, s]) for a in VARIANTS) + " |")
    stats = {}
    for a in VARIANTS:
        miou = np.array([100 * results[a, s]["forecast"]["miou"] for s in seeds])
        moving = np.array([100 * results[a, s]["forecast"]["moving_miou"] for s in seeds])
        gain = np.mean([results[a, s]["gain_over_copy_last_pp"] for s in seeds])
        sd = miou.std(ddof=1) if len(seeds) > 1 else float("nan")
        stats[a] = miou, moving, "{:.2f} ± {:.2f} % ({:.2f} %) / {:+.2f} pp".format(miou.mean(), sd, moving.mean(), gain)
    lines.append("| mean ± sd | " + " | ".join(stats[a][2] for a in VARIANTS) + " |")
    diff = stats[VARIANTS[0]][0] - stats[VARIANTS[1]][0]
    diff_moving = stats[VARIANTS[0]][1] - stats[VARIANTS[1]][1]
    lines.append("")
    lines.append("{} - {} paired by seed: mIoU {} (mean {:+.2f} pp), moving {} (mean {:+.2f} pp)".format(
        VARIANTS[0], VARIANTS[1], " ".join("{:+.2f}".format(d) for d in diff), diff.mean(),
        " ".join("{:+.2f}".format(d) for d in diff_moving), diff_moving.mean()))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default="out/forecast_seeds",
                        help="checkpoints, bundles, logs and eval JSON, under the repo (delete it to start over)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings side by side (one thread each if > 1)")
    args = parser.parse_args(argv)
    output = os.path.join(REPO, args.output)
    os.makedirs(output, exist_ok=True)
    threads = 1 if args.jobs > 1 else 2
    # Deformable runs first: they take about twice as long as plain ones on a CPU.
    todo = [(a, s) for a in VARIANTS for s in args.seeds]
    results, failure = {}, None
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_one, a, s, output, threads): (a, s) for a, s in todo}
        for future in concurrent.futures.as_completed(futures):
            a, s = futures[future]
            try:
                results[a, s] = future.result()
            except RuntimeError as error:
                # Runs not started yet are dropped; one already training finishes first (and is reused next time).
                failure = error
                print("forecast_seeds: {}".format(error), file=sys.stderr, flush=True)
                pool.shutdown(wait=False, cancel_futures=True)
                break
            print("{} seed {}: {:.2f} % mIoU".format(a, s, 100 * results[a, s]["forecast"]["miou"]), flush=True)
    if failure:
        sys.exit("forecast_seeds: {}".format(failure))
    print(table(results, args.seeds))


if __name__ == "__main__":
    main()
