"""rt-segment: stream a camera, a video or images through a segmentation engine.

    rt-segment --engine engines/swiftnet-rn18_fp16.plan --csi 0 --display
    rt-segment --engine engines/swiftnet-rn18_fp32.onnx --video drive.mp4 \
        --output out.mp4 --report report.json
    rt-segment --engine engines/swiftnet-rn18-ood_fp32.onnx --video drive.mp4 \
        --output out.mp4 --outlier-view heatmap --outlier-threshold 0.5 --report report.json
    rt-segment --engine engines/f2f-mid_fp32/forecast.json --video drive.mp4 \
        --output out.mp4 --forecast-view side-by-side --report report.json

Built on the library API (runtime.pipeline.Pipeline) like any embedding program.
Ctrl-C, SIGTERM and SIGHUP end the run cleanly: the video is finalised, the summary
printed and the report written; the exit code is then 130 (SIGINT), 143 (SIGTERM) or
129 (SIGHUP). Output paths are checked before any work (runtime.jsonfile.check_output):
never an input of the run, an engine or manifest, a folder or a device. An output that
could not be written completely (full disk) is one line and exit code 2, and the report
says which.
"""
import argparse
import collections
import logging
import os
import signal
import sys
import time

import numpy as np

from runtime import report as report_mod
from runtime import open_engine, sources, tasks
from runtime.backends import BACKEND_HELP, check_backend
from runtime.cli.common import (add_common_args, add_verify_arg, check_seconds, check_threads,
                                engine_inputs, run_cli)
from runtime.cli.fleet import add_fleet_args, check_fleet_args, run_fleet_cli
from runtime.errors import UserError
from runtime.jsonfile import VIDEO_EXTENSIONS, Inputs, OutputError, check_output
from runtime.manifest import RESIZE_MODES
from runtime.outputs import DisplayOutput, FrameSaver, VideoOutput
from runtime.pipeline import Pipeline
from runtime.sizes import split_pair
from runtime.visualize import MODES


_SIGNAL_EXIT = {"interrupted": 130, "terminated": 143, "hangup": 129}
_SIGNAL_REASON = {"SIGINT": "interrupted", "SIGTERM": "terminated", "SIGHUP": "hangup"}


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (UserError), like every other user error."""

    def error(self, message):
        raise UserError(message)


class _SourceAction(argparse.Action):
    """A source flag: kept as ``args.<kind>`` (the last one) and appended, with its kind, to
    ``args.source_list`` in command-line order (camera i is the i-th source given)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        listed = list(getattr(namespace, "source_list", None) or [])
        listed.append((self.dest, values))
        namespace.source_list = listed


def read_sources_file(path):
    """[(kind or None, spec)] from a --sources file; one-line UserError when unreadable."""
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError("--sources {}: cannot read it ({})".format(
            path, getattr(exc, "strerror", None) or exc))
    found = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        head, _, rest = line.partition(" ")
        if head in sources.KINDS and rest.strip():
            found.append((head, rest.strip()))
        else:
            found.append((None, line))
    if not found:
        raise UserError("--sources {}: no source in it".format(path))
    return found


