"""What a user does: build the wheel (``pip wheel .``: setup.py builds libswiftrt with CMake into
it), install it into an empty folder, and run a frame through an exported engine there: the
installed package finds its own libswiftrt and the backend libraries it carries, with neither
the checkout nor the onnxruntime/openvino wheels on the path. Without the library, one line
names the commands that build it; without cmake, the build stops in one line, and
SWIFTRT_BUILD_NATIVE=0 builds a Python-only wheel.

The wheel is built without isolation from this venv's cmake, ninja, onnxruntime and openvino,
in the checkout's build/ (setuptools' build/temp.*: a second run rebuilds nothing).
"""
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = os.path.join(REPO, "build", "native-engines")

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytestmark = pytest.mark.slow

# Runs in the installed copy: both carried backends, on a generated road scene.
USER_SCRIPT = r"""
import json, os, sys
import numpy as np
import runtime
from runtime import libswiftrt
from runtime.backends import native
lib = libswiftrt.load_library()
frame = np.load(sys.argv[2])
maps = {}
for backend in ("onnxruntime", "openvino"):
    engine = native.NativeEngine(sys.argv[1], threads=1, backend=backend)
    maps[backend] = engine.segment(frame).class_map
    engine.close()
with open("/proc/self/maps") as handle:
    loaded = sorted(set(line.split()[-1] for line in handle if ".so" in line))
print(json.dumps({"runtime": runtime.__file__, "library": lib.path, "version": libswiftrt.version(),
                  "shape": list(maps["onnxruntime"].shape), "classes": len(np.unique(maps["onnxruntime"])),
                  "agreement": float(np.mean(maps["onnxruntime"] == maps["openvino"])), "loaded": loaded}))
"""


def _seg_engine():
    """The native core's test engine (``make native`` exports it; exported here where missing)."""
    if not os.path.exists(os.path.join(ENGINES, "seg.onnx.json")):
        pytest.importorskip("torch")
        sys.path.insert(0, os.path.join(REPO, "runtime", "native", "tests"))
        try:
            import make_engines
        finally:
            sys.path.pop(0)
        make_engines.make(ENGINES, (128, 256), {"seg"})
    return os.path.join(ENGINES, "seg.onnx")


def _user_env(target):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWIFTRT_", "PYTHON", "LD_"))}
    env["PYTHONPATH"] = target
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel, built from this checkout and installed with pip into an empty folder."""
    wheels, target = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWIFTRT_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", "2")
    subprocess.check_call([sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "--no-build-isolation",
                           "-q", "--disable-pip-version-check", "-w", str(wheels)], cwd=REPO, env=env)
    wheel, = glob.glob(str(wheels / "swiftrt-*.whl"))
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--disable-pip-version-check",
                           "--target", str(target), wheel], env=env)
    return str(target)


def test_installed_package_runs_a_frame_on_its_own_libswiftrt(installed, tmp_path):
    from export.scenes import render_scene
    engine, scene = _seg_engine(), str(tmp_path / "scene.npy")
    np.save(scene, render_scene(5, 0, size=(360, 640))[0])   # a camera-sized BGR road scene
    out = subprocess.run([sys.executable, "-c", USER_SCRIPT, engine, scene], cwd=str(tmp_path),
                         env=_user_env(installed), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    package_lib = os.path.join(installed, "runtime", "native_lib")
    assert got["runtime"].startswith(installed + os.sep)
    assert got["library"] == os.path.join(package_lib, "libswiftrt.so.1")
    assert "onnxruntime" in got["version"] and "openvino" in got["version"], got["version"]
    # The backends are the carried copies beside libswiftrt, not the wheels of this venv.
    carried = [p for p in got["loaded"] if "onnxruntime" in os.path.basename(p) or "libopenvino" in p]
    assert carried and all(p.startswith(os.path.join(package_lib, "swiftrt") + os.sep) for p in carried), carried
    assert got["shape"] == [128, 256] and got["classes"] > 3
    assert got["agreement"] >= 0.999


def test_without_the_library_one_line_names_the_commands_that_build_it(installed, tmp_path):
    """The installed package less its library (a Python-only install: SWIFTRT_BUILD_NATIVE=0)."""
    bare = tmp_path / "site"
    shutil.copytree(os.path.join(installed, "runtime"), str(bare / "runtime"),
                    ignore=shutil.ignore_patterns("native_lib"))
    out = subprocess.run([sys.executable, "-c", "from runtime import libswiftrt\n"
                          "from runtime.errors import UserError\n"
                          "try:\n    libswiftrt.load_library()\nexcept UserError as exc:\n    print(exc)"],
                         cwd=str(tmp_path), env=_user_env(str(bare)), stdout=subprocess.PIPE,
                         universal_newlines=True)
    assert out.returncode == 0
    line, = out.stdout.splitlines()
    assert "pip install ." in line and "make native-lib" in line


def test_without_cmake_one_line_says_what_to_do_and_a_python_only_wheel_builds(tmp_path):
    """A machine without a toolchain: the build stops in one line; SWIFTRT_BUILD_NATIVE=0 builds
    a Python-only (py3-none-any) wheel there."""
    (tmp_path / "bin").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWIFTRT_")}
    env["PATH"] = str(tmp_path / "bin")   # no cmake, no compiler
    wheel = [sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "--no-build-isolation", "-q",
             "--disable-pip-version-check", "-w", str(tmp_path / "wheels")]
    out = subprocess.run(wheel, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True)
    assert out.returncode != 0
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip().startswith("libswiftrt:")]
    assert len(lines) == 1 and "cmake" in lines[0] and "SWIFTRT_BUILD_NATIVE=0" in lines[0], out.stdout
    env["SWIFTRT_BUILD_NATIVE"] = "0"
    subprocess.check_call(wheel, cwd=REPO, env=env)
    built = os.listdir(str(tmp_path / "wheels"))
    assert len(built) == 1 and built[0].endswith("-py3-none-any.whl"), built
