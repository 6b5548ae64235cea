"""setup.cfg holds the project's metadata; this file adds one build step: libswiftrt.

``pip install .`` / ``pip wheel .`` build libswiftrt (runtime/native) with CMake and put it into
the package as runtime/native_lib/libswiftrt.so.<ABI>, with the backend libraries it carries
(ONNX Runtime, OpenVINO: runtime/native_lib/swiftrt/, found through libswiftrt's $ORIGIN RUNPATH).
Why carried copies and not a RUNPATH into the onnxruntime/openvino wheels: the onnxruntime wheel
ships libonnxruntime.so.1.X.Y but not the name libswiftrt links to (libonnxruntime.so.1), and the
library must match the one it was built against; carried, the install works wherever it lands
(a venv, ``--target``, a copied folder). runtime/libswiftrt.py loads it from there.

The build environment's onnxruntime and openvino wheels are the backends it is built against
(build_backend.py adds them to the build requirements). Environment:
  SWIFTRT_BUILD_NATIVE=0   a Python-only install (no compiler needed; then ``make native-lib``
                           or SWIFTRT_LIBRARY provides the library)
  SWIFTRT_CMAKE_ARGS       extra CMake arguments, e.g. "-DSWIFTRT_WITH_TENSORRT=ON" on a Jetson
  SWIFTRT_CMAKE_BUILD_DIR  the CMake build folder (default build/temp.*/native: a second build
                           is incremental)
  CMAKE_BUILD_PARALLEL_LEVEL  compile jobs (CMake's own variable)
An editable install (``pip install -e .``, ``make venv``) builds nothing: ``make native-lib``
builds build/native, which the checkout's runtime finds.
"""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib.util import find_spec

from setuptools import Command, Distribution, setup

try:  # setuptools >= 62.4; the distutils command before (Python 3.6's setuptools 59)
    from setuptools.command.build import build
except ImportError:
    from distutils.command.build import build
try:  # setuptools >= 70.1 has its own; the wheel package's before
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:
    try:
        from wheel.bdist_wheel import bdist_wheel
    except ImportError:
        bdist_wheel = None

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE_SRC = os.path.join("runtime", "native")
PACKAGE_LIB_DIR = os.path.join("runtime", "native_lib")   # runtime/libswiftrt.py looks here
HOW_TO_SKIP = "or set SWIFTRT_BUILD_NATIVE=0 for a Python-only install"


def native_build_enabled():
    return os.environ.get("SWIFTRT_BUILD_NATIVE", "1") != "0"


def _package_dir(name):
    """Where an installed package lives, without importing it (None when absent)."""
    try:
        spec = find_spec(name)
    except (ImportError, ValueError):
        return None
    return list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else None


def backend_cmake_args():
    """-D arguments for the ONNX Runtime and OpenVINO wheels this environment has."""
    args = []
    ort = _package_dir("onnxruntime")
    ort_capi = ort and os.path.join(ort, "capi")
    if ort_capi and glob.glob(os.path.join(ort_capi, "libonnxruntime.so*")):
        args += ["-DSWIFTRT_WITH_ONNXRUNTIME=ON", "-DONNXRUNTIME_ROOT=" + ort_capi]
    else:
        args.append("-DSWIFTRT_WITH_ONNXRUNTIME=OFF")
    ov = _package_dir("openvino")
    ov_cmake = ov and os.path.join(ov, "cmake")
    if ov_cmake and glob.glob(os.path.join(ov_cmake, "OpenVINOConfig.cmake")):
        args += ["-DSWIFTRT_WITH_OPENVINO=ON", "-DOpenVINO_DIR=" + ov_cmake]
    else:
        args.append("-DSWIFTRT_WITH_OPENVINO=OFF")
    return args


