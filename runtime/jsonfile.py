"""Writing JSON files atomically: a crash or Ctrl-C never leaves half a manifest or report."""
import json
import os


def write_atomic(path, data, indent=2, default=None):
    """Write ``data`` as JSON to a temporary file beside ``path``, then rename it into place."""
    path = str(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=indent, default=default)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def write_bytes_atomic(path, data):
    """Write ``data`` (bytes) to a temporary file beside ``path``, then rename it into place."""
    path = str(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory)
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
    return path
