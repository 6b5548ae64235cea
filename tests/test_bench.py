"""rt-bench: statistics, warm-up, interleaving, report schema, peers and CLI errors."""
import json
import math
import os
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from runtime import bench
from runtime.bench import CallRunner, Runner, measure, results
from tests.conftest import REPO
from tests.test_cli_errors import assert_one_line_error


class FakeClock(object):
    """A clock that only moves when a fake runner says its call took so long."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def advance(self, ms):
        self.now += ms / 1000.0


class ScriptedRunner(Runner):
    """Each call 'takes' the next duration of ``durations_ms`` (cycled) on a FakeClock."""

    kind = "fake"
    includes = "scripted durations"

    def __init__(self, name, clock, durations_ms, log=None, sub=None):
        self.name, self.clock = name, clock
        self.durations = list(durations_ms)
        self.calls = 0
        self.log = log
        self.sub = sub

    def run_once(self):
        self.clock.advance(self.durations[self.calls % len(self.durations)])
        self.calls += 1
        if self.log is not None:
            self.log.append(self.name)
        return dict(self.sub) if self.sub else None


# -- statistics ---------------------------------------------------------------------------

def test_percentiles_of_known_durations():
    clock = FakeClock()
    runner = ScriptedRunner("a", clock, [0.0] + [float(v) for v in range(1, 101)])
    m = measure([runner], warmup_iters=1, iterations=100, rounds=10, clock=clock)
    stats = results(m)[0][0]["latency_ms"]
    assert stats["count"] == 100
    assert stats["min"] == pytest.approx(1.0) and stats["max"] == pytest.approx(100.0)
    assert stats["mean"] == pytest.approx(50.5)
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p90"] == pytest.approx(90.1)
    assert stats["p99"] == pytest.approx(99.01)
    assert stats["std"] == pytest.approx(np.std(np.arange(1, 101)))


def test_real_sleeps_within_tolerance():
    """Wall-clock timing of a runner that sleeps 10 ms: never less, and close on the median."""
    runner = CallRunner("sleep", lambda: time.sleep(0.010))
    m = measure([runner], warmup_iters=1, iterations=15, rounds=3)
    entry = results(m)[0][0]
    stats = entry["latency_ms"]
    assert stats["count"] == 15
    assert stats["min"] >= 10.0
    assert stats["p50"] < 10.0 + 8.0  # a shared machine oversleeps, but not by this much
    assert entry["throughput_fps"] == pytest.approx(1000.0 / stats["mean"])


def test_ratio_throughput_and_stability():
    clock = FakeClock()
    fast = ScriptedRunner("fast", clock, [10.0])
    slow = ScriptedRunner("slow", clock, [25.0])
    noisy = ScriptedRunner("noisy", clock, [5.0, 45.0])
    m = measure([fast, slow, noisy], warmup_iters=1, iterations=20, clock=clock)
    entries, warnings = results(m, cv_warn=0.1)
    by_name = dict((e["name"], e) for e in entries)
    assert by_name["fast"]["ratio_to_first"] == pytest.approx(1.0)
    assert by_name["slow"]["ratio_to_first"] == pytest.approx(2.5)
    assert by_name["noisy"]["ratio_to_first"] == pytest.approx(2.5)
    assert by_name["slow"]["ratio_to_first_paired"] == pytest.approx(2.5)
    assert by_name["fast"]["throughput_fps"] == pytest.approx(100.0)
    assert by_name["fast"]["stable"] is True and by_name["noisy"]["stable"] is False
    assert len(warnings) == 1 and "noisy" in warnings[0] and "unstable" in warnings[0]


def test_paired_ratio_cancels_drift():
    """The machine slows down 4x half-way: per-round pairs still see B at 2x A."""
    clock = FakeClock()

    class Drifting(ScriptedRunner):
        def run_once(self):
            slow = 4.0 if clock.now > 100.5 else 1.0
            clock.advance(self.durations[0] * slow)
            self.calls += 1

    a, b = Drifting("A", clock, [10.0]), Drifting("B", clock, [20.0])
    m = measure([a, b], warmup_iters=1, iterations=40, rounds=20, clock=clock)
    entries, _ = results(m)
    assert entries[1]["ratio_to_first_paired"] == pytest.approx(2.0)
    assert [len(r.segments) for r in m.records] == [20, 20]


def test_sub_timings_are_summarized():
    clock = FakeClock()
    runner = ScriptedRunner("trt", clock, [3.0], sub={"h2d": 0.5, "compute": 2.0, "d2h": 0.25})
    m = measure([runner], warmup_iters=2, iterations=10, clock=clock)
    sub = results(m)[0][0]["sub_timings_ms"]
    assert sorted(sub) == ["compute", "d2h", "h2d"]
    assert sub["compute"]["count"] == 10 and sub["compute"]["mean"] == pytest.approx(2.0)


# -- warm-up ------------------------------------------------------------------------------

def test_warmup_calls_never_count():
    clock = FakeClock()
    runner = ScriptedRunner("cold", clock, [1000.0, 1000.0, 1000.0] + [2.0] * 100)
    m = measure([runner], warmup_iters=3, iterations=20, clock=clock)
    entry = results(m)[0][0]
    assert entry["latency_ms"]["max"] == pytest.approx(2.0)
    assert entry["latency_ms"]["count"] == 20
    assert entry["warmup"]["calls"] == 3 and runner.calls == 23


def test_warmup_by_time():
    clock = FakeClock()
    runner = ScriptedRunner("cold", clock, [200.0] * 3 + [1.0] * 1000)
    m = measure([runner], warmup_s=0.5, iterations=10, clock=clock)
    entry = results(m)[0][0]
    assert entry["warmup"]["calls"] == 3  # 0.2, 0.4, 0.6 s
    assert entry["latency_ms"]["max"] == pytest.approx(1.0)


def test_warmup_uses_the_runner_hook():
    clock = FakeClock()

    class Hooked(ScriptedRunner):
        warmups = 0

        def warmup(self):
            self.warmups += 1

    runner = Hooked("h", clock, [1.0])
    measure([runner], warmup_iters=4, iterations=5, clock=clock)
    assert runner.warmups == 4 and runner.calls == 5


# -- interleaving -------------------------------------------------------------------------

def test_rounds_rotate_the_order():
    clock = FakeClock()
    log = []
    runners = [ScriptedRunner(n, clock, [1.0], log=log) for n in "ABC"]
    m = measure(runners, warmup_iters=1, iterations=4, rounds=2, clock=clock, rewarm=0)
    timed = log[3:]  # after one warm-up call each
    assert "".join(timed) == "AABBCC" + "BBCCAA"
    assert m.order == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 0)]
    assert [len(r.windows) for r in m.records] == [2, 2, 2]


def test_each_block_starts_with_an_untimed_rewarm_call():
    clock = FakeClock()
    log = []

    class Evicted(ScriptedRunner):
        """Slow on its first call after another runner ran (cold caches)."""

        def run_once(self):
            cold = bool(log) and log[-1] != self.name
            ScriptedRunner.run_once(self)
            clock.advance(50.0 if cold else 0.0)

    runners = [Evicted(n, clock, [1.0], log=log) for n in "AB"]
    m = measure(runners, warmup_iters=1, iterations=4, rounds=2, clock=clock, settle_s=0)
    assert "".join(log[2:]) == "AAA" "BBB" "BBB" "AAA"  # one untimed call opens every block
    for entry in results(m)[0]:
        assert entry["latency_ms"]["max"] == pytest.approx(1.0) and entry["latency_ms"]["count"] == 4
    assert m.settings["rewarm_calls"] == 1
    single = measure([Evicted("C", clock, [1.0], log=log)], warmup_iters=1, iterations=2, clock=clock)
    assert single.settings["rewarm_calls"] == 0


def test_uneven_iterations_and_too_many_rounds():
    clock = FakeClock()
    log = []
    runners = [ScriptedRunner(n, clock, [1.0], log=log) for n in "AB"]
    m = measure(runners, warmup_iters=1, iterations=5, rounds=2, clock=clock, rewarm=0)
    assert "".join(log[2:]) == "AAABBB" + "BBAA"
    m = measure(runners, warmup_iters=1, iterations=3, rounds=10, clock=clock)
    assert m.settings["rounds"] == 3
    assert [len(r.samples) for r in m.records] == [3, 3]


def test_duration_mode():
    clock = FakeClock()
    runners = [ScriptedRunner("A", clock, [10.0]), ScriptedRunner("B", clock, [25.0])]
    m = measure(runners, warmup_iters=1, duration=0.1, rounds=2, clock=clock)
    counts = [len(r.samples) for r in m.records]
    assert counts == [10, 4]  # 0.05 s per segment: 5 x 10 ms; 2 x 25 ms
    timed = [sum(t1 - t0 for t0, t1 in r.windows) for r in m.records]
    assert timed == [pytest.approx(0.1), pytest.approx(0.1)]


def test_measure_refuses_contradictions():
    with pytest.raises(ValueError):
        measure([bench.NoopRunner()], warmup_iters=1, warmup_s=1)
    with pytest.raises(ValueError):
        measure([bench.NoopRunner()], iterations=1, duration=1)
    with pytest.raises(ValueError):
        measure([])


def test_measurement_overhead_with_a_noop_runner():
    """The timing loop's own cost (reported; the < 0.2 ms target is checked in benchmarks/)."""
    overhead = bench.loop_overhead(iterations=5000)
    print("\nmeasurement overhead: {:.4f} ms per timed call, {:.4f} ms per loop iteration".format(
        overhead["timed_ms"], overhead["loop_ms"]))
    assert overhead["iterations"] == 5000
    assert 0 < overhead["timed_ms"] <= overhead["loop_ms"] and math.isfinite(overhead["loop_ms"])


