"""rt-ros2's node: the streaming pipeline of rt-segment, fed by a ROS 2 topic, publishing topics.

Nothing here re-implements the runtime: a ``RosImageSource`` is a live frame source
for ``runtime.pipeline.Pipeline`` (the same three threads, preprocessing, engines and
forecast ring buffer as rt-segment) and a ``RosPublisher`` is one of its outputs. ROS
adds only what vehicle software expects of a node (docs/ros2.md):

- ``image`` (sensor_msgs/Image bgr8 | rgb8) or, with ``transport:=compressed``,
  ``image/compressed`` (jpeg | png), with sensor-data QoS (best effort, keep last 1);
- ``~/class_map`` (mono8 class ids), ``~/overlay`` (bgr8, ``publish_overlay``),
  ``~/outlier_score`` (32FC1) and ``~/outlier_mask`` (mono8, 255 = outlier) for outlier
  engines, ``~/forecast`` (mono8, stamp + horizon) for forecast bundles, all with the
  input's header; ``~/classes`` (std_msgs/String, JSON, latched);
- ``/diagnostics`` once a second; parameters ``engine``, ``backend``, ``providers``,
  ``threads``, ``resize``, ``outlier_threshold``, ``publish_overlay``, ``min_fps``,
  ``transport``.

rclpy and the message packages are imported when a node is made, never at module
import, so the rest of the runtime (and this module's import) needs no ROS. The rclpy
calls used exist since Dashing (JetPack 4's Python 3.6) unless a fallback is noted.
"""
import collections
import json
import logging
import math
import os
import threading
import time

import numpy as np

from runtime import ros2_convert as convert
from runtime.backends import BACKENDS
from runtime.engine import open_engine
from runtime.errors import UserError
from runtime.manifest import RESIZE_MODES
from runtime.outlier import check_threshold
from runtime.outputs import Output
from runtime.pipeline import Pipeline
from runtime.sources import EndOfStream, Source
from runtime.stats import Series, summarize

log = logging.getLogger(__name__)

NODE_NAME = "rt_ros2"
TRANSPORTS = ("raw", "compressed")
DIAGNOSTICS_PERIOD_S = 1.0
_POLL_S = 0.1           # how often blocked threads look at their stop flag
_KEEP_HEADERS = 64      # headers of frames in flight (the pipeline holds at most ~7)
_clock = time.monotonic

# Fast DDS's default shared-memory segment (512 KB) is smaller than one camera image, so a
# best-effort reader loses most frames whole (docs/ros2.md, benchmarks/ros2_transport.py):
# rt-ros2's participant gets a profile with a larger segment unless the user chose one.
FASTDDS_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ros2_fastdds.xml")
FASTDDS_PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE",    # Fast DDS 3 (ROS 2 Kilted+)
                             "FASTRTPS_DEFAULT_PROFILES_FILE")   # Fast DDS 2 (Foxy .. Jazzy)
_FAST_DDS_2_DISTROS = ("foxy", "galactic", "humble", "iron", "jazzy")
_NO_SHM_DISTROS = ("dashing", "eloquent")  # Fast RTPS 1.x: no shared-memory transport

# name: (default, description). Defaults that mean "not set" ("" / 0 / -1) keep every
# parameter typed, so that `ros2 param` shows its type.
PARAMETERS = collections.OrderedDict([
    ("engine", ("", "engine: .onnx / .plan with its manifest, or a forecast bundle (required)")),
    ("backend", ("", "onnxruntime | tensorrt | openvino (empty: by the engine's file type)")),
    ("providers", ("", "ONNX Runtime providers, comma-separated (empty: TensorRT, CUDA, CPU "
                       "by availability)")),
    ("threads", (0, "inference threads (0: the backend's default)")),
    ("resize", ("", "fit frames to the input: stretch | letterbox | crop (empty: the manifest's)")),
    ("outlier_threshold", (-1.0, "outlier engines: score above which a pixel is an outlier "
                                 "(negative: the manifest's default)")),
    ("publish_overlay", (False, "publish ~/overlay (bgr8): the class colours over the frame")),
    ("min_fps", (0.0, "/diagnostics warns below this rate (0: never)")),
    ("transport", ("raw", "raw: sensor_msgs/Image on 'image'; compressed: "
                          "sensor_msgs/CompressedImage on 'image/compressed'")),
])


