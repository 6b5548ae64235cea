"""Writing result files safely: never over an input, never half a file, never over a device.

Every runtime writer (reports, manifests, rt-bench's JSON/Markdown, rt-eval's JSON, the
annotated video and saved frames) goes through here:

- ``check_output`` refuses, before any work, a path that would destroy something: an
  input of the same run (same file), a model artifact or manifest, a folder, a device,
  FIFO or socket (or a symlink to one), or a folder where no file can be created;
- ``write_bytes_atomic`` / ``write_text_atomic`` / ``write_atomic`` (JSON) write a
  temporary file beside the target, fsync it and rename it into place, and only over a
  regular file: a crash, Ctrl-C or a full disk never leaves half a file, and an I/O
  error (ENOSPC, EFBIG, EIO) is one line (OutputError) saying the file was not written.
"""
import errno
import json
import math
import os
import re
import stat

from runtime.errors import UserError

# Extensions of model artifacts: never an output (their manifests are <artifact>.json).
ARTIFACT_EXTENSIONS = (".onnx", ".plan", ".engine", ".trt")
# Files the project reads besides artifacts: checkpoints and videos. Only the writer of that
# kind (rt-train, rt-segment --output, rt-synth video) may name one, through ``allow``.
CHECKPOINT_EXTENSIONS = (".pt", ".pth", ".ckpt")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
PRECIOUS_EXTENSIONS = ARTIFACT_EXTENSIONS + CHECKPOINT_EXTENSIONS + VIDEO_EXTENSIONS
# Folders of Cityscapes-format data sets: nothing is written inside them by an output flag.
DATASET_FOLDERS = ("leftImg8bit", "gtFine")
SYSTEM_FOLDERS = ("/proc/", "/sys/", "/dev/")
NAME_MAX = 255  # bytes of one path component on Linux file systems
_MANIFEST_PEEK_BYTES = 4 << 20
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.partial(\.\w+)?$")  # see temp_path


class OutputError(UserError):
    """An output that cannot be (or was not completely) written: one line for the user."""


def unique_keys(pairs):
    """``object_pairs_hook`` for json.load(s): a JSON object with a key twice is refused
    (ValueError), as the native core's parser refuses it; otherwise Python keeps the last
    and C the first, and the two runtimes would read two different manifests."""
    data = {}
    for key, value in pairs:
        if key in data:
            raise ValueError("duplicate key {!r}".format(key))
        data[key] = value
    return data


