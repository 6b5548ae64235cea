"""Dockerfile.jetson cannot be built here (arm64 + NVIDIA runtime), so check what can be checked:
known base images, no torch, no pip OpenCV, only the runtime's pip requirements, the run command."""
import configparser
import os
import re
import shlex

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(REPO, "Dockerfile.jetson")

# NVIDIA's L4T container images (nvcr.io/nvidia/l4t-*) for JetPack 4.6, 5.1 and 6.x.
KNOWN_IMAGES = [r"l4t-base:r32\.7\.1", r"l4t-tensorrt:r8\.2\.1-runtime", r"l4t-tensorrt:r8\.5\.2-runtime",
                r"l4t-tensorrt:r10\.3\.0-runtime", r"l4t-jetpack:r35\.\d+\.\d+", r"l4t-jetpack:r36\.\d+\.\d+"]


@pytest.fixture(scope="module")
def text():
    with open(DOCKERFILE) as handle:
        return handle.read()


def instructions(text):
    """(instruction, arguments) with comments dropped and continuation lines joined."""
    lines = [l for l in text.splitlines() if not l.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def runtime_requirements():
    """numpy (install_requires) and the GPU extra without onnxruntime-gpu: the device's pip deps."""
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    names = set()
    for block in (config["options"]["install_requires"], config["options.extras_require"]["gpu"],
                  config["options.extras_require"]["native"]):  # cmake, ninja: the native builder stage
        for line in block.splitlines():
            if line.strip():
                names.add(re.split(r"[<>=!~; \[]", line.strip())[0].lower())
    names.discard("onnxruntime-gpu")  # no aarch64 wheels on PyPI: the CPU build (or NVIDIA's wheel)
    names.add("onnxruntime")
    return names


def test_base_images_are_known_l4t_images(text):
    images = re.findall(r"nvcr\.io/nvidia/([\w.-]+:[\w.-]+)", text)
    assert images, "no NGC image named"
    for image in images:
        assert any(re.fullmatch(p, image) for p in KNOWN_IMAGES), image
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert args["BASE"] == "nvcr.io/nvidia/l4t-tensorrt:r8.5.2-runtime"
    froms = [rest for word, rest in instructions(text) if word == "FROM"]
    assert froms == ["${BUILDER} AS pycuda", "${BUILDER} AS native", "${BASE}"]
    for release in ("r32.7.1", "r35", "r36"):  # JetPack 4.6, 5.1 and 6.x are documented
        assert release in text


def test_no_torch_and_no_pip_opencv(text):
    for word, rest in instructions(text):
        assert "torch" not in rest.lower(), rest
        assert not re.search(r"(?<![\w-])opencv-(contrib-)?python", rest), rest
    assert "libopencv-python" in text  # JetPack's OpenCV, the one with GStreamer


def test_pip_installs_only_runtime_requirements(text):
    allowed = runtime_requirements()
    assert allowed == {"numpy", "pycuda", "onnxruntime", "cmake", "ninja"}
    installed = []
    for word, rest in instructions(text):
        if word != "RUN":
            continue
        for command in re.split(r"&&|;", rest):
            if "pip" not in command:
                continue
            tokens = [t for t in shlex.split(command) if t not in ("then", "else")]
            # NVIDIA's Jetson onnxruntime-gpu wheel, copied in when ORT_WHEEL is given
            tokens = ["onnxruntime" if t == "/tmp/ort/*.whl" else t for t in tokens]
            for i, token in enumerate(tokens):
                if token in ("install", "wheel") and i and tokens[i - 1] in ("pip", "pip3"):
                    installed += [t for t in tokens[i + 1:] if not t.startswith("-")
                                  and not t.startswith("/wheels") and t not in ("/wheels",)]
                    wheels = [t for t in tokens[i + 1:] if t.startswith("/wheels/")]
                    installed += [os.path.basename(w).split("-")[0] for w in wheels]
    names = {re.split(r"[<>=!~ ]", t)[0].lower() for t in installed}
    assert names and names <= allowed, names


def test_pycuda_is_pinned_and_built_against_the_images_numpy(text):
    args = dict(re.findall(r"^ARG (\w+)=(\S*)$", text, re.M))
    assert re.fullmatch(r"\d{4}\.\d+(\.\d+)?", args["PYCUDA_VERSION"])
    assert "2022.1" in text  # the last pycuda for Python 3.6, documented for JetPack 4
    build = [rest for word, rest in instructions(text) if word == "RUN" and "pip wheel" in rest]
    assert build and "--no-build-isolation" in build[0] and '"pycuda==${PYCUDA_VERSION}"' in build[0]


def test_cuda_apt_source_is_dropped_before_every_apt_update(text):
    for word, rest in instructions(text):
        if word == "RUN" and "apt-get update" in rest:
            assert rest.index("sources.list.d/cuda*.list") < rest.index("apt-get update"), rest


def test_onnxruntime_is_the_cpu_wheel_per_python_or_nvidias(text):
    args = dict(re.findall(r"^ARG (\w+)=(\S*)$", text, re.M))
    assert args["ORT_VERSION"] and args["ORT_WHEEL"] == ""
    assert "onnxruntime-gpu has no aarch64 wheels on PyPI" in text
    for pair in ("1.10.0 on 3.6", "1.16.3 on 3.8", "1.20.1 on 3.10"):
        assert pair in text


def test_device_tools_include_the_plan_builder(text):
    assert "rt-plan" in text and "plan:rt-plan" in text


def test_the_native_core_is_built_against_jetpacks_tensorrt_and_shipped(text):
    build = [rest for word, rest in instructions(text) if word == "RUN" and "cmake -S" in rest]
    assert build and "-DSWIFTRT_WITH_TENSORRT=ON" in build[0] and "-DSWIFTRT_BUILD_TESTS=OFF" in build[0]
    assert "COPY --from=native /opt/swiftrt /opt/swiftrt" in text
    assert "SWIFTRT_LIBRARY=/opt/swiftrt/lib/libswiftrt.so" in text


def test_only_the_runtime_is_copied(text):
    copies = [rest for word, rest in instructions(text) if word in ("COPY", "ADD")]
    sources = [shlex.split(rest)[0] for rest in copies if not rest.startswith("--from")]
    assert "runtime/" in sources
    for src in sources:
        assert not src.startswith(("export", "calib", "tests", ".")), src
    assert "setup.cfg" in sources  # only as the always-present file of the optional ORT_WHEEL copy



def test_the_image_leaves_out_workstation_code_under_runtime():
    """runtime/ is copied whole: what under it is workstation code is ignored (.dockerignore), and
    the scene generator is not under it at all (tests/test_architecture.py)."""
    ignored = open(os.path.join(REPO, ".dockerignore")).read().split()
    assert "runtime/native/tests" in ignored
    assert not os.path.exists(os.path.join(REPO, "runtime", "data", "synthetic.py"))


def test_run_command_is_documented(text):
    header = "\n".join(l for l in text.splitlines() if l.startswith("#"))
    run = header[header.index("docker run"):]
    for needle in ("--runtime nvidia", "-v /tmp/argus_socket:/tmp/argus_socket",
                   "--device /dev/video0", "rt-segment --engine"):
        assert needle in run
    assert "GStreamer" in text and "getBuildInformation" in text
