"""A fleet of recorded drives through one engine: one task per drive, on a Ray cluster or one
after another (rt-segment --drives, rt-eval --drives; docs/serving.md, "Fleets on Ray").

A drive is a video file, a folder of images, or a Cityscapes-format folder (``leftImg8bit/`` +
``gtFine/``: labelled; ``rt-synth split`` / ``rt-synth sequences`` write them). ``find_drives``
takes a folder of drives, a text file listing them (one path a line, relative to the file), or
the paths themselves. Per drive, ``run_drive`` streams it through the engine (runtime.pipeline:
FPS) or, where labels exist, evaluates it (runtime.evaluation: mIoU, outlier AP, forecast gain
over copy-last) and writes ``OUT/drives/NAME.json`` atomically. ``run_fleet`` runs the drives
sequentially or as Ray tasks (``ray_address``: ``auto`` or ``HOST:PORT``); a task whose worker
dies is run again by Ray (``retries``), and since every drive has exactly one result, keyed by
its name, and its file is replaced whole, a retried drive is neither lost nor counted twice.
``aggregate`` makes the one report: per drive and overall (mIoU and pixel accuracy from the
summed confusion matrices, outlier AP from the summed score histograms: exact, not means of
means; the forecast gain is the sample-weighted mean of the drives').

Ray is optional (the ``ray`` extra); without ``ray_address`` nothing of it is imported.
"""
import os
import sys
import time

import numpy as np

from runtime.errors import UserError
from runtime.jsonfile import Inputs, check_output_folder, write_atomic

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
DRIVES_FOLDER = "drives"
RETRIES = 3


class Drive(object):
    """One recorded drive: ``name`` (unique in the fleet), ``path`` and ``kind``: ``video``,
    ``images`` or ``labelled`` (a Cityscapes-format folder)."""

    def __init__(self, path, name=None):
        self.path = os.path.abspath(str(path))
        if os.path.isdir(os.path.join(self.path, "leftImg8bit")):
            self.kind = "labelled"
        elif os.path.isdir(self.path):
            self.kind = "images"
        elif os.path.isfile(self.path) and self.path.lower().endswith(VIDEO_EXTENSIONS):
            self.kind = "video"
        else:
            raise UserError("{}: not a drive (a video file, a folder of images, or a "
                            "Cityscapes-format folder)".format(path))
        base = os.path.basename(self.path.rstrip(os.sep))
        self.name = name or "".join(c if c.isalnum() or c in "-_." else "_" for c in base)

    def to_dict(self):
        return {"name": self.name, "path": self.path, "kind": self.kind}


def _is_drive_folder(path):
    """A folder that is itself one drive (labelled, or holding images directly)."""
    from runtime.sources import IMAGE_EXTENSIONS
    if os.path.isdir(os.path.join(path, "leftImg8bit")):
        return True
    return any(n.lower().endswith(IMAGE_EXTENSIONS) for n in os.listdir(path))


def find_drives(specs):
    """The drives named by ``specs`` (a list of paths; a folder of drives; a .txt list)."""
    paths = []
    for spec in specs:
        spec = str(spec)
        if os.path.isfile(spec) and spec.lower().endswith(".txt"):
            folder = os.path.dirname(os.path.abspath(spec))
            with open(spec) as handle:
                for line in handle:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        paths.append(os.path.join(folder, line))
        elif os.path.isdir(spec) and not _is_drive_folder(spec):
            for entry in sorted(os.listdir(spec)):
                full = os.path.join(spec, entry)
                if entry.startswith("."):
                    continue
                if os.path.isdir(full) or entry.lower().endswith(VIDEO_EXTENSIONS):
                    paths.append(full)
        elif os.path.exists(spec):
            paths.append(spec)
        else:
            raise UserError("drive {} does not exist".format(spec))
    drives = [Drive(p) for p in paths]
    if not drives:
        raise UserError("no drives in {}".format(", ".join(str(s) for s in specs)))
    seen = {}
    for drive in drives:
        if drive.name in seen:
            raise UserError("two drives are named {!r} ({} and {}): names must be unique".format(
                drive.name, seen[drive.name], drive.path))
        seen[drive.name] = drive.path
    return drives


# -- one drive (what a worker runs) ------------------------------------------------------------

def _stream(engine, drive):
    from runtime import sources
    from runtime.pipeline import Pipeline
    source = sources.open_source(drive.path, kind="video" if drive.kind == "video" else "images")
    pipeline = Pipeline(source, engine)
    try:
        pipeline.start()
        pipeline.run()
    finally:
        pipeline.close()
    summary = pipeline.summary()
    if summary["error"]:
        raise UserError("drive {}: {}".format(drive.name, summary["error"]))
    return {"frames": summary["frames"]["processed"], "fps": summary["fps"]["processed"],
            "wall_s": summary["wall_s"]}


