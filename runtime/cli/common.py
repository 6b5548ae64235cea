"""What every CLI shares: the --debug flag and the one-line error policy."""
import logging
import sys

from runtime.errors import UserError


def add_common_args(parser):
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def add_verify_arg(parser):
    """--no-verify: skip the sha256 check of engines (cached, so rarely worth skipping)."""
    parser.add_argument("--no-verify", action="store_true",
                        help="do not check engine files against the sha256 in their manifests "
                             "(checked once per file version and cached)")


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
    return int(code or 0)
