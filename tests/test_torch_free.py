"""The device side never imports torch and parses on Python 3.6 (TX2's JetPack 4)."""
import os
import shutil
import subprocess
import sys

from tests.conftest import REPO

DEVICE_MODULES = ["runtime", "runtime.manifest", "runtime.libswiftrt", "runtime.core_preprocess",
                  "runtime.engine_base", "runtime.tasks.forecast", "runtime.forecast_eval",
                  "runtime.evaluation", "runtime.backends", "runtime.backends.native", "runtime.cli.common"]


def test_runtime_imports_without_torch():
    code = ("import sys, importlib\n"
            "for name in {!r}:\n"
            "    importlib.import_module(name)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "print('ok')\n").format(DEVICE_MODULES)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_runtime_source_never_imports_torch():
    for folder, _, files in os.walk(os.path.join(REPO, "runtime")):
        for name in files:
            if name.endswith(".py"):
                text = open(os.path.join(folder, name)).read()
                assert "import torch" not in text and "from torch" not in text, name


def test_device_code_parses_on_python_3_6():
    vermin = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    proc = subprocess.run([vermin, "--target=3.6-", "--no-tips", "--violations",
                           "runtime", "calib"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