def test_power_is_attached_per_runner_window():
    clock = FakeClock()
    runners = [ScriptedRunner("A", clock, [10.0]), ScriptedRunner("B", clock, [20.0])]
    m = measure(runners, warmup_iters=1, iterations=10, rounds=1, clock=clock)
    (a0, a1), (b0, b1) = m.records[0].windows[0], m.records[1].windows[0]
    reader = types.SimpleNamespace(source="VDD_IN", samples=[
        ((a0 + a1) / 2, 4000.0), ((b0 + b1) / 2, 6000.0), ((b0 + b1) / 2, 8000.0)])
    reader.average_mw = lambda windows: bench_avg(reader.samples, windows)
    entries, _ = results(m)
    bench.attach_power(entries, m, reader)
    assert entries[0]["power"]["average_mw"] == 4000.0
    assert entries[0]["power"]["energy_per_frame_mj"] == pytest.approx(40.0)  # 4 W x 10 ms
    assert entries[1]["power"]["average_mw"] == 7000.0 and entries[1]["power"]["samples"] == 2


def bench_avg(samples, windows):
    from runtime.tegrastats import average_in_windows
    return average_in_windows(samples, windows)


# -- what rt-bench may touch -------------------------------------------------------------

def test_runners_use_only_the_public_backend_api():
    import ast
    with open(os.path.join(REPO, "runtime", "bench.py")) as handle:
        tree = ast.parse(handle.read())
    private = sorted(set(node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                         and node.attr.startswith("_") and not node.attr.startswith("__")
                         and not (isinstance(node.value, ast.Name) and node.value.id == "self")))
    assert private == []


