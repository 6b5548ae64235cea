"""An artifact and its manifest are one unit: staged beside the target, published together.

Every writer of engines (rt-export's ONNX, FP16/INT8 artifacts, rt-plan's plans) works in a
staging folder next to the output, checks what it made there, and only then publishes:
the old manifest goes first, then the artifact is renamed into place, then the new manifest
(all renames on one file system, with SIGINT/SIGTERM/SIGHUP held back for those three steps).
A failed or interrupted (re-)export therefore leaves the previous good pair untouched, and a
kill in the middle of publishing leaves an artifact without a manifest, which every reader
refuses, never a new artifact beside an old manifest. Staging folders carry the writer's PID;
those of writers that no longer run are removed by the next writer in that folder.
"""
import contextlib
import os
import shutil
import signal
import tempfile

from runtime.errors import UserError
from runtime.jsonfile import process_alive

STAGING_PREFIX = ".rt-stage-"
_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None),
                             getattr(signal, "SIGHUP", None)) if s is not None)


def check_artifact_output(output, inputs=(), kinds=(".onnx", ".plan")):
    """Refuse, before any work, an output that cannot be written safely (one-line UserError):
    a folder, something that is not a regular file (device, FIFO, a symlink), one of the run's
    ``inputs``, or a file whose suffix is not one of ``kinds``."""
    from runtime.jsonfile import NAME_MAX, _system_path
    output = str(output)
    if not output.endswith(tuple(kinds)):
        raise UserError("--output {}: expected a {} file".format(output, " or ".join(kinds)))
    system = _system_path(output)
    if system is not None:
        raise UserError("--output {} is {}, a system path: refusing to write there".format(output, system))
    if len(os.fsencode(os.path.basename(output) + ".json")) > NAME_MAX:
        raise UserError("--output {}: the file name (and its manifest's, + .json) must fit in {} bytes"
                        .format(output, NAME_MAX))
    for path in (output, output + ".json"):  # the artifact and its manifest (sidecar_path)
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isfile(path)):
            raise UserError("--output {}: {} exists and is not a regular file (a folder, FIFO, device "
                            "or symlink): refusing to replace it".format(output, path))
    for source in inputs:
        if source and os.path.exists(str(source)) and os.path.exists(output) and \
                os.path.samefile(str(source), output):
            raise UserError("--output {} is an input of this run ({}): refusing to overwrite it".format(
                output, source))
    folder = os.path.dirname(os.path.abspath(output))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError("--output {}: {} is not a folder".format(output, folder))


def clean_stale(folder):
    """Remove staging folders in ``folder`` left by writers that no longer run; returns them."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(STAGING_PREFIX):
            continue
        pid = name[len(STAGING_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
            removed.append(name)
    return removed


@contextlib.contextmanager
def staging(output, tag="export"):
    """A staging folder beside ``output`` (same file system, so publishing is a rename),
    removed afterwards whatever happens; stale ones of killed writers are cleaned first."""
    folder = os.path.dirname(os.path.abspath(str(output)))
    os.makedirs(folder, exist_ok=True)
    clean_stale(folder)
    work = tempfile.mkdtemp(prefix="{}{}-{}-".format(STAGING_PREFIX, os.getpid(), tag), dir=folder)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def signals_held():
    """SIGINT/SIGTERM/SIGHUP wait until the block is done (delivered right after it)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def publish(staged, manifest, output):
    """Move the checked artifact ``staged`` to ``output`` with its runtime.manifest.Manifest,
    whose ``artifact`` block gets the file name and sha256. Returns the published Manifest
    (written to ``runtime.manifest.sidecar_path(output)``)."""
    from runtime import manifest as manifest_mod
    output = str(output)
    check_artifact_output(output, kinds=(os.path.splitext(output)[1],))
    artifact = manifest.artifact
    artifact.update(file=os.path.basename(output), sha256=manifest_mod.sha256_file(staged))
    manifest = manifest.derive(artifact=artifact)
    sidecar = manifest_mod.sidecar_path(output)
    # A fixed name in the private staging folder: <a 250-byte name>.json.pending would not fit.
    pending = os.path.join(os.path.dirname(os.path.abspath(str(staged))), ".manifest.pending")
    manifest.write_file(pending)
    with signals_held():
        if os.path.lexists(sidecar):
            os.remove(sidecar)
        os.replace(str(staged), output)
        os.replace(pending, sidecar)
    return manifest
