"""A hostile user, generically (hypothesis): any manifest field replaced or removed, any flag
given an absurd value, any output path pointed at something precious. Whatever happens, a
failure is one line and exit code 2 (no traceback), and the inputs' bytes are unchanged.

The CLIs run in this process (run_cli, as the console scripts do) to keep examples cheap;
tests/test_output_safety.py and tests/test_streams.py run them as subprocesses."""
import contextlib
import copy
import hashlib
import io
import json
import os
import shutil

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from runtime.cli import bench as bench_cli  # noqa: E402
from runtime.cli import eval as eval_cli  # noqa: E402
from runtime.cli import segment as segment_cli  # noqa: E402
from runtime.cli.common import run_cli  # noqa: E402
from tests.test_segment_cli import write_video  # noqa: E402

CLIS = {"rt-segment": segment_cli.main, "rt-bench": bench_cli.main, "rt-eval": eval_cli.main}
SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def run(prog, argv):
    """(exit code, stderr) of a CLI run in this process; anything but a UserError propagates."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_cli(CLIS[prog], argv, prog=prog)
    return code, err.getvalue()


def assert_clean(prog, code, err):
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = [l for l in err.strip().splitlines() if l.startswith(prog + ": error:")]
        assert len(lines) == 1 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def world(tmp_path_factory, rn18_engine):
    """An engine copy, its manifest, a 3-frame video and a frames folder, in one folder."""
    root = tmp_path_factory.mktemp("hostile")
    engine = str(root / "e.onnx")
    shutil.copy(rn18_engine, engine)
    shutil.copy(rn18_engine + ".json", engine + ".json")
    video = write_video(root / "in.mp4", 3)
    frames = root / "frames"
    frames.mkdir()
    shutil.copy(video, str(frames / "not_an_image.png"))
    fifo = str(root / "fifo")
    os.mkfifo(fifo)
    with open(engine + ".json", "rb") as handle:
        manifest_bytes = handle.read()
    manifest = json.loads(manifest_bytes.decode("utf-8"))
    inputs = [engine, engine + ".json", video, str(frames / "not_an_image.png")]
    return {"root": str(root), "engine": engine, "manifest": manifest,
            "manifest_bytes": manifest_bytes, "video": video,
            "frames": str(frames), "fifo": fifo, "inputs": inputs,
            "hashes": dict((p, sha(p)) for p in inputs)}


def _paths(value, prefix=()):
    """Every key path in a JSON value (dict keys and list indices)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value[:3]):
            out += _paths(child, prefix + (index,))
    return out


HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.integers(-300, 300), max_size=5),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from(["", "NHWC", "NCHW", "BGR", "logits", "features", "class_map", "float64",
                     "0" * 64, "../../etc/passwd", "x" * 10000]),
    st.just("DELETE"))


def _sealed_text(manifest, path):
    """The manifest file for ``manifest`` as every writer seals it (runtime.manifest), so that a
    mutation is refused (or survived) for what it does, not for the broken seal; NaN and
    infinities are written as they are. A mutation of the seal itself is written unsealed."""
    from runtime.manifest import DIGEST_KEY, DIGEST_PLACEHOLDER, seal_manifest_text
    if tuple(path[:1]) == (DIGEST_KEY,):
        return json.dumps(manifest)
    text = json.dumps(dict(manifest, **{DIGEST_KEY: DIGEST_PLACEHOLDER}))
    try:
        return seal_manifest_text(text)
    except ValueError:  # a hostile key named like the seal elsewhere: refused unsealed
        return text


def _mutate(manifest, path, value):
    data = copy.deepcopy(manifest)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if value == "DELETE":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


@pytest.fixture(scope="module")
def manifest_paths(world):
    return [p for p in _paths(world["manifest"]) if p[:1] != ("toolchain",)]


