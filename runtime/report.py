"""The run report: what ran, where, and how fast (JSON; schema in docs/report-schema.md).

A number without its context is not comparable, so the report carries the backend
and its versions, the host (CPU, GPU; on a Jetson the module, the nvpmodel mode and
whether clocks are locked) and memory at start and end. Host probing is best-effort:
it never fails and never waits long.
"""
import os
import platform
import re
import subprocess
import time

from runtime import tasks
from runtime.jsonfile import write_atomic
from runtime.stats import ms_text

REPORT_SCHEMA_VERSION = 1
_PROBE_TIMEOUT = 3.0  # s, for nvidia-smi, nvpmodel, jetson_clocks


def _read(path, limit=1 << 16):
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def _run(cmd):
    """stdout of a command, or None if it is missing, fails or takes too long."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True)
    except (OSError, ValueError):
        return None
    try:
        out, _ = proc.communicate(timeout=_PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return out if proc.returncode == 0 else None


def _status_kb(field, text=None):
    text = text if text is not None else _read("/proc/self/status")
    match = re.search(r"^{}:\s*(\d+)\s*kB".format(field), text or "", re.M)
    return int(match.group(1)) if match else None


def rss_mb():
    """Resident memory of this process in MB (VmRSS), or None where /proc is missing."""
    kb = _status_kb("VmRSS")
    return round(kb / 1024.0, 1) if kb is not None else None


def memory_info(rss_start_mb=None):
    text = _read("/proc/self/status")
    rss, peak = _status_kb("VmRSS", text), _status_kb("VmHWM", text)
    return {"rss_start_mb": rss_start_mb,
            "rss_end_mb": round(rss / 1024.0, 1) if rss is not None else None,
            "rss_peak_mb": round(peak / 1024.0, 1) if peak is not None else None}


def _cpu_model():
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        match = re.search(r"^{}\s*:\s*(.+)$".format(key), text, re.M)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine() or None


def _gpus():
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader"])
    gpus = []
    for line in (out or "").strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if parts and parts[0]:
            gpus.append({"name": parts[0],
                         "driver": parts[1] if len(parts) > 1 else None,
                         "memory": parts[2] if len(parts) > 2 else None})
    return gpus


def _jetson():
    """Module, L4T release, nvpmodel mode and clock lock state; None when not a Jetson."""
    model = _read("/proc/device-tree/model")
    release = _read("/etc/nv_tegra_release")
    if not release and not (model and ("jetson" in model.lower() or "tegra" in model.lower())):
        return None
    info = {"module": model.strip("\x00 \n") if model else None, "l4t": None,
            "nvpmodel": None, "clocks_locked": None, "clocks_method": None}
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release or "")
    if match:
        info["l4t"] = "R{}.{}".format(match.group(1), match.group(2))
    out = _run(["nvpmodel", "-q"])
    if out:
        match = re.search(r"NV Power Mode:\s*(.+)", out)
        lines = [l.strip() for l in out.splitlines() if l.strip().isdigit()]
        info["nvpmodel"] = {"mode": match.group(1).strip() if match else None,
                            "id": int(lines[0]) if lines else None}
    info["clocks_locked"], info["clocks_method"] = clocks_locked()
    return info


def clocks_locked(show_output=None, sysfs_root="/sys"):
    """(locked, method): whether CPU (and GPU) clocks sit at a fixed frequency.

    jetson_clocks pins each clock's minimum to its maximum. ``jetson_clocks --show``
    (root) prints MinFreq/MaxFreq per clock; otherwise sysfs min/max are compared.
    (None, None) when neither is readable.
    """
    out = show_output if show_output is not None else _run(["jetson_clocks", "--show"])
    pairs = re.findall(r"MinFreq=(\d+)\s+MaxFreq=(\d+)", out or "")
    if pairs:
        return all(a == b for a, b in pairs), "jetson_clocks --show"
    pairs = []
    cpu_dir = os.path.join(sysfs_root, "devices", "system", "cpu")
    for name in sorted(os.listdir(cpu_dir)) if os.path.isdir(cpu_dir) else []:
        if re.match(r"^cpu\d+$", name):
            base = os.path.join(cpu_dir, name, "cpufreq")
            pair = (_read(os.path.join(base, "scaling_min_freq")),
                    _read(os.path.join(base, "scaling_max_freq")))
            if all(pair):
                pairs.append(pair)
    devfreq = os.path.join(sysfs_root, "class", "devfreq")
    for name in sorted(os.listdir(devfreq)) if os.path.isdir(devfreq) else []:
        if re.search(r"gpu|gv11b|ga10b|gp10b", name):
            pair = (_read(os.path.join(devfreq, name, "min_freq")),
                    _read(os.path.join(devfreq, name, "max_freq")))
            if all(pair):
                pairs.append(pair)
    if not pairs:
        return None, None
    return all(a.strip() == b.strip() for a, b in pairs), "sysfs min/max"


def host_info():
    """CPU, cores, memory, GPUs and Jetson details; every field best-effort."""
    info = {"hostname": platform.node(), "os": platform.platform(), "machine": platform.machine()}
    probes = (("cpu", _cpu_model), ("cores", os.cpu_count),
              ("cores_usable", lambda: len(os.sched_getaffinity(0))),
              ("memory_mb", lambda: (_status_kb("MemTotal", _read("/proc/meminfo")) or 0) // 1024 or None),
              ("gpus", _gpus), ("jetson", _jetson))
    for key, probe in probes:
        try:
            info[key] = probe()
        except Exception:  # best-effort: a report must never fail because of a probe
            info[key] = None
    return info


def versions():
    """Python, numpy, OpenCV (and whether it has GStreamer) and this runtime."""
    out = {"python": platform.python_version(), "runtime": None, "numpy": None,
           "opencv": None, "opencv_gstreamer": None}
    try:
        import runtime
        out["runtime"] = runtime.__version__
        import numpy
        out["numpy"] = numpy.__version__
        import cv2
        out["opencv"] = cv2.__version__
        from runtime.sources import gstreamer_available
        out["opencv_gstreamer"] = gstreamer_available()
    except Exception:
        pass
    return out


def build(summary, engine_info=None, source_info=None, outputs_info=None, memory=None,
          tool="rt-segment", command=None, started_at=None, finished_at=None, exit_code=None):
    """The report dict (see docs/report-schema.md) from a Pipeline.summary() and context."""
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "tool": tool,
        "command": list(command) if command is not None else None,
        "started_at": _iso(started_at),
        "finished_at": _iso(finished_at),
        "exit": {"reason": summary.get("reason"), "error": summary.get("error"),
                 "code": exit_code},
        "source": dict(source_info or {}, mode=summary.get("mode"),
                       realtime=summary.get("realtime"), frame_size=summary.get("frame_size")),
        "engine": engine_info or {},
        "outputs": list(outputs_info or []),
        "frames": summary["frames"],
        "wall_s": summary.get("wall_s"),
        "fps": summary["fps"],
        "latency_ms": summary["latency_ms"],
        "memory": memory or memory_info(),
        "host": host_info(),
        "versions": versions(),
    }
    for task in tasks.ALL:  # each family's counters (runtime/tasks/), when it has any
        if task.report_key and summary.get(task.report_key) is not None:
            report[task.report_key] = summary[task.report_key]
    if summary.get("cameras") is not None:  # several sources (runtime.multicam) only
        report["cameras"] = summary["cameras"]
        report["batches"] = summary["batches"]
    return report


def _iso(stamp):
    if stamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def write(path, report):
    """Write the report as JSON (through a temporary file: never half a report)."""
    return write_atomic(path, report, default=_jsonable)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def format_summary(report):
    """A short human summary of a report (printed at exit)."""
    frames, fps = report["frames"], report["fps"]
    engine = report.get("engine") or {}
    lines = ["{} {}: {} ({})".format(
        report["source"].get("kind", "source"), report["source"].get("uri", ""),
        report["exit"]["reason"] or "stopped", engine.get("backend", "?"))]
    lines.append("frames: {read} read, {processed} processed, {dropped} dropped, "
                 "{corrupt} corrupt".format(**frames))
    source = report["source"]
    if source.get("ended_early"):
        lines.append("the file ended early: {} of the {} frames it announces could be read".format(
            frames["read"], source.get("frame_count")))
    if source.get("stalls") or source.get("reconnects"):
        lines.append("stream: {} stalls, {} reconnects".format(source.get("stalls", 0),
                                                              source.get("reconnects", 0)))
    rate = fps.get("processed")
    lines.append("throughput: {} FPS over {} s".format(
        "{:.1f}".format(rate) if rate is not None else "-",
        "{:.1f}".format(report["wall_s"]) if report.get("wall_s") is not None else "-"))
    lines.append("latency ms       p50     p90     p99     max")
    for name, stats in report["latency_ms"].items():
        if stats.get("count"):
            lines.append("  {:<13} {:>7} {:>7} {:>7} {:>7}".format(
                name, *[ms_text(stats, key) for key in ("p50", "p90", "p99", "max")]))
    for cam in report.get("cameras") or ():
        lat = cam["latency_ms"]["capture_to_result"]
        lines.append("  cam{} {}: {} FPS, p50 {} p99 {} ms, {} dropped, {} lost{}{}".format(
            cam["camera"], cam["source"].get("uri", ""),
            "{:.1f}".format(cam["fps"]) if cam["fps"] is not None else "-",
            ms_text(lat, "p50"), ms_text(lat, "p99"), cam["frames"]["dropped"], cam["frames"]["lost"],
            ", {} reconnects".format(cam["source"]["reconnects"])
            if cam["source"].get("reconnects") else "",
            ", ended: " + cam["error"] if cam.get("error") else ""))
    for task in tasks.ALL:
        if task.report_key and report.get(task.report_key):
            lines.extend(task.report_lines(report[task.report_key]))
    mem = report.get("memory") or {}
    if mem.get("rss_start_mb") is not None and mem.get("rss_end_mb") is not None:
        lines.append("memory: RSS {} MB at start, {} MB at end".format(
            mem["rss_start_mb"], mem["rss_end_mb"]))
    return "\n".join(lines)


def finish(report, path=None, quiet=False, started=True, out=None):
    """The end of a streaming CLI run (rt-segment, rt-ros2): write the report to ``path`` if
    given, and print the summary (and where the report went) unless ``quiet`` or nothing ran."""
    import sys
    out = out or sys.stdout
    if path:
        write(path, report)
    if not quiet and started:
        out.write(format_summary(report) + "\n")
        if path:
            out.write("report: {}\n".format(path))
        out.flush()