def _identity(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def looks_like_manifest(path):
    """Whether ``path`` is (or names) an engine's or a bundle's manifest, never to be replaced."""
    name = os.path.basename(path).lower()
    if name.endswith(tuple(ext + ".json" for ext in ARTIFACT_EXTENSIONS)):
        return True
    if not name.endswith(".json") or not os.path.isfile(path):
        return False
    if os.path.getsize(path) > _MANIFEST_PEEK_BYTES:
        return False
    try:
        with open(path) as handle:
            data = json.load(handle)  # lenient: a broken manifest is still precious
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and "schema_version" in data and data.get("task") in (
        "segmentation", "outlier", "forecast", "forecast_stage")


class Inputs(object):
    """The files and folders a run reads, so that no output of the run can replace them."""

    def __init__(self):
        self._files = {}    # (dev, ino) -> description
        self._folders = {}  # (dev, ino) -> description

    def add(self, path, what):
        """Record ``path`` (a file or a folder; missing paths are ignored) as the input ``what``."""
        if path is None:
            return self
        path = str(path)
        ident = _identity(path)
        if ident is None:
            return self
        if os.path.isdir(path):
            self._folders.setdefault(ident, "{} {}".format(what, path))
        else:
            self._files.setdefault(ident, "{} {}".format(what, path))
            folder = _identity(os.path.dirname(os.path.abspath(path)) or ".")
            self._folders.setdefault(("holds",) + tuple(folder or ()), "{} {}".format(what, path))
        return self

    def file_input(self, path):
        """The description of the input that is the file ``path``, or None."""
        ident = _identity(path)
        return self._files.get(ident) if ident is not None else None

    def containing_folder(self, path):
        """The description of an input folder that ``path`` lies in (at any depth), or None."""
        current = os.path.realpath(path)
        while True:
            ident = _identity(current)
            if ident is not None and ident in self._folders:
                return self._folders[ident]
            parent = os.path.dirname(current)
            if parent == current:
                return None
            current = parent

    def folder_input(self, folder):
        """The description of an input that is ``folder`` or lies directly in it, or None."""
        ident = _identity(folder)
        if ident is None:
            return None
        return self._folders.get(ident) or self._folders.get(("holds",) + ident)


def _link_into_system(path):
    """The first hop of ``path``'s symlink chain that lies in /dev or /proc, else None
    (e.g. a link to /dev/stdout, which may resolve to whatever file stdout is today)."""
    current = os.path.abspath(path)
    for _ in range(40):
        if not os.path.islink(current):
            return None
        target = os.readlink(current)
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
        if current.startswith(("/dev/", "/proc/")):
            return current
    return None


def _system_path(path):
    """The path in /proc, /sys or /dev that ``path`` is (as written or resolved), else None:
    e.g. /proc/self/fd/2 is the terminal or the log of whoever runs us."""
    for candidate in (os.path.abspath(path), os.path.realpath(path)):
        if candidate.startswith(SYSTEM_FOLDERS):
            return candidate
    return None


def _check_name(path, where):
    """A file name the file system can hold (255 bytes), with room for its temporary name."""
    name = os.path.basename(os.path.abspath(path))
    if len(os.fsencode(name)) > NAME_MAX:
        raise OutputError("{}: the file name is {} bytes long; at most {}".format(
            where, len(os.fsencode(name)), NAME_MAX))


def _dataset_folder(path):
    """The data-set folder (leftImg8bit/, gtFine/) that ``path`` lies in, else None."""
    parts = os.path.realpath(path).split(os.sep)
    for index, part in enumerate(parts[:-1]):
        if part in DATASET_FOLDERS:
            return os.sep.join(parts[:index + 1])
    return None


def check_output(path, flag, inputs=None, others=(), allow=(), kinds=None):
    """Refuse (OutputError, one line) an output file path that would destroy something.

    ``inputs``: an Inputs of the run; ``others``: (flag, path) of the run's other outputs
    (the same file twice is refused too); ``allow``: extensions of PRECIOUS_EXTENSIONS this
    writer produces (rt-train: checkpoints); ``kinds``: the extensions the output must have.
    Returns the path to write: a symlink to a regular file is followed, so that the link
    stays a link.
    """
    if not path:
        raise OutputError("{}: empty path".format(flag))
    path = str(path)
    where = "{} {}".format(flag, path)
    extension = os.path.splitext(path)[1].lower()
    if kinds is not None and extension not in kinds:
        raise OutputError("{}: expected a {} file".format(where, " or ".join(kinds)))
    if path.endswith(("/", os.sep)) or os.path.basename(path) in (".", ".."):
        raise OutputError("{} names a folder: give a file name".format(where))
    _check_name(path, where)
    if os.path.lexists(path):
        try:
            st = os.stat(path)
        except OSError as exc:
            raise OutputError("{}: {} (a broken symlink?): refusing to replace it".format(
                where, exc.strerror))
        if stat.S_ISDIR(st.st_mode):
            raise OutputError("{} is a folder: give a file name".format(where))
        if not stat.S_ISREG(st.st_mode):
            raise OutputError("{} is not a regular file (a device, FIFO or socket): refusing "
                              "to replace it".format(where))
        system = _link_into_system(path)
        if system is not None:
            raise OutputError("{} is a link to {}: refusing to replace it".format(where, system))
    system = _system_path(path)
    if system is not None:
        raise OutputError("{} is {}, a system path: refusing to write there".format(where, system))
    if os.path.splitext(path)[1].lower() in ARTIFACT_EXTENSIONS or looks_like_manifest(path):
        raise OutputError("{} is a model artifact or manifest: refusing to overwrite it; "
                          "choose another file name".format(where))
    if inputs is not None:
        what = inputs.file_input(path)
        if what is not None:
            raise OutputError("{} is also an input of this run ({}): refusing to overwrite it"
                              .format(where, what))
        what = inputs.containing_folder(path) if os.path.exists(path) else None
        if what is not None:
            raise OutputError("{} is a file inside an input of this run ({}): refusing to "
                              "overwrite it".format(where, what))
    if extension in PRECIOUS_EXTENSIONS and extension not in allow:
        raise OutputError("{} is named like a checkpoint or video ({}), which this command does "
                          "not write: refusing it; choose another file name".format(where, extension))
    dataset = _dataset_folder(path)
    if dataset is not None:
        raise OutputError("{} lies in the data set folder {}: refusing to write there".format(
            where, dataset))
    ident = _identity(path)
    for other_flag, other in others:
        if other and (os.path.abspath(str(other)) == os.path.abspath(path)
                      or (ident is not None and _identity(str(other)) == ident)):
            raise OutputError("{} is also the {} of this run: give two different files"
                              .format(where, other_flag))
    target = os.path.realpath(path) if os.path.islink(path) else path
    _probe_folder(os.path.dirname(os.path.abspath(target)), where)
    return target


def check_output_folder(path, flag, inputs=None):
    """Refuse a folder output (e.g. saved frames) that is a file or holds an input; create it."""
    if not path:
        raise OutputError("{}: empty path".format(flag))
    path = str(path)
    where = "{} {}".format(flag, path)
    system = _system_path(path)
    if system is not None:
        raise OutputError("{} is {}, a system path: refusing to write there".format(where, system))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError("{} is not a folder: give a folder to write into".format(where))
    if inputs is not None and os.path.isdir(path):
        what = inputs.folder_input(path)
        if what is not None:
            raise OutputError("{} holds an input of this run ({}): its files could be "
                              "overwritten; choose another folder".format(where, what))
    _probe_folder(path, where)
    return path


def _probe_folder(folder, where):
    """Create ``folder`` if needed and make sure a file can be created in it (before any work)."""
    try:
        if not os.path.isdir(folder):
            os.makedirs(folder)
        probe = os.path.join(folder, ".rt-write-probe.{}".format(os.getpid()))
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError("{}: cannot write in {}: {}".format(
            where, folder, exc.strerror or exc))
    clean_stale_temps(folder)


def process_alive(pid):
    """Whether process ``pid`` still runs (someone else's live process counts): temporary and
    staging files of writers that no longer run may be removed."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's live process
        return True
    return True


def clean_stale_temps(folder):
    """Remove temporary files (temp_path) left in ``folder`` by runs that were killed (SIGKILL,
    power loss): their process no longer exists. Never fails."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = _TEMP_NAME.match(name)
        if match and int(match.group(1)) != os.getpid() and not process_alive(int(match.group(1))):
            remove_quietly(os.path.join(folder, name))


def temp_path(path, suffix=""):
    """A temporary name beside ``path`` (same folder: the rename is atomic); keeps ``suffix``.
    A long name is shortened so that the temporary name fits in NAME_MAX bytes too."""
    folder, name = os.path.split(os.path.abspath(str(path)))
    tail = ".{}.partial{}".format(os.getpid(), suffix)
    room = NAME_MAX - 1 - len(tail.encode("utf-8"))
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) > room:
        name = encoded[:room].decode("utf-8", "ignore")
    return os.path.join(folder, ".{}{}".format(name, tail))