# -- the CLI with a real engine -----------------------------------------------------------

def _video(path, frames=6, size=(128, 256)):
    import cv2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size[1], size[0]))
    rng = np.random.RandomState(0)
    for _ in range(frames):
        writer.write(rng.randint(0, 256, size=size + (3,)).astype(np.uint8))
    writer.release()
    return str(path)


def test_report_schema_and_outputs(rn18_engine, tmp_path):
    from runtime.cli import bench as cli
    video = _video(tmp_path / "clip.avi")
    out_json, out_md, out_png = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.png"
    code = cli.main(["--engine", rn18_engine, "--engine", rn18_engine, "--iterations", "6",
                     "--rounds", "3", "--warmup", "1", "--threads", "1",
                     "--openvino", "--video", video, "--e2e-frames", "4", "-q",
                     "--json", str(out_json), "--markdown", str(out_md), "--plot", str(out_png)])
    assert code == 0
    rep = json.loads(out_json.read_text())
    assert rep["schema"] == "rt-bench/1" and rep["tool"] == "rt-bench"
    for key in ("command", "created", "settings", "runners", "end_to_end", "environment",
                "warnings", "notes"):
        assert key in rep, key
    assert rep["settings"]["iterations"] == 6 and rep["settings"]["threads"] == 1
    names = [r["name"] for r in rep["runners"]]
    assert names[:2] == ["swiftnet-rn18_fp32.onnx#1", "swiftnet-rn18_fp32.onnx#2"]
    for entry in rep["runners"]:
        for key in ("name", "kind", "includes", "info", "latency_ms", "throughput_fps",
                    "ratio_to_first", "ratio_to_first_paired", "sub_timings_ms", "stable", "warmup", "timed_s", "power"):
            assert key in entry, key
        stats = entry["latency_ms"]
        assert stats["count"] == 6
        for key in ("min", "mean", "p50", "p90", "p95", "p99", "max", "std", "cv"):
            assert isinstance(stats[key], float), key
        assert stats["min"] <= stats["p50"] <= stats["p99"] <= stats["max"]
        assert isinstance(entry["includes"], str) and entry["includes"]
        assert isinstance(entry["throughput_fps"], float)
    assert rep["runners"][0]["ratio_to_first"] == 1.0
    # The core runs it (on ONNX Runtime for an .onnx) with the threads asked for.
    assert rep["runners"][0]["info"]["backend"] == "native"
    from tests.conftest import core_onnx_backend
    assert rep["runners"][0]["info"]["core_backend"].startswith(core_onnx_backend())
    assert rep["runners"][0]["info"]["threads"] == 1
    # OpenVINO: a runner where installed, a note where not
    has_ov = any(r["name"].startswith("openvino") for r in rep["runners"])
    assert has_ov or any(n.startswith("openvino: not installed") for n in rep["notes"])
    e2e = rep["end_to_end"]
    assert e2e["frames"]["processed"] == 4 and e2e["fps"] > 0
    for stage in ("read", "preprocess", "inference", "postprocess", "capture_to_result"):
        assert e2e["latency_ms"][stage]["count"] == 4
    env = rep["environment"]
    assert env["threads"] == 1 and env["onnxruntime"]["version"]
    # The environment names the version of the core backend the engine ran on.
    ran_on = rep["runners"][0]["info"]["core_backend"].split()
    core = dict((b["name"], b) for b in env["libswiftrt"]["backends"])
    assert core[ran_on[0]]["available"] and core[ran_on[0]]["version"] == ran_on[1]
    assert "cpu" in env["host"] and "jetson" in env["host"]
    md = out_md.read_text()
    assert "| runner |" in md and "swiftnet-rn18_fp32.onnx#2" in md and "Environment" in md
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def _listed_backends(capsys):
    from runtime.cli import bench as cli
    assert cli.main(["--list-backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["backend", "compiled", "in"]
    return dict((line.split()[0], line.split()[1]) for line in lines[2:])


def test_list_backends_says_what_the_library_has(capsys, monkeypatch):
    """rt-bench --list-backends: every core backend, compiled in exactly where the loaded
    libswiftrt's version line names it (also for a library built with other backends)."""
    from runtime import backends, libswiftrt
    line = libswiftrt.version()
    compiled = line.split("backends:")[1].strip(" )").split()
    assert _listed_backends(capsys) == dict(
        (name, "yes" if name in compiled else "no") for name in ("onnxruntime", "openvino", "tensorrt"))
    monkeypatch.setitem(backends._state, "compiled", None)   # read the (pretended) library again
    monkeypatch.setattr(libswiftrt, "version", lambda: "swiftrt 9.9.9 (abi 1; backends: tensorrt)")
    assert _listed_backends(capsys) == {"onnxruntime": "no", "openvino": "no", "tensorrt": "yes"}


def test_torch_peer_same_input_and_threads(rn18_engine, tmp_path, capsys):
    pytest.importorskip("torch")
    from runtime.cli import bench as cli
    out_json = tmp_path / "r.json"
    cli.main(["--engine", rn18_engine, "--torch", "swiftnet-rn18", "--iterations", "3",
              "--rounds", "1", "--warmup", "1", "--threads", "2", "--json", str(out_json)])
    printed = capsys.readouterr().out
    assert "pytorch-eager-fp32" in printed and "each timed call includes" in printed
    rep = json.loads(out_json.read_text())
    torch_entry = rep["runners"][1]
    assert torch_entry["kind"] == "peer" and torch_entry["info"]["backend"] == "pytorch"
    assert torch_entry["info"]["threads"] == 2 == rep["runners"][0]["info"]["threads"]
    assert torch_entry["info"]["input_shape"] == [1, 3, 128, 256]
    assert "model forward only" in torch_entry["includes"]


def test_torch_input_is_what_the_graph_sees():
    pytest.importorskip("torch")
    from export.torch_runner import model_input
    from runtime.manifest import Input
    frame = np.zeros((1, 2, 2, 3), np.uint8)
    frame[..., 0] = 255  # blue in BGR
    spec = Input({"name": "frame", "shape": [1, 2, 2, 3], "dtype": "uint8", "layout": "NHWC",
                  "normalization": {"in_graph": True}, "color_order": "BGR"})
    norm = {"scale": 1 / 255.0, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    x = model_input(frame, spec, norm)
    assert x.shape == (1, 3, 2, 2) and x.dtype == np.float32
    assert np.allclose(x[0, 2], 1.0) and np.allclose(x[0, 0], -1.0)  # RGB order, normalized


def test_torch_is_imported_only_with_the_flag(rn18_engine):
    code = ("import sys\n"
            "from runtime.cli.bench import main\n"
            "main(['--engine', {!r}, '--iterations', '2', '--warmup', '1', '-q'])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "print('ok')\n").format(rn18_engine)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


# -- CLI errors ---------------------------------------------------------------------------

def test_missing_engine_is_one_line(run_cli_subprocess, tmp_path):
    proc = run_cli_subprocess("runtime.cli.bench", "--engine", tmp_path / "nope.onnx")
    assert_one_line_error(proc, "nope.onnx")


@pytest.mark.parametrize("args, needle", [
    ([], "--engine"),
    (["--iterations", "0"], "--iterations"),
    (["--iterations", "5", "--duration", "2"], "not allowed with"),
    (["--video", "missing.mp4"], "missing.mp4"),
    (["--backend", "tflite"], "tflite"),
    (["--realtime"], "--video"),
])
def test_bad_flags_are_one_line(run_cli_subprocess, rn18_engine, args, needle):
    engine = [] if not args else ["--engine", rn18_engine]
    proc = run_cli_subprocess("runtime.cli.bench", *(engine + args))
    assert_one_line_error(proc, needle)


def test_power_without_tegrastats_is_refused(rn18_engine, monkeypatch):
    from runtime import tegrastats
    from runtime.cli import bench as cli
    from runtime.errors import UserError
    monkeypatch.setattr(tegrastats, "available", lambda: None)
    with pytest.raises(UserError, match="tegrastats"):
        cli.main(["--engine", rn18_engine, "--power", "--iterations", "1"])


def test_vermin_and_no_torch_in_device_files():
    for path in ("runtime/bench.py", "runtime/bench_run.py", "runtime/bench_format.py", "runtime/tegrastats.py",
                 "runtime/cli/bench.py"):
        text = open(os.path.join(REPO, path)).read()
        assert "import torch" not in text and "from torch" not in text


def test_the_library_runs_without_argparse(rn18_engine):
    """benchmarks/ call runtime.bench_run with plain arguments: the same report as rt-bench."""
    from runtime import bench_format, bench_run
    from runtime.errors import UserError
    rep, samples = bench_run.run([rn18_engine, rn18_engine], bench_run.BenchOptions(
        iterations=2, warmup=1, rounds=1, quiet=True, openvino=[]))
    names = [e["name"] for e in rep["runners"]]
    assert names == ["swiftnet-rn18_fp32.onnx#1", "swiftnet-rn18_fp32.onnx#2"]
    assert sorted(samples) == sorted(names) and rep["command"] == ["rt-bench"]
    assert "latency ms" in bench_format.format_console(rep)
    with pytest.raises(UserError, match="--backend"):
        bench_run.engine_backends(["onnxruntime", "openvino", "onnxruntime"], 2)


@pytest.mark.parametrize("changes, needle", [
    ({"rounds": 0}, "--rounds must be at least 1"),
    ({"duration": float("nan")}, "--duration must be a finite positive number"),
    ({"cv_warn": 0}, "--cv-warn must be a positive number"),
    ({"cv_warn": None}, "--cv-warn must be a positive number"),
    ({"backends": ["onnxruntime", "openvino"]}, "give it once for every engine or once per --engine"),
    ({"backends": ["python-onnxruntime"]}, "unknown --backend 'python-onnxruntime'"),
    ({"e2e_frames": 5}, "--e2e-frames and --realtime need --video"),
    ({"torch": ":x.pt"}, "--torch needs an architecture"),
])
def test_the_library_checks_its_options_as_rt_bench_does(rn18_engine, changes, needle):
    """bench_run.run refuses what rt-bench refuses, in one line, before opening an engine."""
    from runtime import bench_run
    from runtime.errors import UserError
    with pytest.raises(UserError, match=needle):
        bench_run.run([rn18_engine], bench_run.BenchOptions(quiet=True, **changes))