def build_parser():
    parser = _Parser(prog="rt-segment",
                     description="Real-time semantic segmentation of a camera, video or images.")
    parser.add_argument("--engine", "-e", required=True,
                        help="model artifact (.onnx or .plan) with its manifest beside it, or a "
                             "forecast bundle (its forecast.json or folder)")
    src = parser.add_argument_group(
        "sources", "one or several (repeat the flags, mix them: each is a camera, in the order "
        "given); several run through one engine, a batch per cycle (docs/streaming.md)")
    src.add_argument("--camera", metavar="N", action=_SourceAction,
                     help="USB/V4L2 camera index or /dev/videoN")
    src.add_argument("--csi", metavar="N", action=_SourceAction,
                     help="Jetson CSI camera sensor id (nvarguscamerasrc)")
    src.add_argument("--gst", metavar="PIPELINE", action=_SourceAction,
                     help="GStreamer pipeline ending in appsink")
    src.add_argument("--video", metavar="FILE", action=_SourceAction, help="video file")
    src.add_argument("--images", metavar="DIR|GLOB", action=_SourceAction,
                     help="folder or glob of images")
    src.add_argument("--rtsp", metavar="URL", action=_SourceAction, help="RTSP (or HTTP) stream")
    src.add_argument("--sources", metavar="FILE",
                     help="a file of sources, one a line: 'KIND SPEC' (KIND one of {}) or a spec "
                          "alone (its kind guessed); '#' starts a comment".format(
                              ", ".join(sources.KINDS)))
    add_fleet_args(parser, src)
    parser.add_argument("--capture-size", metavar="WxH",
                        help="camera/CSI capture size (e.g. 1920x1080)")
    parser.add_argument("--capture-fps", type=float, metavar="FPS", help="camera/CSI frame rate")
    parser.add_argument("--resize", metavar="MODE", help="fit frames to the input: {} (default: the manifest's)"
                        .format("|".join(RESIZE_MODES)))
    parser.add_argument("--backend", metavar="NAME", help="force a backend: " + BACKEND_HELP)
    parser.add_argument("--providers", metavar="LIST", help="ONNX Runtime providers, comma-separated "
                                            "(e.g. tensorrt,cuda,cpu)")
    parser.add_argument("--threads", type=int, metavar="N", help="inference threads (ONNX Runtime intra-op, OpenVINO)")
    parser.add_argument("--realtime", action="store_true",
                        help="play a file at its own frame rate, dropping frames like a camera")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N processed frames")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--reconnect", type=int, default=5, metavar="N",
                        help="reconnection attempts of a live source, with exponential backoff "
                             "(default 5)")
    parser.add_argument("--stall-timeout", type=float, default=sources.STALL_TIMEOUT, metavar="S",
                        help="a live source without a frame for S seconds is lost and reconnects "
                             "(default {:g})".format(sources.STALL_TIMEOUT))
    add_verify_arg(parser)
    out = parser.add_argument_group("outputs")
    out.add_argument("--display", action="store_true", help="show a window (if there is a display)")
    out.add_argument("--output", "-o", metavar="VIDEO", help="write the annotated video (.mp4, .avi)")
    out.add_argument("--save-frames", metavar="DIR",
                     help="save each picture (.jpg) and class map (_labels.png)")
    out.add_argument("--visualize", default="overlay", metavar="MODE", help="|".join(MODES) + " (default overlay)")
    out.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    out.add_argument("--no-legend", action="store_true", help="no class legend")
    out.add_argument("--no-hud", action="store_true", help="no FPS/latency text on the frames")
    tasks.add_arguments(out)   # each model family's view flags (runtime/tasks/)
    out.add_argument("--report", metavar="JSON", help="write the run report (docs/report-schema.md)")
    out.add_argument("--status-interval", type=float, default=5.0, metavar="S",
                     help="seconds between status lines when stderr is not a terminal (default 5)")
    add_common_args(parser)
    return parser


MAX_SIDE = 16384  # pixels: larger than any camera; a typo must not allocate gigabytes


def parse_wxh(text, flag):
    pair = split_pair(text)
    if not pair or not pair[0] or not pair[1]:
        raise UserError("malformed {} {!r}: expected WIDTHxHEIGHT, e.g. 1920x1080".format(flag, text))
    if max(pair) > MAX_SIDE:
        raise UserError("{} {!r}: at most {} pixels a side".format(flag, text, MAX_SIDE))
    return pair[1], pair[0]  # (h, w)


def source_specs(args):
    """[(kind or None, spec)] of the run, in order: the source flags, then --sources FILE's."""
    specs = list(getattr(args, "source_list", None) or [])
    if args.sources:
        specs += read_sources_file(args.sources)
    if not specs:
        raise UserError("one of the arguments --camera --csi --gst --video --images --rtsp "
                        "--sources --drives is required")
    return specs