def replace_file(tmp, path, sync=True):
    """Rename ``tmp`` over ``path``, but only over a regular file (or nothing)."""
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        remove_quietly(tmp)
        raise OutputError("{} is no longer a regular file: not replaced".format(path))
    os.replace(tmp, path)
    if sync:
        _fsync_folder(os.path.dirname(os.path.abspath(path)))


def chmod_default(path):
    """Give ``path`` the mode of any file the user creates (0666 less the umask): tempfile's
    files are 0600, and an engine a service user cannot read is no engine."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def io_error_message(path, exc):
    """One line for an I/O error while writing ``path`` (a full disk says so)."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason += " (the disk or quota is full)"
    return "cannot write {}: {}; it was not written (a previous file there is unchanged)".format(
        path, reason)


def write_bytes_atomic(path, data, sync=True):
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename it into place.

    ``sync=False`` skips the fsync (many small files, e.g. saved frames; still never half a file).
    """
    path = str(path)
    if os.path.islink(path):
        path = os.path.realpath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = temp_path(path)
    try:
        if not os.path.isdir(folder):
            os.makedirs(folder)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(data)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")  # e.g. TensorRT's IHostMemory: write it byte by byte
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        replace_file(tmp, path, sync=sync)
    except OSError as exc:
        remove_quietly(tmp)
        raise OutputError(io_error_message(path, exc))
    return path


def write_text_atomic(path, text):
    return write_bytes_atomic(path, text.encode("utf-8"))


def finite(value):
    """``value`` with NaN and infinities replaced by None (JSON has no NaN: null instead)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return dict((k, finite(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return finite(value.tolist())
    return value


def write_atomic(path, data, indent=2, default=None):
    """Write ``data`` as valid JSON (NaN/Inf as null) atomically to ``path``."""
    try:
        text = json.dumps(data, indent=indent, default=default, allow_nan=False)
    except ValueError:
        text = json.dumps(finite(data), indent=indent, default=default, allow_nan=False)
    return write_text_atomic(path, text + "\n")
