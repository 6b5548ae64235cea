"""Why does outlier AP swing between 200-image splits? Sampling or the model (issue 22).

    python benchmarks/outlier_diagnosis.py --engine engines/ood_fp32.onnx \\
        --splits data/oodval_201 data/oodval_202 ... --split val --json out/diag.json

Runs the engine once over generated splits that carry the generator's outlier sidecars
(``rt-synth split --outliers``; VAL splits: this is for diagnosis and model selection, never
for test splits) and keeps, per image, a 1000-bin histogram of inlier and outlier scores and,
per outlier object, its pixels' histogram and attributes (cached in an .npz next to the JSON,
so the analysis can be re-run without inference). Then:

1. AP / FPR95 per split, and over all images pooled;
2. sampling: AP of random 200-image (and 1000-image) sets drawn with replacement from the
   pooled images (bootstrap); their spread is what a 200-image test split can show by chance;
3. the model: per-object detection rate (share of objects with at least half their pixels
   above the 0.5 threshold) and pooled pixel FPR95 / AP per kind, size, distance, position,
   contrast, lighting, exposure; and, per split, the objects whose removal raises that
   split's AP the most (the misses that cost it).

Prints Markdown; ``--json`` writes all numbers. Uses numpy only (AP as runtime/metrics.py).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from runtime.cli.common import run_cli  # noqa: E402
from runtime.jsonfile import check_output, write_atomic  # noqa: E402
from runtime.manifest import sha256_file  # noqa: E402
from runtime.metrics import _curve  # noqa: E402
from runtime.outlier_eval import IMAGE_GROUPS, OBJECT_GROUPS, image_groups, object_groups  # noqa: E402

BINS = 1000
THRESHOLD_BIN = BINS // 2  # score >= 0.5


def metrics(pos, neg):
    """(AP, AUROC, FPR95) of binned counts, bins ascending in score."""
    return _curve(np.asarray(pos)[::-1], np.asarray(neg)[::-1])


def collect(engine_path, split_dirs, split, threads=1, limit=None):
    """Per-image histograms and per-object records of the engine on the splits."""
    import cv2

    from runtime.outlier_eval import predict_with_score
    from runtime.data.cityscapes import find_pairs, read_outlier_details, read_outlier_mask, outlier_mask_path
    from runtime import open_engine
    engine = open_engine(engine_path, threads=threads)
    pos_img, neg_img, img_split, img_info = [], [], [], []
    obj_hist, obj_rec = [], []
    for split_index, root in enumerate(split_dirs):
        pairs = find_pairs(root, split)
        if limit:
            pairs = pairs[:limit]
        if not pairs:
            raise SystemExit("no images under {} (split {})".format(root, split))
        for image_path, label_path in pairs:
            image = cv2.imread(image_path, cv2.IMREAD_COLOR)
            _, score = predict_with_score(engine, image)
            mask = read_outlier_mask(outlier_mask_path(label_path))
            details = read_outlier_details(label_path)
            if mask is None or details is None:
                raise SystemExit("{} has no outlier mask / sidecars: write it with rt-synth split --outliers"
                                 .format(label_path))
            instances, info = details
            index = np.minimum((np.clip(score, 0.0, 1.0) * BINS).astype(np.int64), BINS - 1)
            pos_img.append(np.bincount(index[mask == 1], minlength=BINS).astype(np.int32))
            neg_img.append(np.bincount(index[mask == 0], minlength=BINS).astype(np.int32))
            img_split.append(split_index)
            img_info.append(info.get("image") or {})
            for obj in info["objects"]:
                pixels = (instances == obj["id"]) & (mask == 1)
                if not pixels.any():
                    continue
                obj_hist.append(np.bincount(index[pixels], minlength=BINS).astype(np.int32))
                record = dict(obj)
                record["image"] = len(pos_img) - 1
                record["file"] = os.path.relpath(label_path, root)
                obj_rec.append(record)
    return {"pos": np.array(pos_img), "neg": np.array(neg_img), "split": np.array(img_split),
            "image_info": img_info, "obj_hist": np.array(obj_hist).reshape(-1, BINS), "objects": obj_rec}


def cache_key(engine, splits, split, limit):
    """What the histograms depend on: the engine's bytes and the images it ran on."""
    return {"engine_sha256": sha256_file(engine), "splits": [os.path.abspath(s) for s in splits],
            "split": split, "limit": limit}


def save_cache(path, data, key):
    meta = {"image_info": data["image_info"], "objects": data["objects"], "key": key}
    with open(path, "wb") as handle:  # the path was checked by check_output; a file object keeps
        np.savez_compressed(handle, pos=data["pos"], neg=data["neg"], split=data["split"],  # the name
                            obj_hist=data["obj_hist"], meta=np.array(json.dumps(meta)))


