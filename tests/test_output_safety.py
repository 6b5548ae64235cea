"""Outputs never destroy inputs: every writer of rt-segment, rt-bench and rt-eval refuses a
path that is an input, an engine or manifest, a folder or a device (one line, exit 2, before
any work, inputs byte for byte unchanged); files are replaced atomically; a full disk and
SIGHUP end with a playable video or none, and a report that says what is incomplete."""
import glob
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time

import cv2
import pytest

from tests.test_segment_cli import count_frames, write_video

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digest(paths):
    out = {}
    for path in paths:
        with open(path, "rb") as handle:
            out[path] = hashlib.sha256(handle.read()).hexdigest()
    return out


def run(module, *args, **kwargs):
    cmd = [sys.executable, "-m", module] + [str(a) for a in args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=REPO, timeout=kwargs.pop("timeout", 300),
                          **kwargs)


def assert_one_line_refusal(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, rn18_engine):
    """A folder holding a copy-free setup: the engine (elsewhere), a video, a frames folder."""
    root = tmp_path_factory.mktemp("safety")
    video = write_video(root / "in.mp4", 40)
    frames = root / "frames"
    frames.mkdir()
    cap = cv2.VideoCapture(video)
    for i in range(3):
        cv2.imwrite(str(frames / "{:03d}.png".format(i)), cap.read()[1])
    cap.release()
    fifo = str(root / "fifo.json")
    os.mkfifo(fifo)
    os.symlink(fifo, str(root / "link_to_fifo.json"))
    return {"root": str(root), "video": video, "frames": str(frames), "fifo": fifo,
            "engine": rn18_engine, "manifest": rn18_engine + ".json"}


def input_files(w):
    return [w["video"], w["engine"], w["manifest"]] + sorted(glob.glob(os.path.join(w["frames"], "*")))


REFUSALS = [
    # (extra args, words in the one-line error)
    (["--video", "{video}", "--report", "{video}"], ["--report", "input of this run"]),
    (["--video", "{video}", "--output", "{video}"], ["--output", "input of this run"]),
    (["--video", "{video}", "--report", "{manifest}"], ["manifest"]),
    (["--video", "{video}", "--report", "{root}/other.onnx"], ["model artifact"]),
    (["--video", "{video}", "--report", "{root}"], ["is a folder"]),
    (["--video", "{video}", "--report", "{fifo}"], ["not a regular file"]),
    (["--video", "{video}", "--report", "{root}/link_to_fifo.json"], ["not a regular file"]),
    (["--video", "{video}", "--report", "/dev/null"], ["not a regular file"]),
    (["--video", "{video}", "--report", "/proc/self/report.json"], ["a system path"]),
    (["--video", "{video}", "--report", "{root}/"], ["names a folder"]),
    (["--video", "{video}", "--output", "{root}/same.mp4", "--report", "{root}/same.mp4"],
     ["two different files"]),
    (["--images", "{frames}", "--save-frames", "{frames}"], ["--save-frames", "holds an input"]),
    (["--images", "{frames}", "--report", "{frames}/000.png"], ["input of this run"]),
    (["--video", "{video}", "--save-frames", "{video}"], ["not a folder"]),
]


@pytest.mark.parametrize("extra,words", REFUSALS, ids=[" ".join(r[0][2:]) for r in REFUSALS])
def test_segment_refuses_destructive_outputs_before_any_work(workdir, extra, words):
    before = digest(input_files(workdir))
    listing = sorted(os.listdir(workdir["root"]))
    args = ["-e", workdir["engine"]] + [a.format(**workdir) for a in extra]
    started = time.monotonic()
    proc = run("runtime.cli.segment", *args, timeout=60)
    assert_one_line_refusal(proc, *words)
    assert time.monotonic() - started < 30   # refused before the engine is loaded: no hang on the FIFO
    assert digest(input_files(workdir)) == before
    assert sorted(os.listdir(workdir["root"])) == listing   # nothing written, no temp left


def test_bench_and_eval_refuse_outputs_over_inputs(workdir):
    before = digest(input_files(workdir))
    proc = run("runtime.cli.bench", "-e", workdir["engine"], "--json", workdir["manifest"])
    assert_one_line_refusal(proc, "--json", "manifest")
    proc = run("runtime.cli.bench", "-e", workdir["engine"], "--video", workdir["video"],
               "--markdown", workdir["video"])
    assert_one_line_refusal(proc, "--markdown", "input of this run")
    proc = run("runtime.cli.bench", "-e", workdir["engine"], "--json", workdir["fifo"])
    assert_one_line_refusal(proc, "not a regular file")
    proc = run("runtime.cli.eval", "--engine", workdir["engine"], "--data", workdir["frames"],
               "--json", os.path.join(workdir["frames"], "001.png"))
    assert_one_line_refusal(proc, "--json", "inside an input")
    proc = run("runtime.cli.eval", "--engine", workdir["engine"], "--data", workdir["frames"],
               "--json", workdir["engine"])
    assert_one_line_refusal(proc, "model artifact")
    assert digest(input_files(workdir)) == before


