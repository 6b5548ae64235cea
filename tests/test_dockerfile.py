"""Dockerfile.jetson cannot be built here (arm64 + NVIDIA runtime), so check what can be checked:
known base images, no torch, no pip OpenCV, only the runtime's pip requirements, the run command."""
import configparser
import os
import re
import shlex
import tempfile

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


# -- every pip line resolved with pip's own resolver, per JetPack ------------------------------
# The builds the header documents: Python, glibc (the manylinux_2_x tags the platform takes) and the
# pip that Ubuntu ships there (pip 9 on 18.04 has no --no-build-isolation and only manylinux1 tags,
# which have no aarch64 wheels; the PEP 600 manylinux_2_x tags arrived in pip 20.3).
JETPACKS = {"jp4": {"python": "3.6", "glibc": 27, "distro_pip": 9},
            "jp5": {"python": "3.8", "glibc": 31, "distro_pip": 20},
            "jp6": {"python": "3.10", "glibc": 35, "distro_pip": 22}}


def build_args(text, jetpack):
    """The ARG defaults, overridden by the header's `docker build ... -t swiftrt:<jetpack>` line."""
    args = dict((k, v.strip('"')) for k, v in re.findall(r"^ARG (\w+)=(.*)$", text, re.M))
    header = re.sub(r"\\\n#\s*", " ", "\n".join(l for l in text.splitlines() if l.startswith("#")))
    for line in header.splitlines():
        if "docker build" in line and "swiftrt:{} ".format(jetpack) in line + " ":
            args.update(re.findall(r"--build-arg (\w+)=(\S*)", line))
    return args


def substituted(text, args):
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), text)


def pip_commands(text, args):
    """(stage, pip version at that point, argv after 'pip') for every pip call, in order."""
    stage, out = None, []
    for word, rest in instructions(substituted(text, args)):
        if word == "FROM":
            stage, pip_version = rest, None
        if word != "RUN":
            continue
        for command in re.split(r"&&|;|\bthen\b|\belse\b", rest):
            if " pip " not in command + " ":
                continue
            tokens = shlex.split(command)
            if "pip" in tokens:
                argv = tokens[tokens.index("pip") + 1:]
                out.append((stage, pip_version, argv))
                if argv[:1] == ["install"] and "--upgrade" in argv and any(t.startswith("pip") for t in argv[2:]):
                    pip_version = "upgraded"
    return out


def platform_tags(jetpack, pip_version):
    """The aarch64 wheel tags that pip accepts on this JetPack: none but linux_aarch64 with pip 9."""
    if pip_version is None and JETPACKS[jetpack]["distro_pip"] < 20:
        return ["linux_aarch64"]
    return ["manylinux2014_aarch64"] + ["manylinux_2_{}_aarch64".format(m)
                                        for m in range(17, JETPACKS[jetpack]["glibc"] + 1)]