def _split_of(drive, split):
    """``split`` where the drive has it, else its only split (None: all of them)."""
    root = os.path.join(drive.path, "leftImg8bit")
    present = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))
    if split in present:
        return split
    return present[0] if len(present) == 1 else None


def _evaluate_forecast(engine_path, drive, split, options):
    """A forecast bundle on a labelled sequence drive (rt-eval's evaluation: it opens the
    bundle's stages itself)."""
    from runtime import evaluation
    split = _split_of(drive, split)
    start = time.perf_counter()
    result = evaluation.evaluate_engine(engine_path, drive.path, split=split, quiet=True, **options)
    wall = time.perf_counter() - start
    samples = result["samples"]
    return {"frames": samples, "fps": samples / wall, "wall_s": wall, "split": split,
            "forecast": {"samples": samples, "miou": result["forecast"]["miou"],
                         "copy_last_miou": result["copy_last"]["miou"],
                         "gain_over_copy_last_pp": result["gain_over_copy_last_pp"]}}


def _evaluate(engine, drive, split):
    """A segmentation / outlier engine on a labelled drive: its confusion matrix (and outlier
    score histogram) kept in the result, so that the fleet's totals are exact."""
    from runtime import evaluation
    from runtime.data.cityscapes import find_pairs
    from runtime.outlier_eval import OutlierMetric
    split = _split_of(drive, split)
    start = time.perf_counter()
    pairs = find_pairs(drive.path, split)
    if not pairs:
        raise UserError("drive {}: no images with labels".format(drive.name))
    metric = OutlierMetric(breakdown=False) if engine.outlier_output is not None else None
    hist = metric.histogram if metric is not None else None
    matrix = evaluation.evaluate(engine, pairs, metric=metric)[0]
    wall = time.perf_counter() - start
    out = {"frames": len(pairs), "fps": len(pairs) / wall, "wall_s": wall, "split": split,
           "confusion": matrix.matrix.tolist(), "missed": matrix.missed.tolist()}
    out.update(matrix.summary([c["name"] for c in engine.classes]))
    if hist is not None and hist.pos.sum() + hist.neg.sum() > 0:
        out["outlier"] = hist.summary()
        out["outlier_histogram"] = {"pos": hist.pos.tolist(), "neg": hist.neg.tolist()}
    return out


def run_drive(engine_path, drive, out_dir, split=None, backend=None, threads=None, verify=True):
    """One drive through the engine; writes ``out_dir/drives/NAME.json`` atomically and returns
    the result dict (its ``drive``, ``kind``, ``frames``, ``fps``, ``wall_s``, metrics)."""
    import runtime
    from runtime.manifest import peek_task
    started = time.time()
    options = {"backend": backend, "threads": threads, "verify": verify}
    if drive.kind == "labelled" and peek_task(engine_path) == "forecast":
        measured = _evaluate_forecast(engine_path, drive, split, options)
    else:
        engine = runtime.open_engine(engine_path, **options)
        try:
            measured = (_evaluate(engine, drive, split) if drive.kind == "labelled"
                        else _stream(engine, drive))
        finally:
            engine.close()
    result = dict(drive.to_dict(), engine=engine_path, started=started, finished=time.time(),
                  host=os.uname()[1], pid=os.getpid())
    result.update(measured)
    write_atomic(os.path.join(out_dir, DRIVES_FOLDER, drive.name + ".json"), result, indent=1)
    return result


# -- the fleet ---------------------------------------------------------------------------------

class Progress(object):
    """``[#####.....] 3/8 drives (1 failed)`` on stderr as drives finish (silent if ``quiet``)."""

    def __init__(self, total, quiet=False, stream=None, width=30):
        self.total, self.quiet, self.width = total, quiet, width
        self.stream = stream or sys.stderr
        self.done = self.failed = 0

    def update(self, name, ok=True):
        self.done += 1
        self.failed += 0 if ok else 1
        if self.quiet:
            return
        filled = int(round(self.width * self.done / float(self.total)))
        self.stream.write("[{}{}] {}/{} drives{}  {}\n".format(
            "#" * filled, "." * (self.width - filled), self.done, self.total,
            " ({} failed)".format(self.failed) if self.failed else "", name))
        self.stream.flush()