def test_report_replaces_a_regular_file_atomically_and_keeps_symlinks(workdir, tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    os.symlink(str(target), str(link))
    proc = run("runtime.cli.segment", "-e", workdir["engine"], "--video", workdir["video"],
               "--max-frames", "3", "-q", "--report", link)
    assert proc.returncode == 0, proc.stderr
    assert os.path.islink(str(link))                      # the link is still a link ...
    assert json.loads(target.read_text())["frames"]["processed"] == 3   # ... to the new report
    assert sorted(os.listdir(str(tmp_path))) == ["link.json", "real.json"]   # no temp file left


def _limit_file_size(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_under_output_is_reported_not_hidden(workdir, tmp_path):
    """A video that cannot be written completely: exit 2, one line, no truncated file, and
    the report (small enough to be written) says the output is incomplete."""
    old = tmp_path / "out.mp4"
    old.write_bytes(b"the previous video")
    report = tmp_path / "report.json"
    proc = run("runtime.cli.segment", "-e", workdir["engine"], "--video", workdir["video"], "-q",
               "--output", old, "--report", report, preexec_fn=_limit_file_size(40 * 1024))
    assert_one_line_refusal(proc, "out.mp4", "not written")
    assert old.read_bytes() == b"the previous video"      # the old file is left alone
    data = json.loads(report.read_text())
    assert data["exit"]["code"] == 2 and "out.mp4" in data["exit"]["error"]
    assert data["outputs"][0]["complete"] is False
    assert sorted(os.listdir(str(tmp_path))) == ["out.mp4", "report.json"]   # no temp left


def test_sighup_finalises_the_video_and_writes_the_report(tmp_path, rn18_engine):
    video = write_video(tmp_path / "long.mp4", 300)
    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    cmd = [sys.executable, "-m", "runtime.cli.segment", "-e", rn18_engine, "--video", video,
           "--realtime", "--output", str(out), "--report", str(report), "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not glob.glob(str(tmp_path / ".out.mp4.*")):
        time.sleep(0.2)   # the video is being written
    time.sleep(1.0)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 129, err
    data = json.loads(report.read_text())
    assert data["exit"]["reason"] == "hangup" and data["exit"]["code"] == 129
    written = data["outputs"][0]["frames"]
    assert 0 < written < 300 and data["outputs"][0]["complete"] is True
    assert count_frames(out)[0] == written                 # playable, every frame in it


def test_temp_files_of_a_killed_run_are_cleaned_by_the_next(workdir, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                                     # a pid that no longer runs
    stale = tmp_path / ".out.mp4.{}.partial.mp4".format(dead.pid)
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / ".out.mp4.{}.partial.mp4".format(os.getpid())   # a run still going
    live.write_bytes(b"y")
    other = tmp_path / "notes.partial.txt"
    other.write_bytes(b"z")
    proc = run("runtime.cli.segment", "-e", workdir["engine"], "--video", workdir["video"],
               "--max-frames", "2", "-q", "--output", tmp_path / "out.mp4")
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "out.mp4").exists()


def test_a_disk_filling_up_stops_the_run_with_a_playable_video(workdir, tmp_path, monkeypatch, capsys):
    """Below MIN_FREE_BYTES the video output stops the run: the frames so far are a playable
    video, the report says it is incomplete, the exit is one line and code 2."""
    from runtime import outputs
    from runtime.cli.common import run_cli
    from runtime.cli.segment import main
    long_video = write_video(tmp_path / "long.mp4", 120)
    monkeypatch.setattr(outputs, "free_bytes", lambda folder: 1 << 20)   # 1 MB left
    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    code = run_cli(main, ["-e", workdir["engine"], "--video", long_video, "-q", "--output", str(out),
                          "--report", str(report)], prog="rt-segment")
    err = capsys.readouterr().err
    assert code == 2 and "the disk is almost full" in err
    data = json.loads(report.read_text())
    assert data["exit"]["code"] == 2 and "almost full" in data["exit"]["error"]
    assert data["outputs"][0]["complete"] is False and data["outputs"][0]["frames"] == 30
    assert count_frames(out)[0] == 30


def test_json_outputs_are_always_valid_json(tmp_path):
    """NaN and infinities (e.g. a mean over nothing) are written as null, never as NaN."""
    import numpy as np
    from runtime.jsonfile import write_atomic
    path = tmp_path / "r.json"
    write_atomic(str(path), {"miou": float("nan"), "x": [np.float32("inf"), 1.5], "n": np.int64(3)},
                 default=lambda v: v.tolist())
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "miou": None, "x": [None, 1.5], "n": 3}


def test_a_link_to_stdout_is_refused_even_when_stdout_is_a_file(workdir, tmp_path):
    link = tmp_path / "report.json"
    os.symlink("/dev/stdout", str(link))
    captured = tmp_path / "captured.txt"
    with open(str(captured), "w") as stdout:
        proc = subprocess.run([sys.executable, "-m", "runtime.cli.segment", "-e", workdir["engine"],
                               "--video", workdir["video"], "--report", str(link)], cwd=REPO,
                              stdout=stdout, stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=120)
    assert_one_line_refusal(proc, "is a link to /dev/stdout")
    assert os.path.islink(str(link)) and captured.read_text() == ""
