"""Fleets of recorded drives (runtime/fleet.py): rt-segment / rt-eval --drives, one after another
and as Ray tasks on a real local cluster (127.0.0.1, two workers) with a worker killed mid-run."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from tests.conftest import REPO, SMALL_SIZE

from runtime import fleet  # noqa: E402
from runtime.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def drives(tmp_path_factory):
    """Two labelled drives (Cityscapes layout, 3 images) and two videos (30 frames)."""
    from export import scenes
    root = tmp_path_factory.mktemp("fleet") / "drives"
    os.makedirs(str(root))
    for index in (1, 2):
        scenes.write_split(str(root / "city{}".format(index)), "val", 3, index, SMALL_SIZE)
    for index in (1, 2):
        scenes.write_video(str(root / "cam{}.mp4".format(index)), 30, 10.0, index + 10, SMALL_SIZE)
    return str(root)


@pytest.fixture(scope="module")
def sequential(rn18_engine, drives, tmp_path_factory):
    """rt-segment --drives without Ray (the drives one after another)."""
    from runtime.cli.segment import main
    out = tmp_path_factory.mktemp("sequential")
    assert main(["--engine", rn18_engine, "--drives", drives, "--out-dir", str(out / "o"),
                 "--report", str(out / "fleet.json"), "--threads", "1", "-q"]) == 0
    return json.loads((out / "fleet.json").read_text())


def _by_name(report):
    return dict((d["name"], d) for d in report["drives"])


def test_sequential_fleet_reports_every_drive_and_exact_overall_miou(sequential, rn18_engine, drives):
    from runtime import evaluation
    per = _by_name(sequential)
    assert sorted(per) == ["cam1.mp4", "cam2.mp4", "city1", "city2"]
    assert per["cam1.mp4"]["frames"] == 30 and per["cam1.mp4"]["fps"] > 0
    for name in ("city1", "city2"):
        alone = evaluation.evaluate_segmentation(rn18_engine, os.path.join(drives, name), "val", quiet=True)
        assert per[name]["miou"] == pytest.approx(alone["miou"], abs=1e-12)
        assert per[name]["frames"] == 3
    overall = sequential["overall"]
    assert overall["completed"] == 4 and overall["failed"] == 0 and overall["frames"] == 66
    # overall mIoU from the summed confusion matrices: what one evaluation of both drives gives
    merged = tempfile.mkdtemp()
    for name in ("city1", "city2"):
        for sub in ("leftImg8bit", "gtFine"):
            for city in os.listdir(os.path.join(drives, name, sub, "val")):
                os.makedirs(os.path.join(merged, sub, "val"), exist_ok=True)
                os.symlink(os.path.join(drives, name, sub, "val", city),
                           os.path.join(merged, sub, "val", name + city))
    both = evaluation.evaluate_segmentation(rn18_engine, merged, "val", quiet=True)
    assert overall["miou"] == pytest.approx(both["miou"], abs=1e-12)


def test_rt_eval_drives_needs_labels_and_fleet_flags_need_drives(rn18_engine, drives, tmp_path):
    from runtime.cli.common import run_cli
    from runtime.cli.eval import main as eval_main
    from runtime.cli.segment import main as segment_main
    assert run_cli(eval_main, ["--engine", rn18_engine, "--drives", drives,
                               "--out-dir", str(tmp_path / "o")]) == 2  # the videos have no labels
    labelled = [os.path.join(drives, "city1"), os.path.join(drives, "city2")]
    assert run_cli(eval_main, ["--engine", rn18_engine, "--drives"] + labelled +
                   ["--out-dir", str(tmp_path / "e"), "--json", str(tmp_path / "e.json"), "-q"]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["overall"]["completed"] == 2
    assert run_cli(segment_main, ["--engine", rn18_engine, "--video", "x.mp4", "--ray", "auto"]) == 2
    assert run_cli(segment_main, ["--engine", rn18_engine, "--drives", drives, "--out-dir",
                                  str(tmp_path / "d"), "--display"]) == 2
    with pytest.raises(UserError, match="not a drive"):
        fleet.find_drives([str(tmp_path / "e.json")])


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray head on 127.0.0.1 with 2 CPUs (two task workers), started once for the module."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'swiftrt[ray]')")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rtf-", dir="/tmp")  # short: Ray's socket paths are limited
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
         "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
         "--disable-usage-stats", "--temp-dir", temp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=dict(os.environ, PYTHONPATH=REPO))
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert head.poll() is None, "ray start exited"
            time.sleep(0.5)
    else:
        pytest.fail("Ray head not up after 120 s")
    yield "127.0.0.1:{}".format(port), head
    os.killpg(head.pid, signal.SIGTERM)  # the head, its raylet and workers: our own session only
    try:
        head.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()


def _our_task_workers(head):
    """PIDs of this cluster's workers running a drive (process title ray::fleet_drive)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/{}/cmdline".format(entry), "rb") as handle:
                title = handle.read()
            if title.startswith(b"ray::fleet_drive") and os.getsid(int(entry)) == head.pid:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def test_ray_fleet_survives_a_killed_worker_with_a_complete_correct_report(
        ray_cluster, rn18_engine, drives, sequential, tmp_path):
    address, head = ray_cluster
    report_path = tmp_path / "fleet.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli.segment", "--engine", rn18_engine, "--drives", drives,
         "--out-dir", str(tmp_path / "out"), "--report", str(report_path), "--threads", "1",
         "--ray", address], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=REPO))
    killed = None
    deadline = time.time() + 240
    while killed is None and time.time() < deadline and run.poll() is None:
        workers = _our_task_workers(head)  # titled ray::fleet_drive only while running a drive
        if workers:
            os.kill(workers[0], signal.SIGKILL)
            killed = workers[0]
        time.sleep(0.1)
    out, err = run.communicate(timeout=600)
    assert killed is not None, "no drive task seen running: {}".format(err.decode()[-500:])
    assert run.returncode == 0, err.decode()[-2000:]
    report = json.loads(report_path.read_text())
    per, expected = _by_name(report), _by_name(sequential)
    assert sorted(per) == sorted(expected) and len(report["drives"]) == 4  # each drive once
    assert all(d["pid"] != killed for d in report["drives"])  # the killed run left no result
    for name, entry in per.items():
        assert entry["frames"] == expected[name]["frames"]
        if "miou" in expected[name]:
            assert entry["miou"] == pytest.approx(expected[name]["miou"], abs=1e-12)
    overall = report["overall"]
    assert overall["completed"] == 4 and overall["failed"] == 0
    assert overall["frames"] == sequential["overall"]["frames"]
    assert overall["miou"] == pytest.approx(sequential["overall"]["miou"], abs=1e-12)
    assert report["runner"] == "ray " + address
    assert sorted(os.listdir(str(tmp_path / "out" / "drives"))) == sorted(
        n + ".json" for n in per)  # whole files only, no leftovers of the killed run
    assert b"4/4 drives" in err