def fastdds_profile_setting(environ):
    """The variable to set so that this process's Fast DDS participant carries large images.

    Returns ``(variable, path)`` (set it before rclpy.init), or ``(None, reason)`` when
    rt-ros2 must leave the middleware alone: another RMW, a profile the user chose (a
    profile variable set), or a Fast RTPS without shared memory. The variable's name
    follows the Fast DDS of ``ROS_DISTRO`` (3 when unknown: the PyPI wheels).
    """
    rmw = environ.get("RMW_IMPLEMENTATION", "")
    if rmw and not rmw.startswith("rmw_fastrtps"):
        return None, "RMW_IMPLEMENTATION is {}".format(rmw)
    for variable in FASTDDS_PROFILE_VARIABLES:
        if environ.get(variable):
            return None, "{} is set".format(variable)
    distro = environ.get("ROS_DISTRO", "").strip().lower()
    if distro in _NO_SHM_DISTROS:
        return None, "the Fast RTPS of ROS 2 {} has no shared-memory transport".format(distro)
    variable = FASTDDS_PROFILE_VARIABLES[1 if distro in _FAST_DDS_2_DISTROS else 0]
    return variable, FASTDDS_PROFILE


def fastdds_profile_in_use(environ):
    """The Fast DDS profile file this process's participants load (None: Fast DDS's defaults)."""
    for variable in FASTDDS_PROFILE_VARIABLES:
        if environ.get(variable):
            return environ[variable]
    return None


def _logger_call(logger, level):
    """rclpy loggers have ``warning`` (``warn`` on the oldest ones)."""
    return getattr(logger, level, None) or getattr(logger, "warn")


class Settings(object):
    """The node's parameters, checked; a wrong one is a UserError naming it (one line)."""

    def __init__(self, values):
        def text(name, allowed=None):
            value = values[name]
            if not isinstance(value, str):
                raise UserError("parameter {} must be a string, got {!r}".format(name, value))
            if allowed is not None and value not in allowed:
                raise UserError("parameter {}: {!r} is not one of {}".format(
                    name, value, ", ".join(a for a in allowed if a)))
            return value

        def number(name, integer=False):
            value = values[name]
            kinds = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or (
                    not integer and not math.isfinite(value)):
                raise UserError("parameter {} must be {}, got {!r}".format(
                    name, "an integer" if integer else "a number", value))
            return value

        self.engine = text("engine")
        if not self.engine:
            raise UserError("parameter engine is required: rt-ros2 --ros-args -p "
                            "engine:=engines/NAME.onnx")
        self.backend = text("backend", ("",) + BACKENDS) or None
        providers = text("providers")
        self.providers = [p.strip() for p in providers.split(",") if p.strip()] or None
        self.threads = number("threads", integer=True)
        if self.threads < 0:
            raise UserError("parameter threads must be 0 (the backend's default) or more, "
                            "got {}".format(self.threads))
        self.threads = self.threads or None
        self.resize = text("resize", ("",) + RESIZE_MODES) or None
        threshold = float(number("outlier_threshold"))
        self.outlier_threshold = (None if threshold < 0 else
                                  check_threshold(threshold, "parameter outlier_threshold"))
        self.publish_overlay = values["publish_overlay"]
        if not isinstance(self.publish_overlay, bool):
            raise UserError("parameter publish_overlay must be true or false, got {!r}".format(
                self.publish_overlay))
        self.min_fps = float(number("min_fps"))
        if self.min_fps < 0:
            raise UserError("parameter min_fps must be 0 or more, got {}".format(self.min_fps))
        self.transport = text("transport", TRANSPORTS)


def declare_parameters(node):
    """Declare PARAMETERS on ``node`` and return their values (name -> value).

    Declared with dynamic typing where rclpy has it (Galactic+), so that a value of the
    wrong type (``-p threads:=two``) reaches Settings and its one-line error instead of
    an rclpy exception; older rclpy types them by their default.
    """
    from rcl_interfaces.msg import ParameterDescriptor
    values = {}
    for name, (default, description) in PARAMETERS.items():
        try:
            descriptor = ParameterDescriptor(description=description, dynamic_typing=True)
        except (AssertionError, TypeError):
            descriptor = ParameterDescriptor(description=description)
        try:
            values[name] = node.declare_parameter(name, default, descriptor).value
        except Exception as exc:  # rclpy's type errors (pre-Galactic): one line
            raise UserError("parameter {}: {}".format(name, exc))
    return values


