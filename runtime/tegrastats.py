"""Board power from Jetson's ``tegrastats``: a line parser and a background reader.

Power rails are printed as ``NAME current/average`` in mW, in three spellings:

- JetPack 4 (L4T R32): no unit, ``VDD_IN 2781/2781`` (Nano: ``POM_5V_IN 1234/1234``;
  AGX Xavier: ``GPU 0/0 CPU 311/311 SOC 1087/1087 CV 0/0 VDDRQ 310/310 SYS5V 1518/1518``)
- JetPack 5/6 (R35/R36): ``VDD_IN 4556mW/4556mW``
- JetPack 7: ``VDD_GPU_SOC 5139mW/5139mW/5139mW`` (current/average/peak)

The board's total is the input rail (``VDD_IN``, ``POM_5V_IN``, ``VIN``) where the
module has one; AGX Xavier and AGX Orin have none, and then the rails are summed
(an approximation of the module's draw, said so in the report). The *current*
value of each line is used: the running average tegrastats prints covers the
whole time since tegrastats started, not our window.

Python 3.6 compatible, no dependencies beyond the standard library.
"""
import os
import re
import shutil
import subprocess
import threading
import time

# NAME cur[mW]/avg[mW][/peak[mW]], followed by a space or the end of the line: so that
# "RAM 2228/7850MB", "SWAP 0/3925MB" and "IRAM 0/252kB" never look like rails.
_RAIL = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%")
_TEMP = re.compile(r"(?:^|\s)(\w+)@(-?[\d.]+)C\b")

# Input rails, in order of preference: the whole module's (or board's) draw.
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")


def parse_line(line):
    """One tegrastats line -> dict, or None when it carries no power rail.

    ``rails``: {name: {"cur": mW, "avg": mW, "peak": mW or None}}; ``total_mw``: the
    input rail's current value, or the sum of all rails' when there is no input rail;
    ``total_source``: the rail name or "sum of rails"; plus ``ram_mb`` (used, total),
    ``gpu_load_pct`` and ``temps_c`` when present.
    """
    rails = {}
    for name, cur, avg, peak in _RAIL.findall(line or ""):
        rails[name] = {"cur": float(cur), "avg": float(avg),
                       "peak": float(peak) if peak else None}
    if not rails:
        return None
    total, source = total_power_mw(rails)
    out = {"rails": rails, "total_mw": total, "total_source": source}
    match = _RAM.search(line)
    if match:
        out["ram_mb"] = (int(match.group(1)), int(match.group(2)))
    match = _GR3D.search(line)
    if match:
        out["gpu_load_pct"] = int(match.group(1))
    temps = dict((name, float(value)) for name, value in _TEMP.findall(line))
    if temps:
        out["temps_c"] = temps
    return out


def total_power_mw(rails, key="cur"):
    """(total mW, source): the input rail when present, else the sum of all rails."""
    for name in TOTAL_RAILS:
        if name in rails:
            return rails[name][key], name
    return sum(r[key] for r in rails.values()), "sum of rails"


def available():
    """Path of the tegrastats binary, or None (not a Jetson)."""
    return shutil.which("tegrastats") or (
        "/usr/bin/tegrastats" if os.access("/usr/bin/tegrastats", os.X_OK) else None)


class TegrastatsReader(object):
    """Runs ``tegrastats --interval N`` in the background and keeps timestamped power samples.

    Samples are (time, total mW) with ``clock`` (time.perf_counter by default, the clock
    rt-bench times with), so that they can be matched to measurement windows.
    ``command`` replaces the tegrastats command line (tests feed recorded lines).

        reader = TegrastatsReader(interval_ms=100).start()
        ...                                  # the workload
        reader.stop()
        reader.average_mw([(t0, t1)])        # mean board power over that window
    """

    def __init__(self, interval_ms=100, command=None, clock=time.perf_counter):
        self.interval_ms = int(interval_ms)
        self.command = command
        self.clock = clock
        self.samples = []       # (t, total_mw)
        self.source = None      # which rail(s) the total comes from
        self.rails = None       # rail names seen
        self.lines = 0
        self._proc = None
        self._thread = None

    def _command(self):
        if self.command is not None:
            return list(self.command)
        binary = available()
        if binary is None:
            return None
        cmd = [binary, "--interval", str(self.interval_ms)]
        stdbuf = shutil.which("stdbuf")  # line-buffered even into a pipe
        return [stdbuf, "-oL"] + cmd if stdbuf else cmd

    def start(self):
        """Start reading; raises OSError (with a clear text) if tegrastats cannot run."""
        cmd = self._command()
        if cmd is None:
            raise OSError("tegrastats not found (it comes with JetPack: --power works on a Jetson)")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      universal_newlines=True, bufsize=1)
        self._thread = threading.Thread(target=self._read, name="tegrastats")
        self._thread.daemon = True
        self._thread.start()
        return self

    def _read(self):
        for line in self._proc.stdout:
            now = self.clock()
            parsed = parse_line(line)
            self.lines += 1
            if parsed is None:
                continue
            self.samples.append((now, parsed["total_mw"]))
            self.source = parsed["total_source"]
            self.rails = sorted(parsed["rails"])

    def stop(self, timeout=2.0):
        """Stop tegrastats and the reader thread (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        return self

    def average_mw(self, windows=None):
        """Mean total power (mW) of the samples inside ``windows`` [(t0, t1), ...] (all if None).

        Returns (mean mW, number of samples); (None, 0) when no sample fell inside.
        """
        return average_in_windows(self.samples, windows)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def average_in_windows(samples, windows=None):
    """(mean, count) of the values of (t, value) samples whose t lies in any window."""
    values = [value for t, value in samples
              if windows is None or any(t0 <= t <= t1 for t0, t1 in windows)]
    if not values:
        return None, 0
    return sum(values) / float(len(values)), len(values)


def energy_per_frame_mj(power_mw, frame_ms):
    """Energy per frame (mJ) from average power (mW) and time per frame (ms): P * t."""
    if power_mw is None or frame_ms is None:
        return None
    return power_mw * frame_ms / 1000.0