@given(data=st.data())
@settings(max_examples=150, **SETTINGS)
def test_any_manifest_field_replaced_or_removed(world, manifest_paths, data):
    path = data.draw(st.sampled_from(manifest_paths), label="field")
    value = data.draw(HOSTILE_VALUES, label="value")
    mutated = _mutate(world["manifest"], path, value)
    manifest_path = world["engine"] + ".json"
    try:
        with open(manifest_path, "w") as handle:
            handle.write(_sealed_text(mutated, path))
        written = sha(manifest_path)
        code, err = run("rt-segment", ["-e", world["engine"], "--video", world["video"],
                                       "--max-frames", "1", "-q"])
        assert_clean("rt-segment", code, err)
        assert sha(manifest_path) == written and sha(world["engine"]) == world["hashes"][world["engine"]]
    finally:
        with open(manifest_path, "wb") as handle:
            handle.write(world["manifest_bytes"])


ABSURD = st.sampled_from(["nan", "inf", "-inf", "-1", "0", "-0", "1e308", "1e-308", "99999999999",
                          "", "abc", "0x10", "1x1", "100000x100000", "7", "1", "0.5"])

FLAGS = {
    "rt-segment": ["--duration", "--threads", "--max-frames", "--reconnect", "--capture-size",
                   "--capture-fps", "--alpha", "--status-interval", "--stall-timeout",
                   "--outlier-threshold", "--resize", "--backend", "--visualize"],
    "rt-bench": ["--duration", "--threads", "--iterations", "--rounds", "--warmup", "--warmup-s",
                 "--cv-warn", "--e2e-frames", "--power-interval", "--backend"],
    "rt-eval": ["--threads", "--limit", "--outlier-bins", "--backend", "--split"],
}


def _base(prog, world):
    if prog == "rt-segment":
        return ["-e", world["engine"], "--video", world["video"], "--max-frames", "1", "-q"]
    if prog == "rt-bench":
        return ["-e", world["engine"], "--iterations", "1", "--rounds", "1", "--warmup", "1", "-q"]
    return ["--engine", world["engine"], "--data", world["frames"], "-q"]


@given(data=st.data())
@settings(max_examples=80, **SETTINGS)
def test_any_flag_with_an_absurd_value(world, data):
    prog = data.draw(st.sampled_from(sorted(FLAGS)), label="cli")
    flag = data.draw(st.sampled_from(FLAGS[prog]), label="flag")
    value = data.draw(ABSURD, label="value")
    argv = _base(prog, world)
    if prog == "rt-bench" and flag in ("--duration", "--warmup-s"):
        argv = [a for a in argv if a not in ("--iterations", "--warmup")]
        argv = [a for i, a in enumerate(argv) if i == 0 or argv[i - 1] not in ("--iterations", "--warmup")]
    if prog == "rt-bench" and flag == "--duration" and value not in ("nan", "inf", "-inf", "-1", "0", "-0"):
        value = "0.05"   # a valid duration: keep the example short
    if prog == "rt-bench" and flag in ("--iterations", "--rounds", "--warmup") and value in ("99999999999",):
        value = "2"
    if prog == "rt-segment" and flag == "--duration" and value not in ("nan", "inf", "-inf", "-1", "0", "-0"):
        value = "5"
    code, err = run(prog, argv + ["{}={}".format(flag, value)])
    assert_clean(prog, code, err)
    assert dict((p, sha(p)) for p in world["inputs"]) == world["hashes"]


def _hostile_path(world, kind, tmp):
    if kind == "video":
        return world["video"]
    if kind == "engine":
        return world["engine"]
    if kind == "manifest":
        return world["engine"] + ".json"
    if kind == "folder":
        return world["root"]
    if kind == "fifo":
        return world["fifo"]
    if kind == "device":
        return "/dev/null"
    if kind == "proc":
        return "/proc/self/nope.json"
    if kind == "under-a-file":
        return os.path.join(world["video"], "report.json")
    if kind == "dangling-link":
        link = os.path.join(tmp, "dangling.json")
        if not os.path.lexists(link):
            os.symlink(os.path.join(tmp, "nowhere", "x"), link)
        return link
    if kind == "link-to-fifo":
        link = os.path.join(tmp, "to_fifo.json")
        if not os.path.lexists(link):
            os.symlink(world["fifo"], link)
        return link
    if kind == "input-image":
        return os.path.join(world["frames"], "not_an_image.png")
    raise AssertionError(kind)


