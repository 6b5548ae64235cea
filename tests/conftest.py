"""Shared fixtures: real exports through the real rt-export code path, made once per session."""
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
KEYS_JSON = os.path.join(SHARED, "reference", "swiftnet_reference_keys.json")

# Small enough to keep the suite fast on 2 cores, large enough for the full network
# (every stage of SwiftNet-RN18 down to 1/32 and its SPP grids).
SMALL_SIZE = (128, 256)


def _export(tmp_dir, arch, size, name, **kwargs):
    from export.cli import export
    out = os.path.join(str(tmp_dir), name)
    export(arch, None, size, out, parity_images=2, log=lambda message: None, **kwargs)
    return out


@pytest.fixture(scope="session")
def rn18_engine(tmp_path_factory):
    """An untrained swiftnet-rn18 exported at 128x256: uint8 BGR frame in, class map out."""
    pytest.importorskip("torch")
    return _export(tmp_path_factory.mktemp("engines"), "swiftnet-rn18", SMALL_SIZE,
                   "swiftnet-rn18_fp32.onnx")


@pytest.fixture(scope="session")
def rn18_logits_engine(tmp_path_factory):
    """The same network exported with a float NCHW input and logits output."""
    pytest.importorskip("torch")
    return _export(tmp_path_factory.mktemp("engines"), "swiftnet-rn18", SMALL_SIZE,
                   "swiftnet-rn18_logits.onnx", input_format="tensor", output_kind="logits")


@pytest.fixture
def run_cli_subprocess():
    """Run a console entry point in a fresh interpreter; returns CompletedProcess."""
    import subprocess

    def run(module, *args, **kwargs):
        cmd = [sys.executable, "-m", module] + [str(a) for a in args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                              timeout=kwargs.pop("timeout", 300), **kwargs)
    return run