def make_source(args, kind, spec):
    """The Source of one spec (files are checked now; devices open in Pipeline.start)."""
    size = parse_wxh(args.capture_size, "--capture-size") if args.capture_size else None
    return sources.open_source(spec, kind=kind, reconnect=args.reconnect, size=size,
                               fps=args.capture_fps, stall_timeout=args.stall_timeout)


def _check_args(args):
    if args.resize is not None and args.resize not in RESIZE_MODES:
        raise UserError("unknown --resize {!r}; use one of {}".format(args.resize, ", ".join(RESIZE_MODES)))
    check_backend(args.backend)
    if args.visualize not in MODES:
        raise UserError("unknown --visualize {!r}; use one of {}".format(args.visualize, ", ".join(MODES)))
    if not 0 <= args.reconnect <= 1000:
        raise UserError("--reconnect must be between 0 and 1000")
    check_threads(args.threads)
    for flag, value in (("--duration", args.duration), ("--status-interval", args.status_interval),
                        ("--stall-timeout", args.stall_timeout)):
        check_seconds(value, flag)
    if args.capture_fps is not None and not 0 < args.capture_fps <= 1000:
        raise UserError("--capture-fps must be a frame rate between 0 and 1000")
    if not 0.0 <= args.alpha <= 1.0:
        raise UserError("--alpha must be between 0 and 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    args.task_options = dict(tasks.options(args), mode=args.visualize)


CAMERA_FIELD = "{index}"   # in --output with several cameras: the camera's index


def camera_output(path, index):
    """--output for camera ``index`` of a multi-camera run."""
    return path.replace(CAMERA_FIELD, str(index))


def check_outputs(args, opened):
    """Refuse, before any work, output paths that would replace an input, an engine or a device.

    ``opened``: the run's Sources. With several, --output must name a file per camera
    (``{index}`` in it) and --save-frames gets a folder ``camN`` per camera."""
    inputs = engine_inputs(Inputs(), args.engine)
    for source in opened:
        if source.kind == "video":
            inputs.add(source.uri, "--video")
        for path in getattr(source, "paths", ()):
            inputs.add(path, "--images")
    if args.images is not None:
        inputs.add(args.images, "--images")
    several = len(opened) > 1
    if args.output and several:
        if CAMERA_FIELD not in args.output:
            raise UserError("--output {}: with {} cameras name a file per camera with {} in it, "
                            "e.g. out/cam{}.mp4".format(args.output, len(opened), CAMERA_FIELD,
                                                        CAMERA_FIELD))
        for index in range(len(opened)):
            check_output(camera_output(args.output, index), "--output", inputs,
                         others=[("--report", args.report)], allow=VIDEO_EXTENSIONS)
    elif args.output:
        args.output = check_output(args.output, "--output", inputs, others=[("--report", args.report)],
                                   allow=VIDEO_EXTENSIONS)
    if args.report:
        check_output(args.report, "--report", inputs, others=[("--output", args.output)])
    if args.save_frames:
        from runtime.jsonfile import check_output_folder
        check_output_folder(args.save_frames, "--save-frames", inputs)
        if several:
            for index in range(len(opened)):
                check_output_folder(os.path.join(args.save_frames, "cam{}".format(index)),
                                    "--save-frames", inputs)


class StatusLine(object):
    """FPS, p50/p99 capture-to-result latency and drops on stderr while running.

    On a terminal the line is rewritten in place twice a second; otherwise (logs,
    pipes) one line every ``interval`` seconds.
    """

    def __init__(self, pipeline, stream=None, interval=5.0, quiet=False):
        self.pipeline = pipeline
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.5 if self.tty else float(interval)
        self._ages = collections.deque(maxlen=256)
        self._last = time.monotonic()
        self._shown = False

    def update(self, result):
        if self.quiet:
            return
        self._ages.append(result.age_ms)
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        line = self._line()
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = True

    def _line(self):
        p50, p99 = np.percentile(np.asarray(self._ages), (50, 99))
        pipe = self.pipeline
        return ("frames {}  {:.1f} FPS  latency p50 {:.1f} ms  p99 {:.1f} ms  dropped {}  corrupt {}"
                .format(pipe.frames_processed, pipe.fps_recent, p50, p99, pipe.frames_dropped,
                        pipe.frames_corrupt))

    def finish(self):
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()


class CameraStatusLine(StatusLine):
    """The status line of several cameras: per camera FPS, p50/p99 latency, drops, lost."""

    def _line(self):
        return self.pipeline.status_text()


def _install_signals(pipeline):
    """SIGINT/SIGTERM/SIGHUP stop the pipeline (a second Ctrl-C exits at once)."""
    previous = {}

    def handler(signum, frame):
        if pipeline.reason in _SIGNAL_EXIT and signum == signal.SIGINT:
            raise KeyboardInterrupt()
        pipeline.stop(_SIGNAL_REASON.get(signal.Signals(signum).name, "terminated"))

    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is None:
            continue
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (embedded use): leave signals alone
            pass
    return previous


def _restore_signals(previous):
    for sig, old in previous.items():
        signal.signal(sig, old)


def _quiet_opencv(debug):
    """OpenCV's own warnings (e.g. a camera that fails to open) would duplicate our one line."""
    if debug:
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's per-packet decode errors: counted instead
    try:
        cv2_logging = __import__("cv2").utils.logging
        cv2_logging.setLogLevel(cv2_logging.LOG_LEVEL_ERROR)
    except Exception:
        pass


def main(argv):
    args = build_parser().parse_args(argv)
    _check_args(args)
    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    if check_fleet_args(args, refused=[("--display", args.display), ("--output", args.output),
                                       ("--save-frames", args.save_frames),
                                       ("--realtime", args.realtime),
                                       ("a source flag", getattr(args, "source_list", None)),
                                       ("--sources", args.sources)]):
        return run_fleet_cli(args, report_path=args.report)
    _quiet_opencv(args.debug)
    specs = source_specs(args)
    opened = [make_source(args, kind, spec) for kind, spec in specs]
    check_outputs(args, opened)
    if len(opened) > 1:
        return _main_cameras(args, argv, opened)
    source = opened[0]
    engine, visualizer = _engine_and_visualizer(args)
    outputs = []
    if args.output:
        outputs.append(VideoOutput(args.output))
    if args.save_frames:
        outputs.append(FrameSaver(args.save_frames))
    if args.display:
        outputs.append(DisplayOutput())
    pipeline = Pipeline(source, engine, outputs=outputs, realtime=args.realtime,
                        max_frames=args.max_frames, duration=args.duration, visualizer=visualizer,
                        task_options=args.task_options)
    status = StatusLine(pipeline, interval=args.status_interval, quiet=args.quiet)
    previous = _install_signals(pipeline)
    rss_start = None
    code = None
    try:
        pipeline.start()
        rss_start = report_mod.rss_mb()
        pipeline.run(callback=status.update)
        code = _SIGNAL_EXIT.get(pipeline.reason, 0)
    finally:
        pipeline.close()
        _restore_signals(previous)
        status.finish()
        failed = [o.error for o in outputs if o.error]
        if failed and code is not None:
            code = 2
        _finish_report(args, argv, pipeline, engine, source, outputs, rss_start, code)
    if failed:
        raise OutputError(failed[0])
    return code


def _camera_outputs(args, count):
    """Each camera's outputs: its own video, frames folder and window."""
    per_camera = []
    for index in range(count):
        outputs = []
        if args.output:
            outputs.append(VideoOutput(camera_output(args.output, index)))
        if args.save_frames:
            outputs.append(FrameSaver(os.path.join(args.save_frames, "cam{}".format(index))))
        if args.display:
            outputs.append(DisplayOutput("rt-segment cam{}".format(index)))
        per_camera.append(outputs)
    return per_camera


def _open_engine(args):
    """The engine the flags ask for (one per camera for a stateful engine)."""
    providers = [p.strip() for p in args.providers.split(",") if p.strip()] if args.providers else None
    return open_engine(args.engine, backend=args.backend, providers=providers,
                       threads=args.threads, resize=args.resize, verify=not args.no_verify,
                       **tasks.open_options(args.task_options))


def _engine_and_visualizer(args):
    """The engine the flags ask for, checked against them, and the picture drawer for it (one
    source or several)."""
    engine = _open_engine(args)
    tasks.check_engine_options(args.task_options, engine)
    visualizer = tasks.visualizer(engine.manifest, args.task_options, mode=args.visualize,
                                  alpha=args.alpha, legend=not args.no_legend, hud=not args.no_hud)
    return engine, visualizer


def _main_cameras(args, argv, opened):
    """Several sources through one engine (runtime.multicam.MultiPipeline)."""
    from runtime.multicam import MultiPipeline
    engine, visualizer = _engine_and_visualizer(args)
    engines = [engine]
    if engine.stateful:   # e.g. a forecast bundle's feature ring: one engine per camera
        engines += [_open_engine(args) for _ in opened[1:]]
    per_camera = _camera_outputs(args, len(opened))
    pipeline = MultiPipeline(opened, engines if engine.stateful else engine, outputs=per_camera,
                             realtime=args.realtime,
                             max_frames=args.max_frames, duration=args.duration,
                             visualizer=visualizer)
    status = CameraStatusLine(pipeline, interval=args.status_interval, quiet=args.quiet)
    previous = _install_signals(pipeline)
    outputs = [o for outs in per_camera for o in outs]
    rss_start = None
    code = None
    failed = []
    try:
        pipeline.start()
        rss_start = report_mod.rss_mb()
        pipeline.run(callback=status.update)
        code = _SIGNAL_EXIT.get(pipeline.reason, 0)
        if all(cam.error is not None for cam in pipeline.cameras):
            code = 2
    finally:
        pipeline.close()
        _restore_signals(previous)
        status.finish()
        failed = [o.error for o in outputs if o.error]
        if failed and code is not None:
            code = 2
        source_info = {"kind": "cameras", "uri": ", ".join(s.uri for s in opened),
                       "live": any(s.live for s in opened), "cameras": len(opened)}
        _finish_report(args, argv, pipeline, engine, source_info, outputs, rss_start, code)
    if failed:
        raise OutputError(failed[0])
    summary = pipeline.summary()
    if code == 2 and summary["error"]:
        raise UserError(summary["error"])
    return code


def _finish_report(args, argv, pipeline, engine, source, outputs, rss_start, code):
    """Summary and report on every exit path (end, error, Ctrl-C)."""
    engine_info = dict(engine.describe(), resize=engine.preprocessor.resize)
    report = report_mod.build(
        pipeline.summary(), engine_info=engine_info,
        source_info=source if isinstance(source, dict) else source.describe(),
        outputs_info=[o.describe() for o in outputs],
        memory=report_mod.memory_info(rss_start), tool="rt-segment",
        command=["rt-segment"] + list(argv), started_at=pipeline.started_at,
        finished_at=pipeline.finished_at, exit_code=code if code is not None else 2)
    incomplete = [o.error for o in outputs if o.error]
    if incomplete and report["exit"]["error"] is None:
        report["exit"]["error"] = incomplete[0]
    report_mod.finish(report, args.report, args.quiet, started=pipeline.started_at is not None)


def entry():
    code = run_cli(main, prog="rt-segment")
    # A stream's open or read abandoned after its timeout (or Ctrl-C) may still be inside
    # OpenCV: give it 0.3 s to return (Ctrl-C acts within a second), else leave
    # without running C++ static destructors (every output is closed and the report written).
    if not sources.finish_helpers(0.3):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