WRITERS = [("rt-segment", "--report"), ("rt-segment", "--output"), ("rt-segment", "--save-frames"),
           ("rt-bench", "--json"), ("rt-bench", "--markdown"), ("rt-eval", "--json")]
KINDS = ["video", "engine", "manifest", "folder", "fifo", "device", "proc", "under-a-file",
         "dangling-link", "link-to-fifo", "input-image"]


@given(data=st.data())
@settings(max_examples=60, **SETTINGS)
def test_any_output_pointed_at_something_precious(world, tmp_path_factory, data):
    prog, flag = data.draw(st.sampled_from(WRITERS), label="writer")
    kind = data.draw(st.sampled_from(KINDS), label="path")
    if flag == "--save-frames" and kind in ("folder",):
        kind = "input-image"   # a folder is what --save-frames wants; the inputs' folder is tested below
    if prog == "rt-bench" and kind == "input-image":
        kind = "video"         # rt-bench reads no images: there the image is no input
    tmp = world["root"]
    path = _hostile_path(world, kind, tmp)
    argv = _base(prog, world)
    if prog == "rt-segment" and kind == "input-image":
        argv = ["-e", world["engine"], "--images", world["frames"], "-q"]
    if prog == "rt-bench":
        argv += ["--video", world["video"]]
    before = sorted(os.listdir(world["root"]))
    code, err = run(prog, argv + [flag, path])
    assert code == 2, (prog, flag, kind, err)
    assert_clean(prog, code, err)
    assert dict((p, sha(p)) for p in world["inputs"]) == world["hashes"]
    assert sorted(os.listdir(world["root"])) == before


def test_save_frames_into_the_input_images_folder_is_refused(world):
    code, err = run("rt-segment", ["-e", world["engine"], "--images", world["frames"],
                                   "--save-frames", world["frames"], "-q"])
    assert code == 2 and "holds an input" in err
    assert dict((p, sha(p)) for p in world["inputs"]) == world["hashes"]


@pytest.fixture(scope="module")
def bundle_world(tmp_path_factory):
    from tests import forecast_bundles as fb
    root = tmp_path_factory.mktemp("hostile_bundle")
    bundle = fb.build_bundle(root / "bundle", (-4, -2, 0), frame_rate=15.0)
    video = fb.write_video(root / "v.mp4", 6, 15.0)
    folder = os.path.dirname(bundle)
    manifests = {}
    for name in ("forecast.json", "f2f.onnx.json", "decoder.onnx.json"):
        with open(os.path.join(folder, name)) as handle:
            manifests[name] = json.load(handle)
    return {"bundle": bundle, "folder": folder, "video": video, "manifests": manifests}


@given(data=st.data())
@settings(max_examples=80, **SETTINGS)
def test_any_bundle_manifest_field_replaced_or_removed(bundle_world, data):
    name = data.draw(st.sampled_from(sorted(bundle_world["manifests"])), label="manifest")
    original = bundle_world["manifests"][name]
    path = data.draw(st.sampled_from(_paths(original)), label="field")
    value = data.draw(HOSTILE_VALUES, label="value")
    target = os.path.join(bundle_world["folder"], name)
    try:
        with open(target, "w") as handle:
            handle.write(_sealed_text(_mutate(original, path, value), path))
        code, err = run("rt-segment", ["-e", bundle_world["bundle"], "--video", bundle_world["video"],
                                       "-q"])
        assert_clean("rt-segment", code, err)
    finally:
        with open(target, "w") as handle:
            handle.write(_sealed_text(original, ()))