class build_native(Command):
    """Configure, build and install libswiftrt with CMake into build_lib/runtime/native_lib."""
    description = "build libswiftrt (runtime/native) with CMake into the package"
    user_options = []

    def initialize_options(self):
        self.build_lib = None
        self.build_temp = None
        self.editable_mode = False

    def finalize_options(self):
        self.set_undefined_options("build_ext", ("build_lib", "build_lib"), ("build_temp", "build_temp"))

    def _fail(self, line):
        sys.exit("libswiftrt: " + line)   # one line, exit status 1: pip prints it and stops

    def run(self):
        if not native_build_enabled():
            self.announce("libswiftrt: not built (SWIFTRT_BUILD_NATIVE=0)", level=3)
            return
        if self.editable_mode:
            self.announce("libswiftrt: not built by an editable install: `make native-lib` builds "
                          "build/native, which this checkout's runtime finds", level=3)
            return
        cmake = shutil.which("cmake")
        if not cmake:
            self._fail("cmake >= 3.16 and a C++17 compiler build it (pip install cmake ninja; "
                       "apt-get install g++), " + HOW_TO_SKIP)
        extra = shlex.split(os.environ.get("SWIFTRT_CMAKE_ARGS", ""))
        backends = backend_cmake_args()
        if not any(a.endswith("=ON") for a in backends) and "-DSWIFTRT_WITH_TENSORRT=ON" not in extra:
            self._fail("no backend to build against: pip install onnxruntime openvino (a build "
                       "without isolation uses the environment's), SWIFTRT_CMAKE_ARGS="
                       "-DSWIFTRT_WITH_TENSORRT=ON for TensorRT, " + HOW_TO_SKIP)
        build_dir = os.path.abspath(os.environ.get("SWIFTRT_CMAKE_BUILD_DIR")
                                    or os.path.join(self.build_temp, "native"))
        stage = os.path.abspath(os.path.join(self.build_temp, "native-install"))
        configure = [cmake, "-S", os.path.join(HERE, NATIVE_SRC), "-B", build_dir, "-Wno-dev",
                     "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_INSTALL_LIBDIR=lib",
                     "-DSWIFTRT_BUILD_TESTS=OFF", "-DSWIFTRT_BUILD_EXAMPLES=OFF"]
        if shutil.which("ninja") and not os.path.exists(os.path.join(build_dir, "Makefile")):
            configure += ["-G", "Ninja"]
        try:
            subprocess.check_call(configure + backends + extra)
            subprocess.check_call([cmake, "--build", build_dir, "--target", "swiftrt"])
            shutil.rmtree(stage, ignore_errors=True)
            subprocess.check_call([cmake, "--install", build_dir, "--prefix", stage])
        except (OSError, subprocess.CalledProcessError) as exc:
            self._fail("the CMake build failed ({}; output above), {}".format(exc, HOW_TO_SKIP))
        self._copy_into_package(os.path.join(stage, "lib"))

    def _copy_into_package(self, stage_lib):
        """libswiftrt under its soname (a wheel holds no symlinks) and the carried libraries."""
        sonames = [f for f in os.listdir(stage_lib) if re.match(r"^libswiftrt\.so\.\d+$", f)]
        if len(sonames) != 1:
            self._fail("the install in {} has no single libswiftrt.so.<ABI> ({})".format(stage_lib, sonames))
        dest = os.path.join(self.build_lib, PACKAGE_LIB_DIR)
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        shutil.copy2(os.path.join(stage_lib, sonames[0]), dest)   # follows the link to the file
        carried = os.path.join(stage_lib, "swiftrt")
        if os.path.isdir(carried):
            shutil.copytree(carried, os.path.join(dest, "swiftrt"))

    def get_outputs(self):
        dest = os.path.join(self.build_lib, PACKAGE_LIB_DIR)
        return [os.path.join(root, f) for root, _, files in os.walk(dest) for f in files]

    def get_output_mapping(self):
        return {}

    def get_source_files(self):
        return []   # MANIFEST.in grafts runtime/native into the sdist


class build_with_native(build):
    sub_commands = build.sub_commands + [("build_native", lambda cmd: native_build_enabled())]


class NativeDistribution(Distribution):
    """A platform wheel (libswiftrt is a binary) unless SWIFTRT_BUILD_NATIVE=0."""

    def has_ext_modules(self):
        return native_build_enabled() or Distribution.has_ext_modules(self)


COMMANDS = {"build": build_with_native, "build_native": build_native}
if bdist_wheel is not None:
    class bdist_wheel_any_python(bdist_wheel):
        """py3-none-<platform>: libswiftrt is loaded through ctypes, one wheel serves every Python 3."""

        def get_tag(self):
            python, abi, plat = bdist_wheel.get_tag(self)
            return (python, abi, plat) if self.root_is_pure else ("py3", "none", plat)

    COMMANDS["bdist_wheel"] = bdist_wheel_any_python

setup(distclass=NativeDistribution, cmdclass=COMMANDS)
