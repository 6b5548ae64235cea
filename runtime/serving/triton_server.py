"""A local Triton Inference Server from the nvidia-pytriton wheel (tests and benchmarks).

The wheel (PyPI: nvidia-pytriton, x86-64 Linux) ships ``tritonserver``, its libraries
(``nvidia_pytriton.libs``) and the Python backend with one ``triton_python_backend_stub`` per
Python version; it runs on a machine without a GPU. ``LocalTritonServer`` lays out a backend
folder with the stub of this interpreter's version, starts the server on 127.0.0.1 (free
ports), waits until it is ready and stops it. The stub embeds the libpython of the Python
environment it is given (``python_env``, a virtualenv folder) and finds that environment's
packages through PATH, as pytriton itself does. That environment needs numpy < 2 (the wheel's
stub returns empty output tensors from numpy 2 arrays), ONNX Runtime and OpenCV; swiftrt comes
from the model's ``python_path`` or from an install there. ``make venv`` builds one in
``.venv-triton``. A GPU server or a Jetson runs NVIDIA's own Triton (docs/serving.md).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from runtime.errors import UserError

START_TIMEOUT = 180.0  # s: loading several instances of an engine on 2 busy cores takes a while


def env_python(python_env):
    """{version, libdir, bin} of the Python in virtualenv folder ``python_env``."""
    python = os.path.join(str(python_env), "bin", "python")
    if not os.path.exists(python):
        raise UserError("tritonserver: {} is not a Python environment (no bin/python)".format(python_env))
    out = subprocess.check_output([python, "-c", "import json, sys, sysconfig; print(json.dumps("
                                   "['{}.{}'.format(*sys.version_info[:2]), "
                                   "sysconfig.get_config_var('LIBDIR')]))"])
    version, libdir = json.loads(out.decode())
    return {"version": version, "libdir": libdir, "bin": os.path.dirname(python)}


def wheel_paths(version=None):
    """{binary, libs, backend, stub} of the installed nvidia-pytriton wheel (UserError without
    it); ``stub``: the Python backend stub for Python ``version`` ("3.11"; default: this one)."""
    try:
        import importlib.util
        spec = importlib.util.find_spec("pytriton")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise UserError("tritonserver: the nvidia-pytriton wheel is not installed "
                        "(pip install 'swiftrt[triton]'; x86-64 Linux only)")
    package = list(spec.submodule_search_locations)[0]
    dist = os.path.join(package, "tritonserver")
    version = version or "{}.{}".format(*sys.version_info[:2])
    paths = {"binary": os.path.join(dist, "bin", "tritonserver"),
             "libs": os.path.join(os.path.dirname(package), "nvidia_pytriton.libs"),
             "backend": os.path.join(dist, "backends", "python"),
             "stub": os.path.join(dist, "python_backend_stubs", version,
                                  "triton_python_backend_stub")}
    for key, path in sorted(paths.items()):
        if not os.path.exists(path):
            raise UserError("tritonserver: the nvidia-pytriton wheel has no {} ({}; Python {} "
                            "stubs are not shipped?)".format(key, path, version))
    return paths


def free_port():
    """A TCP port nobody listens on now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(paths, python):
    """The environment the server and its Python stubs need (``python``: env_python's dict)."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (python["libdir"], paths["libs"],
                                                         env.get("LD_LIBRARY_PATH")) if p)
    # The stub finds the environment's site-packages from the python first on PATH.
    env["PATH"] = os.pathsep.join((python["bin"], env.get("PATH", "")))
    env.pop("PYTHONHOME", None)
    # The ROS 2 wheels' .pth (the [ros] extra) re-executes the interpreter to set its library
    # path; an interpreter embedded in the stub cannot be re-executed (and needs no ROS).
    env["_ROS_WHEELS_BOOTSTRAP_COMPLETE"] = "1"
    return env


class LocalTritonServer(object):
    """``tritonserver`` on 127.0.0.1 serving ``repo``; ``workdir`` holds its backends and log.

    ``python_env``: the virtualenv the Python models run in (see the module's docstring).
    Use as a context manager, or start()/stop(). ``http_url`` / ``grpc_url`` once started."""

    def __init__(self, repo, workdir, python_env, http_port=None, grpc_port=None, extra_args=()):
        self.repo, self.workdir = str(repo), str(workdir)
        self.python = env_python(python_env)
        self.paths = wheel_paths(self.python["version"])
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.http_url = "127.0.0.1:{}".format(self.http_port)
        self.grpc_url = "127.0.0.1:{}".format(self.grpc_port)
        self.log_path = os.path.join(self.workdir, "tritonserver.log")
        self.extra_args = list(extra_args)
        self.process = None

    def _backends(self):
        folder = os.path.join(self.workdir, "backends")
        python = os.path.join(folder, "python")
        if not os.path.isdir(python):
            shutil.copytree(self.paths["backend"], python)
            shutil.copy2(self.paths["stub"], os.path.join(python, "triton_python_backend_stub"))
        return folder

    def start(self, timeout=START_TIMEOUT):
        if not os.path.isdir(self.workdir):
            os.makedirs(self.workdir)
        cmd = [self.paths["binary"], "--model-repository", self.repo,
               "--backend-directory", self._backends(),
               "--http-address", "127.0.0.1", "--http-port", str(self.http_port),
               "--grpc-address", "127.0.0.1", "--grpc-port", str(self.grpc_port),
               "--allow-metrics", "false", "--exit-timeout-secs", "10"] + self.extra_args
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            env=server_env(self.paths, self.python), start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UserError("tritonserver exited ({}) while starting: {}".format(
                    self.process.returncode, self.log_tail()))
            if self.ready():
                return self
            time.sleep(0.5)
        self.stop()
        raise UserError("tritonserver was not ready after {:.0f} s: {}".format(timeout, self.log_tail()))

    def ready(self):
        """GET /v2/health/ready answers 200."""
        try:
            conn = socket.create_connection(("127.0.0.1", self.http_port), timeout=2)
        except OSError:
            return False
        try:
            conn.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Connection: close\r\n\r\n")
            return conn.recv(64).split(b" ")[1:2] == [b"200"]
        except (OSError, IndexError):
            return False
        finally:
            conn.close()

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines=8):
        try:
            with open(self.log_path, "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        errors = [l for l in text.splitlines() if l.startswith("E") or "error" in l.lower()]
        return " | ".join((errors or text.splitlines())[-lines:])

    def stop(self, timeout=30.0):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the server and its stubs
            self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