class RosImageSource(Source):
    """Frames from a ROS 2 subscription, as a live Source for the Pipeline.

    The subscription callback (executor thread) only stores the newest message in a
    one-slot holder (``offer``), so the executor always keeps up and DDS never queues
    stale frames for us; a message replaced before the pipeline took it is dropped and
    counted (``dropped``). ``read`` (the pipeline's capture thread) converts it to a
    BGR frame: a refused image (encoding, format) is logged once per reason and given to
    the pipeline as None, which counts it as corrupt. The header and receive time of the
    n-th read are kept for the publisher (``take(n)``: the pipeline's frame index).
    Where rclpy gives message info (Iron+), frames DDS lost before the callback are
    counted too (``lost``, from gaps in the publishers' sequence numbers).
    """

    kind = "ros2"
    live = True

    def __init__(self, topic, transport="raw", logger=None):
        Source.__init__(self, topic)
        self.transport = transport
        self._convert = (convert.compressed_to_bgr if transport == "compressed"
                         else convert.image_to_bgr)
        self._logger = logger
        self._cond = threading.Condition()
        self._pending = None
        self._reads = 0
        self._headers = collections.OrderedDict()
        self._refusals = set()
        self._sequences = {}
        self._stamped = None      # decided by the first frame: are the camera's stamps set?
        self._time = None         # frame_time() of the frame read last
        self._last = None         # (stamp time, receive time) of the last stamped frame
        self.lost = 0
        self.received = 0
        self.dropped = 0
        self.refused = 0

    def offer_with_info(self, msg, info):
        """``offer`` for rclpy >= Iron, which also counts frames lost before the node (``lost``).

        A gap in a publisher's sequence numbers is frames DDS did not deliver (best effort,
        or a reader history of 1 overwritten before the executor took it).
        """
        seq = info.get("publication_sequence_number") if hasattr(info, "get") else None
        if seq:
            gid = info.get("publisher_gid")
            key = repr(sorted(gid.items())) if isinstance(gid, dict) else repr(gid)
            with self._cond:
                last = self._sequences.get(key)
                if last is not None and seq > last + 1:
                    self.lost += seq - last - 1
                self._sequences[key] = seq
        self.offer(msg)

    def offer(self, msg):
        """The subscription callback: keep ``msg`` as the newest frame (cheap, no decoding)."""
        now = _clock()
        with self._cond:
            if self._pending is not None:
                self.dropped += 1
            self._pending = (msg, now)
            self.received += 1
            self._cond.notify()

    def read(self):
        with self._cond:
            while self._pending is None:
                if self._stop.is_set():
                    raise EndOfStream()
                self._cond.wait(_POLL_S)
            msg, received_at = self._pending
            self._pending = None
            index = self._reads
            self._reads += 1
        try:
            frame = self._convert(msg)
        except convert.RefusedImage as exc:
            self.refused += 1
            self._refuse(str(exc))
            return None
        with self._cond:
            self._headers[index] = (msg.header, received_at)
            while len(self._headers) > _KEEP_HEADERS:
                self._headers.popitem(last=False)
        self._time = self._stamp_time(msg.header.stamp, received_at)
        return frame

    def frame_time(self):
        return self._time

    def _stamp_time(self, stamp, received_at):
        """The frame's time for the forecast ring: its header stamp (s), so that a bag replayed
        at any rate picks the past frames the camera saw; a camera that does not stamp (the
        first frame's stamp is zero) is keyed by receive time (None: the pipeline's clock).
        A later unstamped frame of a stamping camera gets the last stamp + the receive gap."""
        seconds = int(stamp.sec) + int(stamp.nanosec) * 1e-9
        if self._stamped is None:
            self._stamped = seconds > 0
        if not self._stamped:
            return None
        if seconds <= 0 and self._last is not None:
            seconds = self._last[0] + (received_at - self._last[1])
        self._last = (seconds, received_at)
        return seconds

    def take(self, index):
        """(header, receive time) of the frame the pipeline numbered ``index``, or None."""
        with self._cond:
            return self._headers.pop(index, None)

    def _refuse(self, reason):
        if reason in self._refusals:
            return
        self._refusals.add(reason)
        message = "{}: image refused (logged once per reason, counted as corrupt): {}".format(
            self.uri, reason)
        if self._logger is not None:
            _logger_call(self._logger, "error")(message)
        else:
            log.error(message)

    def describe(self):
        info = Source.describe(self)
        info.update({"transport": self.transport, "received": self.received,
                     "dropped_before_pipeline": self.dropped, "refused": self.refused,
                     "lost_in_transport": self.lost})
        return info


