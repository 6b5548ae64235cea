"""rt-segment end to end: a generated video in, an annotated video and a report out;
Ctrl-C/SIGTERM; one-line errors for bad inputs; no torch on the device side."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from runtime import manifest as manifest_mod
from runtime.manifest import write_manifest_json
from runtime.cli.common import run_cli
from runtime.cli.segment import main
from runtime.report import REPORT_SCHEMA_VERSION
from runtime.visualize import Visualizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT_KEYS = {"schema_version", "tool", "command", "started_at", "finished_at", "exit", "source",
               "engine", "outputs", "frames", "wall_s", "fps", "latency_ms", "memory", "host",
               "versions"}
STAGES = {"read", "preprocess", "inference", "postprocess", "output", "capture_to_result"}


def write_video(path, frames, size=(128, 256), fps=30.0):
    """A small moving-pattern video (no dependency on the synthetic scene generator)."""
    height, width = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    rng = np.random.RandomState(0)
    background = rng.randint(0, 255, size=(height, width, 3)).astype(np.uint8)
    for i in range(frames):
        frame = np.roll(background, 4 * i, axis=1)
        cv2.rectangle(frame, (i % width, height // 3), (i % width + 30, height // 2), (0, 0, 255), -1)
        writer.write(frame)
    writer.release()
    return str(path)


def count_frames(path):
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    size = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
    cap.release()
    return count, size


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "short.mp4", 40)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "long.mp4", 450)


def segment(*args, **kwargs):
    cmd = [sys.executable, "-m", "runtime.cli.segment"] + [str(a) for a in args]
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.update(kwargs.pop("env", {}))
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=REPO, env=env, timeout=120, **kwargs)


def test_video_through_the_whole_pipeline(rn18_engine, short_video, tmp_path):
    out, rep, frames_dir = tmp_path / "out.mp4", tmp_path / "report.json", tmp_path / "frames"
    proc = segment("--engine", rn18_engine, "--video", short_video, "--output", out,
                   "--report", rep, "--save-frames", frames_dir, "--display",
                   "--resize", "letterbox", "--threads", 2)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("--display: no display") == 1  # said once, then went on
    report = json.loads(rep.read_text())
    assert REPORT_KEYS <= set(report) and report["schema_version"] == REPORT_SCHEMA_VERSION
    assert report["frames"] == {"read": 40, "processed": 40, "dropped": 0, "corrupt": 0,
                                "unfinished": 0}
    assert report["exit"] == {"reason": "end_of_stream", "error": None, "code": 0}
    assert set(report["latency_ms"]) == STAGES
    for stage in STAGES:
        for key in ("min", "mean", "p50", "p90", "p99", "max"):
            assert report["latency_ms"][stage][key] is not None
    # The core (libswiftrt) runs it by default, on ONNX Runtime for an .onnx.
    assert report["engine"]["backend"] == "native" and report["engine"]["resize"] == "letterbox"
    from tests.conftest import core_onnx_backend
    assert report["engine"]["core_backend"].startswith(core_onnx_backend())
    assert report["engine"]["version"] and report["versions"]["opencv"] == cv2.__version__
    assert report["source"]["kind"] == "video" and report["source"]["frame_size"] == [128, 256]
    assert report["fps"]["processed"] > 0 and report["memory"]["rss_end_mb"] > 0
    assert report["host"]["cores"] >= 1
    video = report["outputs"][0]
    expected = Visualizer(manifest_mod.Manifest.load(rn18_engine)).output_size((128, 256))
    assert count_frames(out) == (40, expected)
    assert video["frames"] == 40 and tuple(video["size"]) == expected
    assert len(list(frames_dir.glob("*_labels.png"))) == 40
    labels = cv2.imread(str(frames_dir / "000007_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (128, 256) and labels.max() < 19
    assert "40 processed" in proc.stdout


@pytest.mark.parametrize("sig,code,reason", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")])
def test_signal_ends_the_run_cleanly(rn18_engine, long_video, tmp_path, sig, code, reason):
    out, rep = tmp_path / "out.mp4", tmp_path / "report.json"
    cmd = [sys.executable, "-m", "runtime.cli.segment", "--engine", rn18_engine, "--video",
           long_video, "--realtime", "--output", str(out), "--report", str(rep),
           "--status-interval", "0.1"]
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, cwd=REPO, env=env)
    lines, started = [], threading.Event()

    def watch():
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("frames ") and int(line.split()[1]) >= 3:
                started.set()

    reader = threading.Thread(target=watch)
    reader.daemon = True
    reader.start()
    try:
        assert started.wait(60), "no progress: " + "".join(lines)
        proc.send_signal(sig)
        proc.wait(timeout=30)  # the summary on stdout is small: no pipe deadlock
        stdout = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    assert proc.returncode == code, "".join(lines)
    assert not any("Traceback" in line for line in lines)
    report = json.loads(rep.read_text())
    processed = report["frames"]["processed"]
    assert report["exit"]["reason"] == reason and report["exit"]["code"] == code
    assert 3 <= processed < 450 and report["source"]["realtime"] is True
    assert count_frames(out)[0] == processed == report["outputs"][0]["frames"]
    assert "processed" in stdout


def test_max_frames_and_quiet(rn18_engine, short_video, tmp_path):
    rep = tmp_path / "r.json"
    proc = segment("--engine", rn18_engine, "--video", short_video, "--max-frames", 5,
                   "--report", rep, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    report = json.loads(rep.read_text())
    assert report["frames"]["processed"] == 5 and report["exit"]["reason"] == "max_frames"
    assert report["outputs"] == [] and report["latency_ms"]["output"]["count"] == 5


def _one_line_error(capsys, argv, *needles):
    code = run_cli(main, argv, prog="rt-segment")
    err = capsys.readouterr().err
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("rt-segment: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def test_bad_inputs_end_in_one_line(capsys, tmp_path, short_video):
    onnx_without_manifest = tmp_path / "lonely.onnx"
    onnx_without_manifest.write_bytes(b"not really onnx")
    manifest_without_model = tmp_path / "ghost.onnx.json"
    manifest_without_model.write_text("{}")
    cases = [
        (["--engine", str(tmp_path / "missing.onnx"), "--video", short_video], "no manifest"),
        (["--engine", str(onnx_without_manifest), "--video", short_video], "no manifest"),
        (["--engine", str(manifest_without_model), "--video", short_video], "schema version"),
        (["--engine", "x.onnx", "--video", str(tmp_path / "nope.mp4")], "video not found"),
        (["--engine", "x.onnx", "--video", short_video, "--resize", "squash"], "--resize"),
        (["--engine", "x.onnx", "--video", short_video, "--visualize", "x"], "--visualize"),
        (["--engine", "x.onnx"], "one of the arguments"),
        (["--engine", "x.onnx", "--video", short_video, "--video", short_video, "--output",
          str(tmp_path / "one.mp4")], "a file per camera"),
        (["--engine", "x.onnx", "--sources", str(tmp_path / "none.txt")], "cannot read"),
        (["--engine", "x.onnx", "--video", short_video, "--max-frames", "many"], "--max-frames"),
        (["--engine", "x.onnx", "--images", str(tmp_path / "empty*")], "no images"),
    ]
    for argv, needle in cases:
        _one_line_error(capsys, argv, needle)


def test_bad_engine_file_in_a_subprocess(rn18_engine, short_video, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00garbage")
    data = json.loads(open(rn18_engine + ".json").read())
    write_manifest_json(str(tmp_path / "broken.onnx.json"), data)
    proc = segment("--engine", broken, "--video", short_video)   # the sha256 check sees it first
    assert proc.returncode == 2 and "does not match its manifest" in proc.stderr
    # The core checks the digest whatever --no-verify says (it is the Python engine's switch).
    proc = segment("--engine", broken, "--video", short_video, "--no-verify")
    assert proc.returncode == 2 and "does not match its manifest" in proc.stderr
    # A manifest that matches the garbage: ONNX Runtime's refusal, in one line.
    data["artifact"]["sha256"] = hashlib.sha256(broken.read_bytes()).hexdigest()
    write_manifest_json(str(tmp_path / "broken.onnx.json"), data)  # sealed: the artifact is at fault
    proc = segment("--engine", broken, "--video", short_video)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # (OpenVINO's protobuf reader logs through absl on its own; those lines are not ours.)
    lines = [line for line in proc.stderr.splitlines() if line.strip()
             and not line.startswith(("E0000", "WARNING: All log"))]
    assert len(lines) == 1 and lines[0].startswith("rt-segment: error: ") and "cannot" in lines[0]


def test_missing_camera_is_one_line_after_the_attempts(rn18_engine, capsys):
    line = _one_line_error(capsys, ["--engine", rn18_engine, "--camera", "/dev/video63",
                                    "--reconnect", "0", "-q"], "cannot open camera /dev/video63")
    assert "does not exist" in line


def test_device_side_imports_no_torch():
    code = ("import sys, runtime.pipeline, runtime.sources, runtime.outputs, runtime.visualize, "
            "runtime.report, runtime.stats, runtime.cli.segment; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
