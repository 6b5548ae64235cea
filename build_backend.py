"""The build backend: setuptools' own (setuptools.build_meta), plus what a wheel's libswiftrt is
built with (setup.py's build_native step) as build requirements of a wheel only.

Why not static [build-system] requires: an editable install (``make venv``) and a Python-only
install (SWIFTRT_BUILD_NATIVE=0) build no library and need none of it, Python 3.6 has no OpenVINO
wheel, and cmake/ninja come from PyPI only where the system has none.
"""
import os
import re
import shutil
import subprocess

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403 (the PEP 517 hooks this module does not change)

# The backends libswiftrt is built against (the runtime's extras in setup.cfg: cpu, openvino).
BACKEND_WHEELS = ["onnxruntime>=1.10", 'openvino>=2023.1; python_version >= "3.8"']


def _cmake_found():
    """A cmake >= 3.16 on PATH (the native core's minimum)."""
    if not shutil.which("cmake"):
        return False
    try:
        out = subprocess.check_output(["cmake", "--version"], universal_newlines=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    match = re.search(r"(\d+)\.(\d+)", out)
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= (3, 16)


def native_build_requires():
    if os.environ.get("SWIFTRT_BUILD_NATIVE", "1") == "0":
        return []
    tools = ([] if _cmake_found() else ["cmake>=3.16"]) + ([] if shutil.which("ninja") else ["ninja"])
    return BACKEND_WHEELS + tools


def get_requires_for_build_wheel(config_settings=None):
    return _setuptools.get_requires_for_build_wheel(config_settings) + native_build_requires()
