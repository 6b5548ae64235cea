"""What every CLI shares: the --debug flag, the one-line error policy, bounds of flags."""
import argparse
import errno
import logging
import math
import sys

from runtime.errors import UserError


def add_common_args(parser):
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (UserError, exit 2), like every other user error."""

    def error(self, message):
        raise UserError(message)


from runtime.backends import THREADS_PER_CORE, check_threads, usable_cores  # noqa: F401 (one place)


def check_seconds(value, flag, zero=False):
    """Refuse a duration that is not a finite positive number (nan, inf, negative) or is
    longer than a year (1e308 overflows the timers that bound it)."""
    from runtime.sources import MAX_SECONDS
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero) or value > MAX_SECONDS:
        raise UserError("{} must be a finite {} number of seconds up to {} (a year), got {}".format(
            flag, "non-negative" if zero else "positive", MAX_SECONDS, value))


def engine_inputs(inputs, path, flag="--engine"):
    """Record an engine argument in a runtime.jsonfile.Inputs: the artifact and its manifest
    (a bundle: its folder and forecast.json), so that no output of the run replaces them."""
    from runtime.manifest import resolve
    artifact, manifest_path = resolve(str(path))
    inputs.add(artifact, flag)
    inputs.add(manifest_path, flag + " manifest")
    return inputs


def add_verify_arg(parser):
    """--no-verify: accepted so that existing scripts keep working; it changes nothing, because
    libswiftrt, the only engine, checks every artifact's sha256 when it opens it."""
    parser.add_argument("--no-verify", action="store_true",
                        help="no effect: libswiftrt always checks engine files against the sha256 in "
                             "their manifests (a changed file never runs)")


def run_cli(main, argv=None, prog=None):
    """Run ``main(argv)``; user errors become one line on stderr and exit code 2.

    ``main`` returns an exit code (or None for 0). Tracebacks are shown only with
    ``--debug``; Ctrl-C ends with 130 and no traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(message)s")
    prog = prog or "rt"
    try:
        code = main(argv)
    except UserError as exc:
        if debug:
            raise
        sys.stderr.write("{}: error: {}\n".format(prog, exc))
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        sys.stderr.write("{}: interrupted\n".format(prog))
        return 130
    except OSError as exc:  # the file system said no (read-only, full, name too long, ...)
        if debug:
            raise
        sys.stderr.write("{}: error: {}\n".format(prog, os_error_line(exc)))
        return 2
    return int(code or 0)


def os_error_line(exc):
    """One line for an OSError a user can cause: what failed, on which file, and a full disk
    named as such."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason += " (the disk or quota is full)"
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return "{}{}".format(reason, ": " + " -> ".join(names) if names else "").splitlines()[0]