def resolve(specs, jetpack, pip_version, target):
    """pip's resolver for the JetPack's platform and Python: (ok, {name: version}, error)."""
    import json
    import subprocess
    import sys
    report = os.path.join(str(target), "report.json")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", "--implementation", "cp",
           "--python-version", JETPACKS[jetpack]["python"], "--target", os.path.join(str(target), "t"),
           "--report", report]
    for tag in platform_tags(jetpack, pip_version):
        cmd += ["--platform", tag]
    proc = subprocess.run(cmd + list(specs), capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        error = [l for l in proc.stderr.splitlines() if l.startswith("ERROR")] or proc.stderr.splitlines()[-1:]
        if any("connection" in l.lower() or "network" in l.lower() for l in proc.stderr.splitlines()):
            pytest.skip("PyPI is not reachable: {}".format(error))
        return False, {}, " ".join(error)
    with open(report) as handle:
        installed = json.load(handle)["install"]
    return True, dict((i["metadata"]["name"].lower(), i["metadata"]["version"]) for i in installed), ""


_RESOLVED = {}


def resolve_all(requests, target):
    """resolve() for many (specs, jetpack, pip_version) at once: network-bound, so in parallel,
    and each distinct request once per session."""
    from concurrent.futures import ThreadPoolExecutor
    todo = list(dict.fromkeys(r for r in requests if r not in _RESOLVED))
    with ThreadPoolExecutor(max_workers=6) as pool:
        folders = [tempfile.mkdtemp(dir=str(target)) for _ in todo]
        for request, result in zip(todo, pool.map(lambda rf: resolve(*rf[0], target=rf[1]), zip(todo, folders))):
            _RESOLVED[request] = result
    return dict((r, _RESOLVED[r]) for r in requests)


def check_pip_lines(text, jetpack, target):
    """Every problem pip would have with the Dockerfile's pip lines on this JetPack."""
    problems, lines = [], []
    for stage, pip_version, argv in pip_commands(text, build_args(text, jetpack)):
        specs = tuple(t for t in argv[1:] if not t.startswith("-") and not t.startswith("/"))
        lines.append((stage, pip_version, argv, specs))
    results = resolve_all([(specs, jetpack, pip_version) for _, pip_version, argv, specs in lines
                           if argv[:1] == ["install"] and specs], target)
    for stage, pip_version, argv, specs in lines:
        old_pip = pip_version is None and JETPACKS[jetpack]["distro_pip"] < 10
        if old_pip and "--no-build-isolation" in argv:
            problems.append("{}: pip 9 has no --no-build-isolation: {}".format(stage, " ".join(argv)))
        if argv[:1] != ["install"]:
            continue  # `pip wheel ...`: a source build (flags checked above)
        if not specs:
            continue  # a local wheel (NVIDIA's ORT wheel)
        ok, versions, error = results[(specs, jetpack, pip_version)]
        if not ok:
            problems.append("{}: {} does not resolve for Python {} aarch64: {}".format(
                stage, " ".join(specs), JETPACKS[jetpack]["python"], error))
        elif versions.get("numpy", "1").split(".")[0] != "1":
            problems.append("{}: {} pulls numpy {}, which JetPack's cv2 (numpy 1.x) cannot "
                            "import with".format(stage, " ".join(specs), versions["numpy"]))
    return problems


@pytest.mark.parametrize("jetpack", sorted(JETPACKS))
def test_every_pip_line_resolves_for_the_jetpacks_python_and_platform(text, resolved, tmp_path, jetpack):
    assert pip_commands(text, build_args(text, jetpack)), "no pip line found"
    assert check_pip_lines(text, jetpack, tmp_path) == []


def old_lines(text):
    """The Dockerfile before the fix: no pip upgrade, onnxruntime without numpy<2."""
    old = text.replace('"numpy<2"', "")
    return re.sub(r'python3 -m pip install --no-cache-dir --upgrade "\$\{PIP_SPEC\}" \\\n\s*&& ', "", old)


@pytest.fixture(scope="module")
def resolved(text, tmp_path_factory):
    """Every pip line of the current and the old Dockerfile on every JetPack, resolved at once
    (in parallel: network-bound) into resolve_all's cache."""
    requests = []
    for source in (text, old_lines(text)):
        for jetpack in JETPACKS:
            for _, pip_version, argv in pip_commands(source, build_args(source, jetpack)):
                specs = tuple(t for t in argv[1:] if not t.startswith("-") and not t.startswith("/"))
                if argv[:1] == ["install"] and specs:
                    requests.append((specs, jetpack, pip_version))
    return resolve_all(requests, tmp_path_factory.mktemp("pip"))


def test_the_resolution_check_fails_on_the_old_lines(text, resolved, tmp_path):
    """Before the fix: no pip upgrade (JetPack 4's pip 9) and onnxruntime without numpy<2 (JetPack 6)."""
    old = old_lines(text)
    assert "PIP_SPEC}" not in old.split("ARG PIP_SPEC")[-1]
    jp6 = check_pip_lines(old, "jp6", tmp_path)
    assert any("onnxruntime==1.20.1 pulls numpy 2." in p for p in jp6), jp6
    jp4 = check_pip_lines(old, "jp4", tmp_path)
    assert any("cmake>=3.17 ninja does not resolve for Python 3.6" in p for p in jp4), jp4


def test_base_images_are_known_l4t_images(text):
    images = re.findall(r"nvcr\.io/nvidia/([\w.-]+:[\w.-]+)", text)
    assert images, "no NGC image named"
    for image in images:
        assert any(re.fullmatch(p, image) for p in KNOWN_IMAGES), image
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert args["BASE"] == "nvcr.io/nvidia/l4t-tensorrt:r8.5.2-runtime"
    froms = [rest for word, rest in instructions(text) if word == "FROM"]
    assert froms == ["${BUILDER} AS native", "${BASE}"]
    for release in ("r32.7.1", "r35", "r36"):  # JetPack 4.6, 5.1 and 6.x are documented
        assert release in text


def test_no_torch_and_no_pip_opencv(text):
    for word, rest in instructions(text):
        assert "torch" not in rest.lower(), rest
        assert not re.search(r"(?<![\w-])opencv-(contrib-)?python", rest), rest
    assert "libopencv-python" in text  # JetPack's OpenCV, the one with GStreamer


def test_pip_installs_only_runtime_requirements(text):
    allowed = runtime_requirements()
    assert allowed == {"numpy", "onnxruntime", "cmake", "ninja"}
    allowed.add("pip")  # pip itself, upgraded first (PIP_SPEC)
    installed = []
    for word, rest in instructions(substituted(text, build_args(text, "jp5"))):
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


def core_ort_minimum():
    """The oldest ONNX Runtime the core's backend runs on: its kOrtApiMin (C API N = ONNX Runtime 1.N)."""
    with open(os.path.join(REPO, "runtime", "native", "src", "backend_onnxruntime.cpp")) as handle:
        return int(re.search(r"kOrtApiMin = (\d+);", handle.read()).group(1))


@pytest.mark.parametrize("jetpack", sorted(JETPACKS))
def test_the_core_has_onnx_runtime_for_rt_plans_check(text, jetpack):
    """rt-plan's post-build check runs the ONNX model on the core's ONNX Runtime backend: the native
    stage links ONNX Runtime's release build of the JetPack's ORT_VERSION (its wheels before 1.20 ship
    no libonnxruntime), a version the core runs on, compiled against the vendored header."""
    args = build_args(text, jetpack)
    major, minor = (int(p) for p in args["ORT_VERSION"].split(".")[:2])
    assert major == 1 and minor >= core_ort_minimum(), (jetpack, args["ORT_VERSION"])
    native = text[text.index("FROM ${BUILDER} AS native"):text.index("FROM ${BASE}")]
    steps = instructions(substituted(native, args))
    assert ("ARG", "ORT_VERSION") in steps  # declared in the stage, else ${ORT_VERSION} is empty there
    fetch = [rest.split() for word, rest in steps if word == "ADD"]
    assert fetch == [["https://github.com/microsoft/onnxruntime/releases/download/v{0}/"
                      "onnxruntime-linux-aarch64-{0}.tgz".format(args["ORT_VERSION"]), "/tmp/ort.tgz"]]
    build = [rest for word, rest in steps if word == "RUN" and "cmake -S" in rest]
    assert "tar xzf /tmp/ort.tgz -C /opt/onnxruntime" in native
    assert "-DSWIFTRT_WITH_ONNXRUNTIME=ON" in build[0] and "-DONNXRUNTIME_ROOT=/opt/onnxruntime" in build[0]
    include = re.search(r"-DONNXRUNTIME_INCLUDE_DIR=/src/native/(\S+)", build[0]).group(1)
    assert os.path.exists(os.path.join(REPO, "runtime", "native", include, "onnxruntime_c_api.h"))


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