def test_forecast_bundle_on_labelled_sequence_drives(forecast_bundle, forecast_sequences, tmp_path):
    """A forecast bundle's drives: the gain over copy-last per drive is rt-eval's, overall the
    sample-weighted mean."""
    from runtime import evaluation
    drives = [fleet.Drive(forecast_sequences), fleet.Drive(forecast_sequences, name="again")]
    report = fleet.run_fleet(forecast_bundle, drives, str(tmp_path / "out"), split="val",
                             threads=1, quiet=True)
    alone = evaluation.evaluate_engine(forecast_bundle, forecast_sequences, "val", quiet=True)
    for entry in report["drives"]:
        assert entry["forecast"]["gain_over_copy_last_pp"] == pytest.approx(
            alone["gain_over_copy_last_pp"], abs=1e-9)
        assert entry["frames"] == alone["samples"]
    overall = report["overall"]["forecast"]
    assert overall["samples"] == 2 * alone["samples"]
    assert overall["gain_over_copy_last_pp"] == pytest.approx(alone["gain_over_copy_last_pp"], abs=1e-9)


def test_fleet_report_never_replaces_a_drive(rn18_engine, drives, tmp_path):
    from runtime.cli.common import run_cli
    from runtime.cli.segment import main
    video = os.path.join(drives, "cam1.mp4")
    before = os.path.getsize(video)
    assert run_cli(main, ["--engine", rn18_engine, "--drives", drives, "--out-dir",
                          str(tmp_path / "o"), "--report", video]) == 2
    assert os.path.getsize(video) == before and not os.path.exists(str(tmp_path / "o"))
