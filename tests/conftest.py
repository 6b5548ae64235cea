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
    from export.api import export
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


@pytest.fixture(scope="session")
def forecast_sequences(tmp_path_factory):
    """A tiny generated sequence set (Cityscapes layout, 15 fps): 3 train and 2 val drives of 16 frames."""
    from export import scenes as synthetic
    root = str(tmp_path_factory.mktemp("sequences"))
    synthetic.write_sequences(root, "train", count=3, length=16, fps=15, seed=21, size=SMALL_SIZE)
    synthetic.write_sequences(root, "val", count=2, length=16, fps=15, seed=22, size=SMALL_SIZE)
    return root


@pytest.fixture(scope="session")
def forecaster_checkpoints(tmp_path_factory, forecast_sequences):
    """(single-level checkpoint, f2f-8 checkpoint trained for a few steps with rt-train's code, horizon 3)."""
    pytest.importorskip("torch")
    import torch
    from export import checkpoints, models
    from export.train_forecast import ForecasterOptions, train_forecaster
    folder = tmp_path_factory.mktemp("forecaster")
    torch.manual_seed(0)
    sl = models.create("swiftnet-rn18-sl")
    sl_path = str(folder / "sl.pt")
    checkpoints.save_checkpoint(sl_path, sl, "swiftnet-rn18-sl", {"input_size": list(SMALL_SIZE)})
    f2f_path = str(folder / "f2f.pt")
    result = train_forecaster("f2f-8", forecast_sequences, f2f_path, sl_path, ForecasterOptions(horizon=3,
                              iterations=4, finetune_iterations=2, batch_size=2, depth=3, progress=False,
                              log=lambda m: None))
    return sl_path, f2f_path, result


@pytest.fixture(scope="session")
def forecast_bundle(tmp_path_factory, forecaster_checkpoints):
    """A real forecast bundle (FP32, default MatMul form) exported by rt-export's code at 128x256."""
    from export.forecast_export import BundleOptions, export_bundle
    out = str(tmp_path_factory.mktemp("bundles") / "f2f_fp32")
    export_bundle(forecaster_checkpoints[1], out, BundleOptions(parity_frames=10, log=lambda m: None))
    return out


@pytest.fixture(scope="session", autouse=True)
def sha256_cache(tmp_path_factory):
    """The engines' sha256 cache (runtime.manifest.cached_sha256) in a temporary folder, not ~/.cache."""
    folder = str(tmp_path_factory.mktemp("sha256-cache"))
    old = os.environ.get("SWIFTRT_CACHE_DIR")
    os.environ["SWIFTRT_CACHE_DIR"] = folder
    yield folder
    if old is None:
        os.environ.pop("SWIFTRT_CACHE_DIR", None)
    else:
        os.environ["SWIFTRT_CACHE_DIR"] = old


def core_onnx_backend():
    """The backend libswiftrt runs an .onnx on by default: ONNX Runtime where the library was
    built with it (its C API header found), else OpenVINO (runtime/native/third_party/onnxruntime)."""
    from runtime import libswiftrt
    return "onnxruntime" if "onnxruntime" in libswiftrt.version().split("backends:")[1] else "openvino"