class NodeStats(object):
    """What /diagnostics and the report say: receive -> publish latency, stage times, rate.

    Written by the publisher (post thread) and the run loop; read once a second by the
    diagnostics timer (executor thread), which takes the samples since its last call.
    """

    STAGES = ("preprocess", "inference", "postprocess", "output")

    def __init__(self):
        self._lock = threading.Lock()
        self.receive_to_publish = Series()
        self.published = 0
        self._window = {"receive_to_publish": []}
        for stage in self.STAGES:
            self._window[stage] = []
        self._published_at = []
        self.first_received = self.last_published = None  # time.monotonic()

    def add_published(self, latency_ms, now):
        with self._lock:
            self.receive_to_publish.add(latency_ms)
            self.published += 1
            if self.first_received is None:
                self.first_received = now - latency_ms / 1e3
            self.last_published = now
            self._window["receive_to_publish"].append(latency_ms)
            self._published_at.append(now)

    def add_timings(self, timings):
        with self._lock:
            for stage in self.STAGES:
                if timings and timings.get(stage) is not None:
                    self._window[stage].append(timings[stage])

    def take_window(self):
        """(latency samples per name, publish times) since the last call."""
        with self._lock:
            window, times = self._window, self._published_at
            self._window = dict((name, []) for name in window)
            self._published_at = []
        return window, times


class RosPublisher(Output):
    """The Pipeline output that publishes each result with its input's header."""

    kind = "ros2"

    def __init__(self, node, source, engine, stats, publish_overlay=False,
                 outlier_threshold=None):
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header
        from builtin_interfaces.msg import Time
        self._image, self._header, self._time = Image, Header, Time
        self.source, self.engine, self.stats = source, engine, stats
        self.needs_visual = bool(publish_overlay)
        self.task = engine.manifest.task
        self.horizon_s = engine.horizon_s
        self.threshold = None
        qos = output_qos()
        self.publishers = collections.OrderedDict()
        self.publishers["class_map"] = node.create_publisher(Image, "~/class_map", qos)
        if publish_overlay:
            self.publishers["overlay"] = node.create_publisher(Image, "~/overlay", qos)
        if engine.outlier_output is not None:
            self.threshold = (engine.outlier_threshold if outlier_threshold is None
                              else outlier_threshold)
            self.publishers["outlier_score"] = node.create_publisher(Image, "~/outlier_score", qos)
            self.publishers["outlier_mask"] = node.create_publisher(Image, "~/outlier_mask", qos)
        if self.task == "forecast":
            self.publishers["forecast"] = node.create_publisher(Image, "~/forecast", qos)
        self.topics = dict((name, pub.topic_name if hasattr(pub, "topic_name") else name)
                           for name, pub in self.publishers.items())
        self.counts = dict((name, 0) for name in self.publishers)

    def write(self, result, visual):
        taken = self.source.take(result.index)
        if taken is None:  # cannot happen while the pipeline holds < _KEEP_HEADERS frames
            log.warning("no header for frame %d: not published", result.index)
            return
        header_in, received_at = taken
        header = convert.copy_header(header_in, self._header)
        details = result.details
        if self.task == "forecast":
            current = getattr(details, "current_map", None)
            if current is not None:
                self._publish("class_map", header, current, "mono8")
            if result.class_map is not None:  # None while the ring buffer warms up
                stamp = convert.stamp_plus(header_in.stamp, self.horizon_s, self._time)
                self._publish("forecast", convert.copy_header(header_in, self._header, stamp),
                              result.class_map, "mono8")
        else:
            self._publish("class_map", header, result.class_map, "mono8")
        if result.outlier_score is not None and "outlier_score" in self.publishers:
            score = result.outlier_score
            self._publish("outlier_score", header, score, "32FC1")
            mask = np.where(score > self.threshold, 255, 0).astype(np.uint8)
            self._publish("outlier_mask", header, mask, "mono8")
        if visual is not None and "overlay" in self.publishers:
            self._publish("overlay", header, visual, "bgr8")
        now = _clock()
        self.stats.add_published((now - received_at) * 1e3, now)

    def _publish(self, name, header, values, encoding):
        values = np.asarray(values)
        if encoding == "mono8":  # class ids leave the engine as uint8 (Engine.postprocess)
            values = values.astype(np.uint8, copy=False)
        self.publishers[name].publish(convert.fill_image(self._image(), header, values, encoding))
        self.counts[name] += 1

    def describe(self):
        return {"kind": self.kind, "topics": dict(self.topics), "published": dict(self.counts)}