def load_cache(path, key):
    """The cached histograms, or None when they were collected for another engine or images."""
    raw = np.load(path)
    meta = json.loads(str(raw["meta"]))
    if meta.get("key") != key:
        return None
    return {"pos": raw["pos"], "neg": raw["neg"], "split": raw["split"], "obj_hist": raw["obj_hist"],
            "image_info": meta["image_info"], "objects": meta["objects"]}


def _pct(value):
    return "n/a" if value is None or np.isnan(value) else "{:.2f} %".format(100 * value)


def analyse(data, split_names, boot=1000, seed=0):
    """All numbers of the diagnosis as a dict."""
    pos, neg, split = data["pos"].astype(np.int64), data["neg"].astype(np.int64), data["split"]
    rng = np.random.RandomState(seed)
    out = {"bins": BINS, "images": int(len(pos)), "objects": len(data["objects"]), "splits": []}
    # 1. per split and pooled
    for i, name in enumerate(split_names):
        sel = split == i
        ap, auroc, fpr95 = metrics(pos[sel].sum(0), neg[sel].sum(0))
        n_obj = sum(1 for o in data["objects"] if split[o["image"]] == i)
        out["splits"].append({"split": name, "images": int(sel.sum()), "objects": n_obj,
                              "outlier_pixels": int(pos[sel].sum()), "ap": ap, "fpr95": fpr95})
    ap, auroc, fpr95 = metrics(pos.sum(0), neg.sum(0))
    out["pooled"] = {"ap": ap, "auroc": auroc, "fpr95": fpr95, "outlier_pixels": int(pos.sum())}
    # 2. bootstrap over images: what a split of n images shows by chance
    out["bootstrap"] = {}
    for n in (200, 1000):
        aps, fprs = [], []
        for _ in range(boot):
            pick = rng.randint(0, len(pos), n)
            a, _, f = metrics(pos[pick].sum(0), neg[pick].sum(0))
            aps.append(a)
            fprs.append(f)
        aps = np.array(aps)
        out["bootstrap"][str(n)] = {"mean": float(np.nanmean(aps)), "sd": float(np.nanstd(aps)),
                                    "p2.5": float(np.nanpercentile(aps, 2.5)),
                                    "p97.5": float(np.nanpercentile(aps, 97.5)),
                                    "share_below_77": float(np.mean(aps < 0.77)),
                                    "fpr95_p97.5": float(np.nanpercentile(fprs, 97.5))}
    # 3. the model: per group, pooled pixel metrics (object pixels vs all inliers) and detection rate
    obj_hist = data["obj_hist"].astype(np.int64)
    detected = obj_hist[:, THRESHOLD_BIN:].sum(1) >= 0.5 * obj_hist.sum(1)
    neg_all = neg.sum(0)
    groups = {}
    for attribute in OBJECT_GROUPS:
        table = {}
        for k, obj in enumerate(data["objects"]):
            table.setdefault(object_groups(obj)[attribute], []).append(k)
        groups[attribute] = {}
        for group, members in sorted(table.items()):
            a, _, f = metrics(obj_hist[members].sum(0), neg_all)
            groups[attribute][group] = {"objects": len(members), "detected": float(detected[members].mean()),
                                        "outlier_pixels": int(obj_hist[members].sum()),
                                        "pixel_share": float(obj_hist[members].sum() / max(1, obj_hist.sum())),
                                        "ap": a, "fpr95": f}
    for attribute in IMAGE_GROUPS:
        table = {}
        for k, info in enumerate(data["image_info"]):
            table.setdefault(image_groups(info)[attribute], []).append(k)
        groups[attribute] = {}
        for group, members in sorted(table.items()):
            objs = [k for k, o in enumerate(data["objects"]) if o["image"] in set(members)]
            a, _, f = metrics(pos[members].sum(0), neg[members].sum(0))
            groups[attribute][group] = {"images": len(members), "objects": len(objs),
                                        "detected": float(detected[objs].mean()) if objs else None,
                                        "ap": a, "fpr95": f}
    out["groups"] = groups
    # the misses that cost each split most: AP gain when one object is left out (set void)
    out["costly_objects"] = {}
    for i, name in enumerate(split_names):
        sel = split == i
        p, n = pos[sel].sum(0), neg[sel].sum(0)
        base = metrics(p, n)[0]
        gains = []
        for k, obj in enumerate(data["objects"]):
            if split[obj["image"]] != i:
                continue
            gains.append((metrics(p - obj_hist[k], n)[0] - base, k))
        gains.sort(reverse=True)
        rows = []
        for gain, k in gains[:5]:
            obj = data["objects"][k]
            rows.append({"ap_gain_without": gain, "file": obj["file"], "shape": obj.get("shape"),
                         "texture": obj.get("texture"), "pixels": obj.get("pixels"),
                         "distance_m": obj.get("distance_m"), "on_road": obj.get("on_road"),
                         "contrast": obj.get("contrast"), "detected": bool(detected[k]),
                         "mean_score": float((obj_hist[k] * (np.arange(BINS) + 0.5) / BINS).sum()
                                             / max(1, obj_hist[k].sum()))})
        out["costly_objects"][name] = rows
    return out


