"""rt-ros2: the runtime as a ROS 2 node (docs/ros2.md).

    rt-ros2 --ros-args -p engine:=engines/swiftnet-rn18_fp16.plan -r image:=/camera/image_raw
    rt-ros2 --report out/ros2.json --ros-args -p engine:=engines/ood.onnx -p publish_overlay:=true

Node settings are ROS parameters (``--ros-args -p name:=value``); only what is not the
node's business stays a flag (``--report``, ``--debug``, ``-q``). A bad engine or
parameter ends with one line and exit code 2. SIGINT / SIGTERM (what ``ros2 launch``
sends) end the node cleanly: the pipeline stops, the summary is printed and the report
written; the exit code is then 0, since a node asked to stop has done nothing wrong.
A fault inside the node (an exception in its executor or pipeline) ends it with one line
(``rt-ros2: fault: ...``; ``--debug``: the traceback) and exit code 1, after the summary
and report, so that a supervisor (``ros2 launch`` with ``respawn``, systemd) restarts it.

On Fast DDS, the node's participant loads runtime/ros2_fastdds.xml (a shared-memory
segment that holds whole camera images) unless a profile variable is already set or
``--no-fastdds-profile`` is given (docs/ros2.md).
"""
import argparse
import logging
import os
import signal
import sys

from runtime import report as report_mod
from runtime.cli.common import add_common_args, run_cli
from runtime.errors import UserError, first_line
from runtime.ros2_node import PARAMETERS

PARAMETER_NAMES = tuple(PARAMETERS)

PROG = "rt-ros2"
FAULT_EXIT = 1  # the node failed on its own (a user error is 2, a requested stop 0)
log = logging.getLogger(PROG)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def build_parser():
    parser = _Parser(prog=PROG, description=(
        "Segmentation, outlier and forecast topics from a ROS 2 image topic. Node settings are "
        "ROS parameters: rt-ros2 --ros-args -p engine:=engines/X.onnx -r image:=/camera/image_raw "
        "(parameters: {}; see docs/ros2.md)".format(", ".join(PARAMETER_NAMES))))
    parser.add_argument("--report", metavar="JSON",
                        help="write the run report at exit (docs/report-schema.md)")
    parser.add_argument("--no-fastdds-profile", action="store_true",
                        help="keep Fast DDS's defaults (512 KB shared-memory segment) instead "
                             "of runtime/ros2_fastdds.xml; see docs/ros2.md")
    add_common_args(parser)
    return parser


def import_rclpy():
    """rclpy, or a one-line UserError saying how to get it."""
    try:
        import rclpy
    except ImportError as exc:
        if getattr(exc, "name", None) == "rclpy":
            raise UserError("rt-ros2 needs ROS 2's Python client library (rclpy): source your "
                            "ROS 2 setup.bash, or pip install 'swiftrt[ros]'")
        hint = ""
        if os.environ.get("_ROS_WHEELS_BOOTSTRAP_COMPLETE"):
            hint = (" (the ROS 2 wheels' libraries are not on LD_LIBRARY_PATH: start rt-ros2 "
                    "without _ROS_WHEELS_BOOTSTRAP_COMPLETE in its environment)")
        raise UserError("rclpy is installed but cannot be loaded: {}{}".format(first_line(exc), hint))
    return rclpy


def init_context(rclpy, args):
    """A fresh initialised rclpy Context; rclpy's own signal handlers are left out where possible."""
    from rclpy.context import Context
    context = Context()
    try:
        from rclpy.signals import SignalHandlerOptions
        rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)
    except ImportError:  # rclpy before Galactic: its handler is replaced by ours below
        rclpy.init(args=args, context=context)
    return context


def shutdown_context(rclpy, context):
    try:
        context.try_shutdown() if hasattr(context, "try_shutdown") else rclpy.shutdown(context=context)
    except Exception:
        pass


def install_signals(node):
    """SIGINT / SIGTERM stop the node (a second SIGINT exits at once)."""
    previous = {}

    def handler(signum, frame):
        if node.pipeline.reason in ("interrupted", "terminated") and signum == signal.SIGINT:
            raise KeyboardInterrupt()
        node.stop("interrupted" if signum == signal.SIGINT else "terminated")

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
    return previous


def main(argv):
    argv = list(argv)
    rclpy = import_rclpy()
    from rclpy.utilities import remove_ros_args
    args = build_parser().parse_args(remove_ros_args([PROG] + argv)[1:])
    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    from runtime.ros2_node import PerceptionNode, fastdds_profile_setting
    variable, value = ((None, "--no-fastdds-profile") if args.no_fastdds_profile
                       else fastdds_profile_setting(os.environ))
    if variable:  # read when the context's participant is created: before rclpy.init
        os.environ[variable] = value
        log.debug("Fast DDS profile %s (%s)", value, variable)
    else:
        log.debug("Fast DDS profile left as it is: %s", value)
    context = init_context(rclpy, [PROG] + argv)
    node = None
    previous = {}
    code = None
    rss_start = None
    fault = None
    try:
        node = PerceptionNode(context=context)
        previous = install_signals(node)
        node.start()
        rss_start = report_mod.rss_mb()
        try:
            node.run()
            code = 0
        except (UserError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a fault of the node (NodeFault, an engine error): one line
            if args.debug:
                raise
            fault, code = "{}: fault: {}".format(PROG, first_line(exc)), FAULT_EXIT
    finally:
        if node is not None:
            node.close()
            for sig, old in previous.items():
                signal.signal(sig, old)
            _finish_report(args, argv, node, rss_start, code)
        shutdown_context(rclpy, context)
    if fault is not None:  # the last line, after the summary
        sys.stderr.write(fault + "\n")
    return code


def _finish_report(args, argv, node, rss_start, code):
    """Summary and report on every exit path (stopped, error)."""
    from runtime.ros2_node import fastdds_profile_in_use
    pipeline = node.pipeline
    source_info = dict(node.source.describe(), fastdds_profile=fastdds_profile_in_use(os.environ))
    report = report_mod.build(
        node.summary(), engine_info=node.describe_engine(), source_info=source_info,
        outputs_info=[p.describe() for p in node.publishers], memory=report_mod.memory_info(rss_start),
        tool=PROG, command=[PROG] + list(argv), started_at=pipeline.started_at,
        finished_at=pipeline.finished_at, exit_code=code if code is not None else 2)
    report_mod.finish(report, args.report, args.quiet, started=pipeline.started_at is not None)


def entry():
    sys.exit(run_cli(main, prog=PROG))


if __name__ == "__main__":
    entry()