def output_qos():
    """Results: reliable, keep last 1 (a reliable writer serves reliable and best-effort readers)."""
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    return QoSProfile(depth=1, reliability=_policy(QoSReliabilityPolicy, "RELIABLE"))


def latched_qos():
    """~/classes: reliable, transient local (late subscribers get it), keep last 1."""
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    return QoSProfile(depth=1, reliability=_policy(QoSReliabilityPolicy, "RELIABLE"),
                      durability=_policy(QoSDurabilityPolicy, "TRANSIENT_LOCAL"))


def _policy(enum, name):
    """QoS enum member by its short name (Eloquent+) or its RMW_QOS_POLICY_* name (Dashing)."""
    member = getattr(enum, name, None)
    if member is None:
        kind = {"QoSReliabilityPolicy": "RELIABILITY", "QoSDurabilityPolicy": "DURABILITY"}
        member = getattr(enum, "RMW_QOS_POLICY_{}_{}".format(kind[enum.__name__], name))
    return member


def classes_description(engine):
    """The JSON published on ~/classes: what each class id of the class maps means."""
    manifest = engine.manifest
    return json.dumps({
        "task": manifest.task,
        "engine": engine.path,
        "classes": [{"id": int(c["id"]), "name": c["name"], "color": [int(v) for v in c["color"]]}
                    for c in sorted(manifest.classes, key=lambda c: int(c["id"]))],
        "color_order": "RGB",
        "ignore_id": manifest.ignore_id,
        "input_size": [int(v) for v in engine.size],
        "outlier_threshold": engine.outlier_threshold,
        "forecast_horizon_s": engine.horizon_s,
    }, sort_keys=True)