def markdown(result, title):
    lines = ["## {}".format(title), "",
             "| split | images | objects | outlier pixels | AP | FPR95 |", "|---|---|---|---|---|---|"]
    for row in result["splits"]:
        lines.append("| {} | {} | {} | {} | {} | {} |".format(row["split"], row["images"], row["objects"],
                                                             row["outlier_pixels"], _pct(row["ap"]),
                                                             _pct(row["fpr95"])))
    aps = [row["ap"] for row in result["splits"]]
    lines.append("| mean ± sd of the splits | | | | {:.2f} ± {:.2f} % | |".format(
        100 * np.mean(aps), 100 * np.std(aps, ddof=1) if len(aps) > 1 else 0.0))
    pooled = result["pooled"]
    lines.append("| all pooled | {} | {} | {} | {} | {} |".format(result["images"], result["objects"],
                                                                  pooled["outlier_pixels"], _pct(pooled["ap"]),
                                                                  _pct(pooled["fpr95"])))
    lines += ["", "Bootstrap over the pooled images (sets drawn with replacement):", "",
              "| set size | mean AP | sd | 95 % interval | share below 77 % | FPR95 97.5th pct |",
              "|---|---|---|---|---|---|"]
    for n, b in sorted(result["bootstrap"].items(), key=lambda kv: int(kv[0])):
        lines.append("| {} images | {} | {:.2f} pp | {} – {} | {:.1%} | {} |".format(
            n, _pct(b["mean"]), 100 * b["sd"], _pct(b["p2.5"]), _pct(b["p97.5"]), b["share_below_77"],
            _pct(b["fpr95_p97.5"])))
    lines += ["", "Per group (pooled): objects, share detected (>= half the pixels above 0.5), share of "
              "outlier pixels, pixel AP against all inliers, FPR95:", "",
              "| attribute | group | objects | detected | pixel share | AP | FPR95 |", "|---|---|---|---|---|---|---|"]
    for attribute, groups in result["groups"].items():
        for group, g in groups.items():
            lines.append("| {} | {} | {} | {} | {} | {} | {} |".format(
                attribute, group, g["objects"], "n/a" if g.get("detected") is None else "{:.0%}".format(g["detected"]),
                "{:.1%}".format(g["pixel_share"]) if "pixel_share" in g else "—", _pct(g["ap"]), _pct(g["fpr95"])))
    lines += ["", "Costliest objects per split (AP gain if the object were left out):", ""]
    for split, rows in result["costly_objects"].items():
        for row in rows[:3]:
            lines.append("- {}: +{:.2f} pp without {} ({} {}, {} px, {} m, {}, contrast {}, mean score {:.2f})".format(
                split, 100 * row["ap_gain_without"], row["file"], row["shape"], row["texture"], row["pixels"],
                row["distance_m"], "road" if row["on_road"] else "roadside", row["contrast"], row["mean_score"]))
    return "\n".join(lines) + "\n"


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True)
    parser.add_argument("--splits", nargs="+", required=True, help="generated roots with outlier sidecars")
    parser.add_argument("--split", default="val")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, help="first N images of each split")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--json", help="write all numbers here (and the histograms beside it as .npz)")
    parser.add_argument("--title", default="Outlier diagnosis")
    args = parser.parse_args(argv)
    if args.json:
        args.json = check_output(args.json, "--json")
    started = time.time()
    cache = (check_output(os.path.splitext(args.json)[0] + ".npz", "--json's .npz cache")
             if args.json else None)
    key = cache_key(args.engine, args.splits, args.split, args.limit)
    data = load_cache(cache, key) if cache and os.path.isfile(cache) else None
    if data is None:  # no cache, or one of another engine or other images: collect again
        data = collect(args.engine, args.splits, args.split, args.threads, args.limit)
        if cache:
            save_cache(cache, data, key)
    names = [os.path.basename(os.path.normpath(s)) for s in args.splits]
    result = analyse(data, names, boot=args.bootstrap)
    result.update({"engine": args.engine, "split": args.split, "seconds": round(time.time() - started, 1)})
    sys.stdout.write(markdown(result, args.title))
    sys.stdout.write("\n({:.0f} s)\n".format(time.time() - started))
    if args.json:
        write_atomic(args.json, _jsonable(result), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="outlier_diagnosis"))