def _ray_tasks(ray_address, engine_path, drives, out_dir, kwargs, retries, progress):
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'swiftrt[ray]' (or run without --ray: "
                        "the drives then run one after another)")
    # Workers import swiftrt from where this process does, unless it is installed on the nodes.
    code_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        ray.init(address=ray_address, logging_level="ERROR", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": code_root}})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError("--ray {}: cannot connect to a Ray cluster: {}".format(
            ray_address, str(exc).strip().splitlines()[0] if str(exc).strip() else exc))
    try:
        task = ray.remote(max_retries=retries, num_cpus=1)(fleet_drive)
        pending = dict((task.remote(engine_path, d, out_dir, **kwargs), d) for d in drives)
        results, failures = {}, {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            drive = pending.pop(ready[0])
            try:
                results[drive.name] = ray.get(ready[0])
                progress.update(drive.name)
            except Exception as exc:  # the task failed after its retries: say which and why
                failures[drive.name] = _task_error(exc)
                progress.update(drive.name, ok=False)
        return results, failures
    finally:
        ray.shutdown()


def fleet_drive(engine_path, drive, out_dir, **kwargs):
    """run_drive as a Ray task (its worker's process title is ``ray::fleet_drive``)."""
    return run_drive(engine_path, drive, out_dir, **kwargs)


def _task_error(exc):
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return "{}: {}".format(type(cause).__name__, text[-1] if text else "")


def run_fleet(engine_path, drives, out_dir, ray_address=None, split=None, backend=None,
              threads=None, verify=True, retries=RETRIES, quiet=False):
    """Run every drive; returns the aggregated report (``aggregate``), also written to
    ``out_dir/fleet.json``. Drives run as Ray tasks with ``ray_address``, else one after another."""
    inputs = Inputs().add(engine_path, "--engine")
    for drive in drives:
        inputs.add(drive.path, "drive")
    check_output_folder(out_dir, "--out-dir", inputs)
    check_output_folder(os.path.join(out_dir, DRIVES_FOLDER), "--out-dir", inputs)
    kwargs = {"split": split, "backend": backend, "threads": threads, "verify": verify}
    progress = Progress(len(drives), quiet)
    start = time.time()
    if ray_address:
        results, failures = _ray_tasks(ray_address, engine_path, drives, out_dir, kwargs,
                                       retries, progress)
    else:
        results, failures = {}, {}
        for drive in drives:
            try:
                results[drive.name] = run_drive(engine_path, drive, out_dir, **kwargs)
                progress.update(drive.name)
            except UserError as exc:
                failures[drive.name] = str(exc)
                progress.update(drive.name, ok=False)
    report = aggregate(engine_path, drives, results, failures, time.time() - start,
                       runner="ray {}".format(ray_address) if ray_address else "sequential")
    write_atomic(os.path.join(out_dir, "fleet.json"), report, indent=2)
    return report


def aggregate(engine_path, drives, results, failures, wall_s, runner):
    """The fleet report: ``drives`` (per drive, in the fleet's order) and ``overall``."""
    per_drive, matrix, missed, pos, neg = [], None, None, None, None
    forecast_samples = forecast_gain = 0.0
    names = None
    for drive in drives:
        result = results.get(drive.name)
        if result is None:
            per_drive.append(dict(drive.to_dict(), error=failures.get(drive.name, "not run")))
            continue
        entry = dict((k, v) for k, v in result.items()
                     if k not in ("confusion", "missed", "outlier_histogram"))
        per_drive.append(entry)
        if "confusion" in result:
            m, x = np.asarray(result["confusion"], np.int64), np.asarray(result["missed"], np.int64)
            matrix = m if matrix is None else matrix + m
            missed = x if missed is None else missed + x
            names = list(result.get("per_class_iou", {}).keys()) or names
        if "outlier_histogram" in result:
            p = np.asarray(result["outlier_histogram"]["pos"], np.int64)
            n = np.asarray(result["outlier_histogram"]["neg"], np.int64)
            pos, neg = (p, n) if pos is None else (pos + p, neg + n)
        if "forecast" in result:
            forecast_samples += result["forecast"]["samples"]
            forecast_gain += result["forecast"]["samples"] * result["forecast"]["gain_over_copy_last_pp"]
    done = [results[d.name] for d in drives if d.name in results]
    frames = sum(r["frames"] for r in done)
    busy = sum(r["wall_s"] or 0.0 for r in done)
    overall = {"drives": len(drives), "completed": len(done), "failed": len(drives) - len(done),
               "frames": frames, "wall_s": wall_s,
               "fps": frames / wall_s if wall_s > 0 else None,
               "fps_per_task": frames / busy if busy > 0 else None}
    if matrix is not None:
        from runtime.metrics import ConfusionMatrix, OutlierHistogram
        merged = ConfusionMatrix(matrix.shape[0])
        merged.matrix, merged.missed = matrix, missed
        block = merged.summary(names)
        overall.update(miou=block["miou"], pixel_accuracy=block["pixel_accuracy"],
                       labelled_drives=sum(1 for r in done if "confusion" in r))
        if pos is not None:
            hist = OutlierHistogram(bins=len(pos))
            hist.pos, hist.neg = pos, neg
            overall["outlier"] = hist.summary()
    if forecast_samples:
        overall["forecast"] = {"samples": int(forecast_samples),
                               "gain_over_copy_last_pp": forecast_gain / forecast_samples,
                               "how": "mean of the drives' gains weighted by their samples"}
    return {"tool": "fleet", "engine": engine_path, "runner": runner, "drives": per_drive,
            "overall": overall, "failures": failures}
