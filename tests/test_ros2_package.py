"""rt-ros2 as a ROS 2 package (runtime/ros2/, issue 30): a colcon build makes ``swiftrt_ros2``
discoverable through the ament index, installs the executable ``ros2 run`` starts (and it
starts rt-ros2), the package manifest is format 3, and the launch file's parameters YAML
names only the node's parameters with values the node accepts.

The build needs colcon (colcon-core, colcon-ros: pip install colcon-core colcon-ros); skipped
with that reason where it is not installed. The launch file is not run here: ROS 2's
``launch`` and ``launch_ros`` are not on PyPI (it is compiled and its YAML checked)."""
import importlib.util
import json
import os
import py_compile
import subprocess
import sys

import pytest

from tests.conftest import REPO

PACKAGE_DIR = os.path.join(REPO, "runtime", "ros2")
NAME = "swiftrt_ros2"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if importlib.util.find_spec("colcon_core") is None or importlib.util.find_spec(
            "colcon_ros") is None:
        pytest.skip("colcon is not installed (pip install colcon-core colcon-ros)")
    work = tmp_path_factory.mktemp("colcon")
    proc = subprocess.run(
        [sys.executable, "-m", "colcon", "--log-base", str(work / "log"), "build",
         "--base-paths", PACKAGE_DIR, "--build-base", str(work / "build"),
         "--install-base", str(work / "install")],
        cwd=str(work), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "install" / NAME


def _env(installed):
    env = dict(os.environ)
    site = [str(p) for p in (installed / "lib").glob("python3*/site-packages")]
    env["AMENT_PREFIX_PATH"] = str(installed)
    env["PYTHONPATH"] = os.pathsep.join([REPO] + site)  # this checkout's runtime first
    return env


def test_colcon_build_makes_the_package_discoverable_by_ament_index(installed):
    code = ("import json\n"
            "from ament_index_python.packages import get_package_share_directory, "
            "get_packages_with_prefixes\n"
            "print(json.dumps([get_package_share_directory('swiftrt_ros2'), "
            "sorted(get_packages_with_prefixes())]))\n")
    proc = subprocess.run([sys.executable, "-c", code], env=_env(installed), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    share, packages = json.loads(proc.stdout)
    assert share == str(installed / "share" / NAME) and NAME in packages
    for path in ("package.xml", "launch/rt_ros2.launch.py", "config/rt_ros2.param.yaml"):
        assert os.path.isfile(os.path.join(share, path)), path


def test_the_executable_ros2_run_starts_is_rt_ros2(installed):
    """`ros2 run swiftrt_ros2 rt_ros2 ARGS` executes <prefix>/lib/swiftrt_ros2/rt_ros2 ARGS."""
    executable = installed / "lib" / NAME / "rt_ros2"
    assert os.access(str(executable), os.X_OK)
    proc = subprocess.run([str(executable), "--ros-args", "-p", "engine:=/nonexistent/x.onnx"],
                          env=_env(installed), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "rt-ros2: error: no manifest for /nonexistent/x.onnx: expected /nonexistent/x.onnx.json "
        "(re-export with rt-export)"]


def test_package_xml_is_format_3_ament_python_with_the_resource_marker():
    from catkin_pkg.package import parse_package
    package = parse_package(os.path.join(PACKAGE_DIR, "package.xml"))
    assert package.package_format == 3 and package.name == NAME
    assert package.get_build_type() == "ament_python"
    depends = set(d.name for d in package.exec_depends)
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "launch_ros"} <= depends
    assert os.path.isfile(os.path.join(PACKAGE_DIR, "resource", NAME))


def test_launch_parameters_are_the_nodes_and_accepted_by_it(tmp_path, rn18_engine):
    """The YAML (with the launch file's substitutions filled in) sets only parameters the node
    declares, with values its checks accept; the launch file compiles."""
    import yaml
    pytest.importorskip("rclpy")
    from runtime.ros2_node import PARAMETERS, Settings
    py_compile.compile(os.path.join(PACKAGE_DIR, "launch", "rt_ros2.launch.py"), doraise=True,
                       cfile=str(tmp_path / "launch.pyc"))
    with open(os.path.join(PACKAGE_DIR, "config", "rt_ros2.param.yaml")) as handle:
        text = handle.read()
    labels = tmp_path / "labels.txt"
    from runtime.manifest import Manifest
    manifest = Manifest.load(str(rn18_engine))
    labels.write_text("\n".join("label{}".format(c["id"]) for c in manifest.classes) + "\n")
    colors = tmp_path / "colors.csv"
    colors.write_text("id,name,r,g,b\n0,road,1,2,3\n")
    for name, value in (("model_path", rn18_engine), ("label_path", labels),
                        ("color_map_path", colors)):
        text = text.replace("$(var {})".format(name), str(value))
    params = yaml.safe_load(text)["/**"]["ros__parameters"]
    assert set(params) <= set(PARAMETERS), set(params) - set(PARAMETERS)
    values = dict((name, p.default) for name, p in PARAMETERS.items())
    values.update(params)
    settings = Settings(values)
    assert settings.engine == str(rn18_engine) and settings.stale_timeout > 0
    from runtime.ros2_node import class_table
    table = class_table(manifest, settings.label_path, settings.color_map_path)
    assert table[0]["name"] == "label0" and table[0]["color"] == [1, 2, 3]
    assert table[1]["color"] == [int(v) for v in manifest.classes[1]["color"]]