class PerceptionNode(object):
    """The rt-ros2 node: parameters -> engine -> pipeline, with publishers and diagnostics.

    ``context``: the rclpy Context to use (initialised by the caller; None: the default
    one). ``parameter_overrides``: rclpy Parameters (library use and tests; the CLI takes
    them from ``--ros-args``). Usage::

        node = PerceptionNode(context=ctx)
        try:
            node.run()          # until stop() (a signal handler, another thread)
        finally:
            node.close()
        node.summary()
    """

    def __init__(self, node_name=NODE_NAME, context=None, parameter_overrides=None,
                 namespace=None):
        from rclpy.node import Node
        self._context = context
        kwargs = {"context": context}
        if parameter_overrides is not None:
            kwargs["parameter_overrides"] = list(parameter_overrides)
        if namespace is not None:
            kwargs["namespace"] = namespace
        self.node = Node(node_name, **kwargs)
        self.logger = self.node.get_logger()
        self.engine = self.pipeline = None
        self._executor = self._spin_thread = None
        self._closing = threading.Event()
        self._closed = False
        self._last_tick = None
        self._slow = False
        try:
            self.settings = Settings(declare_parameters(self.node))
            self._open()
        except BaseException:
            self._destroy()
            raise

    def _open(self):
        from std_msgs.msg import String
        from diagnostic_msgs.msg import DiagnosticArray
        settings = self.settings
        self.engine = open_engine(settings.engine, backend=settings.backend,
                                  providers=settings.providers, threads=settings.threads,
                                  resize=settings.resize, current=True)
        task = self.engine.manifest.task
        if settings.outlier_threshold is not None and self.engine.outlier_output is None:
            raise UserError("parameter outlier_threshold: {} has no outlier score (manifest "
                            "task {!r})".format(settings.engine, task))
        self.stats = NodeStats()
        self.source = RosImageSource(self._input_topic(), settings.transport, self.logger)
        self.publisher = RosPublisher(self.node, self.source, self.engine, self.stats,
                                      publish_overlay=settings.publish_overlay,
                                      outlier_threshold=settings.outlier_threshold)
        visualizer = None
        if settings.publish_overlay:
            from runtime.visualize import make_visualizer
            visualizer = make_visualizer(self.engine.manifest, legend=False, hud=False,
                                         outlier_threshold=settings.outlier_threshold)
        self.pipeline = Pipeline(self.source, self.engine, outputs=[self.publisher],
                                 visualizer=visualizer,
                                 outlier_threshold=settings.outlier_threshold)
        self._classes_pub = self.node.create_publisher(String, "~/classes", latched_qos())
        message = String()
        message.data = classes_description(self.engine)
        self._classes_pub.publish(message)
        self._diagnostics_pub = self.node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._subscribe()
        self._timer = self.node.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)
        info = self.engine.describe()
        _logger_call(self.logger, "info")(
            "{} ({}, {} {}, input {}x{}) on {} [{}]: publishing {}".format(
                settings.engine, task, info.get("backend"), info.get("precision"),
                self.engine.size[1], self.engine.size[0], self.source.uri, settings.transport,
                ", ".join(sorted(self.publisher.topics.values()))))

    def _input_topic(self):
        """'image', or the compressed topic of image_transport: '<image, remapped>/compressed'."""
        if self.settings.transport == "raw":
            return self._resolve("image")
        resolve = getattr(self.node, "resolve_topic_name", None)  # rclpy >= Humble
        return resolve("image") + "/compressed" if resolve else "image/compressed"

    def _resolve(self, name):
        resolve = getattr(self.node, "resolve_topic_name", None)
        return resolve(name) if resolve else name

    def _subscribe(self):
        from rclpy.qos import qos_profile_sensor_data
        if self.settings.transport == "compressed":
            from sensor_msgs.msg import CompressedImage as kind
        else:
            from sensor_msgs.msg import Image as kind
        from rclpy.subscription import Subscription
        # rclpy >= Iron passes message info to a two-argument callback (sequence numbers)
        callback = (self.source.offer_with_info if hasattr(Subscription, "CallbackType")
                    else self.source.offer)
        # best effort, keep last 1: a slow engine takes the newest frame (the source's slot).
        self._subscription = self.node.create_subscription(
            kind, self.source.uri, callback, qos_profile_sensor_data)

    # -- running ----------------------------------------------------------------------------

    def start(self):
        """Warm the engine up, start the pipeline threads and the executor thread."""
        from rclpy.executors import SingleThreadedExecutor
        self.pipeline.start()
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._spin_thread = threading.Thread(target=self._spin, name="rt-ros2-spin")
        self._spin_thread.daemon = True
        self._spin_thread.start()
        return self

    def _spin(self):
        """The executor's loop: subscription callbacks and the diagnostics timer."""
        try:
            while not self._closing.is_set():
                self._executor.spin_once(timeout_sec=_POLL_S)
        except Exception as exc:  # the context was shut down under us (e.g. rclpy's own signal handling)
            if not self._closing.is_set():
                log.debug("executor stopped: %s", exc)
                self.pipeline.stop("shutdown")

    def run(self):
        """Process frames until ``stop()``; raises the error that ended the pipeline, if any."""
        if self._spin_thread is None:
            self.start()
        for result in self.pipeline:
            self.stats.add_timings(result.timings)

    def stop(self, reason="stopped"):
        """End the run (thread-safe, signal-safe: it only sets flags)."""
        self.pipeline.stop(reason)

    def close(self):
        """Stop the pipeline and executor, destroy the node, close the engine. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.pipeline is not None:
            self.pipeline.close()
        self._closing.set()
        if self._spin_thread is not None:
            self._spin_thread.join(5.0)
        self._destroy()

    def _destroy(self):
        if self._executor is not None:
            try:
                self._executor.shutdown(timeout_sec=1.0)
            except Exception:
                pass
        try:
            self.node.destroy_node()
        except Exception:
            pass
        if self.engine is not None:
            self.engine.close()

    # -- diagnostics and summary --------------------------------------------------------------

    def counters(self):
        """Frames received, processed, dropped (anywhere before inference), refused, and lost
        in transport before the node (rclpy >= Iron; 0 where unknown)."""
        pipe = self.pipeline
        return {"received": self.source.received, "lost": self.source.lost,
                "processed": pipe.frames_processed,
                "dropped": self.source.dropped + pipe.frames_dropped,
                "refused": pipe.frames_corrupt,
                "published": self.stats.published}

    def diagnostic_status(self, window, times, elapsed_s):
        """One diagnostic_msgs/DiagnosticStatus for a window of ``elapsed_s`` seconds."""
        from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
        fps = len(times) / elapsed_s if elapsed_s > 0 else 0.0
        counts = self.counters()
        info = self.engine.describe()
        status = DiagnosticStatus()
        status.name = "{}: perception".format(self.node.get_fully_qualified_name()
                                              if hasattr(self.node, "get_fully_qualified_name")
                                              else self.node.get_name())
        status.hardware_id = str(info.get("engine") or self.settings.engine)
        min_fps = self.settings.min_fps
        if min_fps > 0 and fps < min_fps:
            status.level = _level("WARN")
            status.message = "{:.1f} FPS, below min_fps {:g}{}".format(
                fps, min_fps, "" if counts["received"] else " (no image received yet)")
        else:
            status.level = _level("OK")
            status.message = "{:.1f} FPS".format(fps)
        values = [("fps", "{:.2f}".format(fps)), ("min_fps", "{:g}".format(min_fps))]
        values += [("frames_" + name, str(value)) for name, value in sorted(counts.items())]
        for name in ("receive_to_publish",) + NodeStats.STAGES:
            stats = summarize(window.get(name, []))
            for key in ("p50", "p90", "p99", "max"):
                value = stats[key]
                values.append(("{}_{}_ms".format(name, key),
                               "{:.2f}".format(value) if value is not None else "-"))
        # The core's own backend ("onnxruntime 1.32.0 cpu") where libswiftrt runs the engine.
        backend = info.get("core_backend") or info.get("backend")
        values += [("backend", str(backend)), ("precision", str(info.get("precision"))),
                   ("task", str(self.engine.manifest.task)),
                   ("input_size", "{}x{}".format(self.engine.size[1], self.engine.size[0])),
                   ("input_topic", self.source.uri), ("transport", self.settings.transport)]
        status.values = [KeyValue(key=k, value=v) for k, v in values]
        return status

    def publish_diagnostics(self):
        """The timer callback: the last second's rate and latencies on /diagnostics."""
        from diagnostic_msgs.msg import DiagnosticArray
        now = _clock()
        elapsed = now - self._last_tick if self._last_tick is not None else DIAGNOSTICS_PERIOD_S
        self._last_tick = now
        window, times = self.stats.take_window()
        array = DiagnosticArray()
        array.header.stamp = self.node.get_clock().now().to_msg()
        status = self.diagnostic_status(window, times, elapsed)
        array.status = [status]
        self._diagnostics_pub.publish(array)
        slow = status.level != _level("OK")
        if slow != self._slow:  # a log line when the rate crosses min_fps, not every second
            self._slow = slow
            _logger_call(self.logger, "warning" if slow else "info")(
                status.message if slow else "{} (min_fps {:g})".format(
                    status.message, self.settings.min_fps))

    def summary(self):
        """Pipeline.summary() with ROS's counters and rates.

        ``read`` and ``dropped`` include the frames replaced in the source's slot;
        ``wall_s`` and the rates run from the first frame received to the last result
        published (a node waits for its camera: time before the first frame is no
        measure of its speed).
        """
        summary = self.pipeline.summary()
        frames = summary["frames"]
        frames["read"] += self.source.dropped
        frames["dropped"] += self.source.dropped
        frames["received"] = self.source.received
        frames["published"] = self.stats.published
        frames["lost"] = self.source.lost
        first, last = self.stats.first_received, self.stats.last_published
        if first is not None and last is not None and last > first:
            wall = last - first
            summary["wall_s"] = wall
            summary["fps"] = {"processed": frames["processed"] / wall,
                              "read": frames["read"] / wall}
        summary["latency_ms"]["receive_to_publish"] = self.stats.receive_to_publish.summary()
        return summary

    def describe_engine(self):
        return dict(self.engine.describe(), resize=self.engine.preprocessor.resize)


def _level(name):
    """DiagnosticStatus level constant (bytes in rclpy's generated code for byte fields)."""
    from diagnostic_msgs.msg import DiagnosticStatus
    return getattr(DiagnosticStatus, name)
