"""rt-ros2's node: the streaming pipeline of rt-segment, fed by a ROS 2 topic, publishing topics.

Nothing here re-implements the runtime: a ``RosImageSource`` is a live frame source
for ``runtime.pipeline.Pipeline`` (the same three threads, preprocessing, engines and
forecast ring buffer as rt-segment) and a ``RosPublisher`` is one of its outputs. ROS
adds only what vehicle software expects of a node (docs/ros2.md):

- ``image`` (sensor_msgs/Image, runtime.ros2_convert.RAW_ENCODINGS) or, with
  ``transport:=compressed``, ``image/compressed`` (jpeg | png), sensor-data QoS; the
  camera's ``camera_info`` beside it;
- ``~/class_map`` (mono8 class ids), ``~/colored_segmentation_mask`` (rgb8),
  ``~/overlay`` (bgr8), ``~/outlier_score`` (32FC1) and ``~/outlier_mask`` (mono8) for
  outlier engines, ``~/forecast`` (mono8, stamp + horizon) for forecast bundles,
  ``~/camera_info`` (the camera's intrinsics in the maps' pixels), all with the input's
  header and computed only while someone subscribes; ``~/classes`` (JSON, latched);
- ``/diagnostics`` once a second: rate, a silent camera (``stale_timeout``), frames lost
  in transport with the likely cause and its fix;
- parameters with descriptors (``PARAMETERS``): read-only ones are refused at run time
  with a reason, live ones (thresholds, publish toggles) take effect at once.

A fault inside the node (an exception in the executor) ends ``run()`` with NodeFault,
which rt-ros2 prints as one line and exit code 1, so a supervisor restarts the node.

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

from runtime import open_engine, tasks
from runtime import ros2_convert as convert
from runtime.backends import BACKENDS
from runtime.cli.common import check_threads
from runtime.errors import UserError, first_line
from runtime.manifest import RESIZE_MODES
from runtime.tasks.outlier import check_threshold
from runtime.core_preprocess import fit_geometry
from runtime.outputs import Output
from runtime.pipeline import Pipeline
from runtime.sources import EndOfStream, Source
from runtime.stats import Series, summarize

log = logging.getLogger(__name__)

NODE_NAME = "rt_ros2"
TRANSPORTS = ("raw", "compressed")
OUTPUT_SIZES = ("network", "input")
DIAGNOSTICS_PERIOD_S = 1.0
# Frames lost in transport over the last TRANSPORT_WINDOW_S: a warning when at least
# TRANSPORT_LOST_SHARE of those sent and TRANSPORT_LOST_LEAST frames (or all, at a slow rate).
TRANSPORT_WINDOW_S = 5.0
TRANSPORT_LOST_SHARE = 0.1
TRANSPORT_LOST_LEAST = 3
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



class Param(object):
    """A node parameter: its default (which types it), what it does, whether it may change
    while the node runs (``live``) and its allowed values in words (``constraints``)."""

    def __init__(self, default, description, live=False, constraints=""):
        self.default, self.description = default, description
        self.live, self.constraints = live, constraints


# Defaults that mean "not set" ("" / 0 / -1) keep every parameter typed, so that
# `ros2 param describe` shows its type. Read-only: what the engine, its threads and the
# subscription were made with (restart the node to change them).
PARAMETERS = collections.OrderedDict([
    ("engine", Param("", "engine: .onnx / .plan with its manifest, or a forecast bundle",
                     constraints="required")),
    ("backend", Param("", "inference backend (empty: by the engine's file type)",
                      constraints="'' | " + " | ".join(BACKENDS))),
    ("providers", Param("", "ONNX Runtime providers, comma-separated (empty: TensorRT, CUDA, "
                            "CPU by availability)")),
    ("threads", Param(0, "inference threads (0: the backend's default)",
                      constraints="0 .. 4 x the usable cores")),
    ("resize", Param("", "fit frames to the input (empty: the manifest's)",
                     constraints="'' | " + " | ".join(RESIZE_MODES))),
    ("images", Param("", "several cameras through one engine: their image topics, e.g. "
                         "\"[cam0/image, cam1/image]\" (or comma-separated); each camera's "
                         "outputs go to <its namespace>/<node name>/... (empty: one camera on "
                         "'image', outputs on ~/...)")),
    ("transport", Param("raw", "raw: sensor_msgs/Image on 'image'; compressed: "
                               "sensor_msgs/CompressedImage on 'image/compressed'",
                        constraints=" | ".join(TRANSPORTS))),
    ("camera_info_topic", Param("", "the camera's sensor_msgs/CameraInfo (empty: "
                                    "'camera_info' beside the image topic, as image_transport)")),
    ("label_path", Param("", "class names, one a line in class-id order (Autoware's label "
                             "file; empty: the manifest's)")),
    ("color_map_path", Param("", "class colours, CSV lines 'id,name,r,g,b' (empty: the "
                                 "manifest's)")),
    ("output_size", Param("network", "size of the published maps: the network's input, or "
                                     "the camera image's (maps fitted back)",
                          constraints=" | ".join(OUTPUT_SIZES))),
    ("outlier_threshold", Param(-1.0, "outlier engines: score above which a pixel is an "
                                      "outlier (negative: the manifest's default)",
                                live=True, constraints="negative, or 0 .. 1")),
    ("min_fps", Param(0.0, "/diagnostics warns below this rate (0: never)", live=True,
                      constraints=">= 0")),
    ("stale_timeout", Param(3.0, "/diagnostics: no image for this long is an error (a warning "
                                 "before the first image; 0: never)", live=True,
                            constraints=">= 0 seconds")),
    ("publish_overlay", Param(False, "publish ~/overlay (bgr8): the class colours over the frame",
                              live=True)),
    ("overlay_alpha", Param(0.5, "~/overlay: opacity of the class colours", live=True,
                            constraints="0 .. 1")),
    ("publish_colored_mask", Param(True, "publish ~/colored_segmentation_mask (rgb8 class "
                                         "colours)", live=True)),
    ("publish_outlier", Param(True, "outlier engines: publish ~/outlier_score and "
                                    "~/outlier_mask", live=True)),
    ("publish_camera_info", Param(True, "publish ~/camera_info (needs the camera's)", live=True)),
])
LIVE_PARAMETERS = tuple(name for name, p in PARAMETERS.items() if p.live)


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
        self.values = dict(values)

        def text(name, allowed=None):
            value = values[name]
            if not isinstance(value, str):
                raise UserError("parameter {} must be a string, got {!r}".format(name, value))
            if allowed is not None and value not in allowed:
                raise UserError("parameter {}: {!r} is not one of {}".format(
                    name, value, ", ".join(a for a in allowed if a)))
            return value

        def number(name, integer=False, least=0.0, most=None):
            value = values[name]
            kinds = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or (
                    not integer and not math.isfinite(value)):
                raise UserError("parameter {} must be {}, got {!r}".format(
                    name, "an integer" if integer else "a number", value))
            if least is not None and value < least or most is not None and value > most:
                raise UserError("parameter {} must be {}, got {}".format(
                    name, PARAMETERS[name].constraints, value))
            return value if integer else float(value)

        def flag(name):
            value = values[name]
            if not isinstance(value, bool):
                raise UserError("parameter {} must be true or false, got {!r}".format(name, value))
            return value

        self.engine = text("engine")
        if not self.engine:
            raise UserError("parameter engine is required: rt-ros2 --ros-args -p "
                            "engine:=engines/NAME.onnx")
        self.backend = text("backend", ("",) + BACKENDS) or None
        providers = text("providers")
        self.providers = [p.strip() for p in providers.split(",") if p.strip()] or None
        threads = number("threads", integer=True, least=None)
        if threads:
            check_threads(threads, "parameter threads")
        elif threads < 0:
            raise UserError("parameter threads must be 0 (the backend's default) or more, "
                            "got {}".format(threads))
        self.threads = threads or None
        self.resize = text("resize", ("",) + RESIZE_MODES) or None
        self.transport = text("transport", TRANSPORTS)
        images = values["images"]
        if isinstance(images, str):
            images = [t.strip() for t in images.split(",")]
        if not isinstance(images, (list, tuple)) or not all(isinstance(t, str) for t in images):
            raise UserError("parameter images must be a list of topics, got {!r}".format(images))
        self.images = [t.strip() for t in images if t.strip()]
        if len(set(self.images)) != len(self.images):
            raise UserError("parameter images names a topic twice: {}".format(self.images))
        self.camera_info_topic = text("camera_info_topic")
        if self.camera_info_topic and self.images:
            raise UserError("parameter camera_info_topic: with images, each camera's "
                            "camera_info is the one beside its image topic")
        self.label_path = text("label_path")
        self.color_map_path = text("color_map_path")
        self.output_size = text("output_size", OUTPUT_SIZES)
        threshold = number("outlier_threshold", least=None)
        self.outlier_threshold = (None if threshold < 0 else
                                  check_threshold(threshold, "parameter outlier_threshold"))
        self.min_fps = number("min_fps")
        self.stale_timeout = number("stale_timeout")
        self.publish_overlay = flag("publish_overlay")
        self.overlay_alpha = number("overlay_alpha", most=1.0)
        self.publish_colored_mask = flag("publish_colored_mask")
        self.publish_outlier = flag("publish_outlier")
        self.publish_camera_info = flag("publish_camera_info")


def declare_parameters(node):
    """Declare PARAMETERS on ``node`` with their descriptors; returns their values (name -> value).

    Declared with dynamic typing where rclpy has it (Galactic+), so that a value of the
    wrong type (``-p threads:=two``) reaches Settings and its one-line error instead of
    an rclpy exception (the type is then enforced by the node: ``on_set_parameters``);
    older rclpy types them by their default. Read-only ones are refused by rclpy itself
    at run time ("parameter is read-only").
    """
    from rcl_interfaces.msg import ParameterDescriptor
    values = {}
    for name, param in PARAMETERS.items():
        words = dict(description=param.description, read_only=not param.live,
                     additional_constraints=param.constraints or "")
        try:
            descriptor = ParameterDescriptor(dynamic_typing=True, **words)
        except (AssertionError, TypeError):
            descriptor = ParameterDescriptor(**words)
        try:
            values[name] = node.declare_parameter(name, param.default, descriptor).value
        except Exception as exc:  # rclpy's type errors (pre-Galactic): one line
            raise UserError("parameter {}: {}".format(name, first_line(exc)))
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
    Frames the publishers sent that never reached the callback are counted as ``lost``:
    from the middleware's sample-lost event (``on_message_lost``: Fast DDS reports every
    sample its reader gave up on, also when none arrives at all) and from gaps in each
    publisher's sequence numbers (rclpy >= Iron's message info: also samples overwritten
    in the reader's history). The two overlap, so ``lost`` is the larger of them.
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
        self.lost_in_sequence = 0   # gaps in the publishers' sequence numbers
        self.lost_reported = 0      # the middleware's sample-lost events (total)
        self.received = 0
        self.dropped = 0
        self.refused = 0
        self.last_received_at = None  # _clock()

    @property
    def lost(self):
        """Frames sent by the publishers that never reached the node (a lower bound)."""
        return max(self.lost_in_sequence, self.lost_reported)

    def on_message_lost(self, info):
        """The subscription's sample-lost event (rmw_message_lost_status_t: ``total_count``)."""
        with self._cond:
            self.lost_reported = max(self.lost_reported, int(info.total_count))

    def offer_with_info(self, msg, info):
        """``offer`` for rclpy >= Iron, which also counts frames lost before the node.

        A gap in a publisher's sequence numbers is frames DDS did not deliver (best effort,
        or a reader history overwritten before the executor took it).
        """
        seq = info.get("publication_sequence_number") if hasattr(info, "get") else None
        if seq:
            gid = info.get("publisher_gid")
            key = repr(sorted(gid.items())) if isinstance(gid, dict) else repr(gid)
            with self._cond:
                last = self._sequences.get(key)
                if last is not None and seq > last + 1:
                    self.lost_in_sequence += seq - last - 1
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
            self.last_received_at = now
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
            self._headers[index] = (msg.header, received_at, frame.shape[:2])
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
        """(header, receive time, (height, width)) of the frame the pipeline numbered
        ``index``, or None."""
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
                     "lost_in_transport": self.lost,
                     "lost_in_sequence": self.lost_in_sequence,
                     "lost_reported": self.lost_reported})
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
    """The Pipeline output that publishes each result with its input's header.

    Publishers follow the publish_* parameters (``configure``, also while running); an
    output is computed and sent only while its topic has subscribers. Maps leave at the
    network's size, or at the camera image's (``output_size:=input``, fitted back);
    ``~/camera_info`` is the camera's latest CameraInfo moved to the maps' pixels.
    """

    kind = "ros2"

    def __init__(self, node, source, engine, stats, settings, resize_mode, classes, prefix="~/"):
        """``prefix``: where the result topics go (``~/``; a camera's namespace + the node's
        name with several cameras)."""
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import Header
        from builtin_interfaces.msg import Time
        self._image, self._info, self._header, self._time = Image, CameraInfo, Header, Time
        self._node = node
        self.prefix = prefix
        self.source, self.engine, self.stats = source, engine, stats
        self.resize_mode = resize_mode
        self.task = tasks.for_engine(engine)   # its family's topics (runtime/tasks/)
        self.palette = palette(classes)  # RGB per class id
        self.fill_id = int(engine.manifest.ignore_id)
        self.camera_info = None  # the camera's latest sensor_msgs/CameraInfo
        self._lock = threading.RLock()
        self.publishers = collections.OrderedDict()
        self.topics, self.counts = {}, {}
        self.settings = self.threshold = None
        self.configure(settings)

    def topic_names(self, settings):
        """The result topics ``settings`` ask for (``~/<name>``)."""
        names = ["class_map"]
        if settings.publish_colored_mask:
            names.append("colored_segmentation_mask")
        if settings.publish_overlay:
            names.append("overlay")
        names += self.task.ros_topics(self.engine, settings)
        if settings.publish_camera_info:
            names.append("camera_info")
        return names

    def configure(self, settings):
        """Apply ``settings``: publishers made or removed for the toggles, the threshold."""
        with self._lock:
            self.settings = settings
            self.threshold = self.task.ros_threshold(self.engine, settings)
            wanted = self.topic_names(settings)
            for name in list(self.publishers):
                if name not in wanted:
                    self._node.destroy_publisher(self.publishers.pop(name))
            for name in wanted:
                if name not in self.publishers:
                    kind = self._info if name == "camera_info" else self._image
                    pub = self._node.create_publisher(kind, self.prefix + name, output_qos())
                    self.publishers[name] = pub
                    self.topics[name] = getattr(pub, "topic_name", name)
                    self.counts.setdefault(name, 0)

    @property
    def needs_visual(self):
        """The pipeline draws the overlay only while ~/overlay has a subscriber."""
        return self._subscribed("overlay")

    def _subscribed(self, name):
        pub = self.publishers.get(name)
        if pub is None:
            return False
        count = getattr(pub, "get_subscription_count", None)  # rclpy >= Eloquent
        return count() > 0 if count is not None else True

    def on_camera_info(self, msg):
        """The camera's CameraInfo subscription: keep the newest."""
        self.camera_info = msg

    def write(self, result, visual):
        taken = self.source.take(result.index)
        if taken is None:  # cannot happen while the pipeline holds < _KEEP_HEADERS frames
            log.warning("no header for frame %d: not published", result.index)
            return
        header_in, received_at, src_hw = taken
        with self._lock:
            self._write(result, visual, header_in, fit_geometry(src_hw, self.engine.size,
                                                                 self.resize_mode))
        now = _clock()
        self.stats.add_published((now - received_at) * 1e3, now)

    def _write(self, result, visual, header_in, geometry):
        header = convert.copy_header(header_in, self._header)
        to_input = self.settings.output_size == "input"

        def sized(values, fill, nearest=True):
            return convert.unfit_map(values, geometry, fill, nearest) if to_input else values

        self.task.ros_publish(self, result, header_in, header, sized)
        class_map = self.task.ros_class_map(result)
        if class_map is not None:
            wants_colors = self._subscribed("colored_segmentation_mask")
            if self._subscribed("class_map") or wants_colors:
                class_map = sized(np.asarray(class_map).astype(np.uint8, copy=False), self.fill_id)
                if self._subscribed("class_map"):
                    self._publish("class_map", header, class_map, "mono8")
                if wants_colors:
                    self._publish("colored_segmentation_mask", header, self.palette[class_map],
                                  "rgb8")
        if visual is not None and self._subscribed("overlay"):
            self._publish("overlay", header, sized(visual, 0, nearest=False), "bgr8")
        camera_info = self.camera_info
        if camera_info is not None and self._subscribed("camera_info"):
            if to_input:  # the maps are on the image's pixels: the camera's own intrinsics
                size = (geometry.src_h, geometry.src_w)
                geometry = fit_geometry(size, size, geometry.mode)
            info = convert.fit_camera_info(camera_info, geometry, self._info)
            info.header = header
            self.publishers["camera_info"].publish(info)
            self.counts["camera_info"] += 1

    def stamped(self, header_in, seconds):
        """A result header for ``seconds`` after the input's stamp (e.g. a forecast's time)."""
        stamp = convert.stamp_plus(header_in.stamp, seconds, self._time)
        return convert.copy_header(header_in, self._header, stamp)

    def _publish(self, name, header, values, encoding):
        values = np.asarray(values)
        if encoding == "mono8":  # class ids leave the engine as uint8 (Engine.postprocess)
            values = values.astype(np.uint8, copy=False)
        self.publishers[name].publish(convert.fill_image(self._image(), header, values, encoding))
        self.counts[name] += 1

    def describe(self):
        return {"kind": self.kind, "topics": dict(self.topics), "published": dict(self.counts)}


def camera_prefix(image_topic, index, node_name):
    """Where camera ``index``'s results go with several cameras: its image topic's namespace
    + the node's name ('cam0/image' -> 'cam0/rt_ros2/'; a topic without one: 'cam<index>/')."""
    topic = image_topic.rstrip("/")
    space = topic.rsplit("/", 1)[0] if "/" in topic.lstrip("/") else "cam{}".format(index)
    return "{}/{}/".format(space, node_name)


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


def class_table(manifest, label_path="", color_map_path=""):
    """[{"id", "name", "color": [R, G, B]}] by id: the manifest's classes, with the names of
    ``label_path`` (one a line, line i is class id i, as Autoware's label files) and the
    colours of ``color_map_path`` (CSV ``id,name,r,g,b``; a header line is skipped)."""
    classes = dict((int(c["id"]), {"id": int(c["id"]), "name": c["name"],
                                   "color": [int(v) for v in c["color"]]})
                   for c in manifest.classes)
    if label_path:
        names = _read_lines(label_path, "label_path")
        names = [n for n in names if n.strip()]
        if len(names) != len(classes) or set(classes) != set(range(len(names))):
            raise UserError("parameter label_path: {} has {} names; the engine has {} classes "
                            "(ids {}..{})".format(label_path, len(names), len(classes),
                                                  min(classes), max(classes)))
        for i, name in enumerate(names):
            classes[i]["name"] = name.strip()
    if color_map_path:
        for number, line in enumerate(_read_lines(color_map_path, "color_map_path"), 1):
            fields = [f.strip() for f in line.split(",")]
            if not line.strip() or (number == 1 and not fields[0].isdigit()):
                continue  # blank, or the header
            try:
                class_id, color = int(fields[0]), [int(v) for v in fields[2:5]]
            except (ValueError, IndexError):
                color = class_id = None
            if class_id not in classes or len(color) != 3 or not all(
                    0 <= v <= 255 for v in color):
                raise UserError("parameter color_map_path: {} line {}: expected 'id,name,r,g,b' "
                                "with a class id of the engine and 0..255 colours, got {!r}"
                                .format(color_map_path, number, line.strip()))
            classes[class_id]["color"] = color
    return [classes[i] for i in sorted(classes)]


def _read_lines(path, name):
    try:
        with open(path) as handle:
            return handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError("parameter {}: cannot read {}: {}".format(name, path, first_line(exc)))


def palette(classes, size=256):
    """A (size, 3) uint8 RGB lookup table of ``class_table``'s colours (black elsewhere)."""
    table = np.zeros((size, 3), dtype=np.uint8)
    for c in classes:
        table[c["id"]] = c["color"]
    return table


def classes_description(engine, outlier_threshold=None, classes=None):
    """The JSON published on ~/classes: what each class id of the class maps means, and the
    outlier threshold in use (``outlier_threshold``; None: the engine's default)."""
    manifest = engine.manifest
    return json.dumps({
        "task": manifest.task,
        "engine": engine.path,
        "classes": classes if classes is not None else class_table(manifest),
        "color_order": "RGB",
        "ignore_id": manifest.ignore_id,
        "input_size": [int(v) for v in engine.size],
        "outlier_threshold": (engine.outlier_threshold if outlier_threshold is None
                              else outlier_threshold),
        "forecast_horizon_s": engine.horizon_s,
    }, sort_keys=True)


class NodeFault(Exception):
    """The node stopped on a fault of its own (an exception in the executor: a callback, the
    middleware), not because it was asked to: rt-ros2 prints it as one line, exit code 1."""


def _log_info(logger, message):
    """One call site per severity: rclpy refuses a call site that logs at two severities
    ("Logger severity cannot be changed between calls")."""
    _logger_call(logger, "info")(message)


def _log_warning(logger, message):
    _logger_call(logger, "warning")(message)


def _log_error(logger, message):
    _logger_call(logger, "error")(message)


def transport_hint(rmw):
    """The likely cause of camera frames lost in transport, and its fix, for middleware ``rmw``."""
    if rmw and "fastrtps" not in rmw and "fastdds" not in rmw:
        return "check the camera's middleware ({}) and its QoS".format(rmw)
    return ("likely cause: the camera's Fast DDS shared-memory segment (512 KB by default) is "
            "smaller than one image; fix: start the camera driver with "
            "FASTDDS_DEFAULT_PROFILES_FILE={} (FASTRTPS_DEFAULT_PROFILES_FILE before ROS 2 "
            "Kilted), see docs/ros2.md".format(FASTDDS_PROFILE))


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
        self._problems = {}       # kind -> message of the problems logged (one line each)
        self._history = collections.deque()  # (time, received, lost) for the transport check
        self.current_problems = []  # [(kind, level, message)] of the last diagnostics
        self.fault = None
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
        self._check_engine(settings)
        self.classes = class_table(self.engine.manifest, settings.label_path,
                                   settings.color_map_path)
        self.stats = NodeStats()
        self.started_at = _clock()
        if settings.images:   # several cameras: a source and a publisher each
            self.sources = [RosImageSource(self._input_topic(topic), settings.transport,
                                           self.logger) for topic in settings.images]
            self.publishers = [RosPublisher(self.node, source, self.engine, self.stats, settings,
                                            self.resize_mode(), self.classes,
                                            prefix=camera_prefix(topic, i, self.node.get_name()))
                               for i, (source, topic) in enumerate(zip(self.sources,
                                                                       settings.images))]
        else:
            self.sources = [RosImageSource(self._input_topic(), settings.transport, self.logger)]
            self.publishers = [RosPublisher(self.node, self.sources[0], self.engine, self.stats,
                                            settings, self.resize_mode(), self.classes)]
        self.source, self.publisher = self.sources[0], self.publishers[0]
        task_options = {"outlier_threshold": settings.outlier_threshold}
        self.visualizer = tasks.visualizer(self.engine.manifest, task_options, legend=False,
                                           hud=False, alpha=settings.overlay_alpha)
        if hasattr(self.visualizer, "lut"):  # the overlay in the colours of ~/classes
            self.visualizer.lut = np.ascontiguousarray(palette(self.classes)[:, ::-1])
        if settings.images:
            from runtime.multicam import MultiPipeline
            self.pipeline = MultiPipeline(self.sources, self.engine,
                                          outputs=[[p] for p in self.publishers],
                                          visualizer=self.visualizer)
        else:
            self.pipeline = Pipeline(self.source, self.engine, outputs=[self.publisher],
                                     visualizer=self.visualizer,
                                     task_options=task_options)
        self._classes_pub = self.node.create_publisher(String, "~/classes", latched_qos())
        self._publish_classes()
        self._diagnostics_pub = self.node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._subscribe()
        add_callback = (getattr(self.node, "add_on_set_parameters_callback", None) or
                        self.node.set_parameters_callback)  # Dashing's name
        add_callback(self.on_set_parameters)
        self._timer = self.node.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)
        info = self.engine.describe()
        _log_info(self.logger,
                  "{} ({}, {} {}, input {}x{}) on {} [{}]: publishing {}".format(
                      settings.engine, task, info.get("backend"), info.get("precision"),
                      self.engine.size[1], self.engine.size[0],
                      ", ".join(source.uri for source in self.sources), settings.transport,
                      ", ".join(sorted(t for p in self.publishers for t in p.topics.values()))))

    def _check_engine(self, settings):
        if settings.outlier_threshold is not None and self.engine.outlier_output is None:
            raise UserError("parameter outlier_threshold: {} has no outlier score (manifest "
                            "task {!r})".format(settings.engine, self.engine.manifest.task))

    def resize_mode(self):
        """How frames are fitted to the network: the resize parameter, else the engine's."""
        preprocessor = getattr(self.engine, "preprocessor", None)
        return (self.settings.resize or getattr(preprocessor, "resize", None) or
                getattr(getattr(self.engine.manifest, "input", None), "resize", None) or
                "stretch")

    def _publish_classes(self):
        from std_msgs.msg import String
        message = String()
        message.data = classes_description(self.engine, self.settings.outlier_threshold,
                                           self.classes)
        self._classes_pub.publish(message)

    # -- parameters at run time --------------------------------------------------------------

    def on_set_parameters(self, parameters):
        """rclpy's on-set-parameters callback: check the new values as at start (types,
        ranges, the engine) and apply them, or refuse them all with the reason. Read-only
        parameters never get here: rclpy refuses them by their descriptor."""
        from rcl_interfaces.msg import SetParametersResult
        values = dict(self.settings.values)
        for parameter in parameters:
            values[parameter.name] = parameter.value
        try:
            settings = Settings(values)
            self._check_engine(settings)
        except UserError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._apply(settings)
        return SetParametersResult(successful=True)

    def _apply(self, settings):
        """Make ``settings`` (only LIVE_PARAMETERS differ) the ones in use."""
        changed = [name for name in LIVE_PARAMETERS
                   if settings.values.get(name) != self.settings.values.get(name)]
        self.settings = settings
        for publisher in self.publishers:
            publisher.configure(settings)
        self.visualizer.alpha = settings.overlay_alpha
        if "outlier_threshold" in changed and self.engine.outlier_output is not None:
            threshold = self.publisher.threshold
            if getattr(self.pipeline, "counter", None) is not None:
                self.pipeline.counter.threshold = threshold
            if hasattr(self.visualizer, "threshold"):
                self.visualizer.threshold = threshold
            self._publish_classes()
        if changed:
            _log_info(self.logger, "parameters changed: {}".format(", ".join(
                "{}={}".format(name, settings.values[name]) for name in changed)))

    def _input_topic(self, image="image"):
        """``image`` ('image' by default), or the compressed topic of image_transport:
        '<image, remapped>/compressed'."""
        if self.settings.transport == "raw":
            return self._resolve(image)
        resolve = getattr(self.node, "resolve_topic_name", None)  # rclpy >= Humble
        return resolve(image) + "/compressed" if resolve else image + "/compressed"

    def _resolve(self, name):
        resolve = getattr(self.node, "resolve_topic_name", None)
        return resolve(name) if resolve else name

    def camera_info_topic(self, image="image"):
        """The camera's CameraInfo: the parameter, else 'camera_info' beside the (remapped)
        image topic, as image_transport's camera subscriber takes it."""
        if self.settings.camera_info_topic:
            return self.settings.camera_info_topic
        image = self._resolve(image)
        return image.rsplit("/", 1)[0] + "/camera_info" if "/" in image else "camera_info"

    def _subscribe(self):
        if self.settings.transport == "compressed":
            from sensor_msgs.msg import CompressedImage as kind
        else:
            from sensor_msgs.msg import Image as kind
        images = self.settings.images or ["image"]
        self._subscriptions = []
        for source, publisher, image in zip(self.sources, self.publishers, images):
            self._subscriptions.append(self._subscribe_camera(kind, source, publisher, image))

    def _subscribe_camera(self, kind, source, publisher, image):
        """Subscribe one camera's image and camera_info topics."""
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo
        from rclpy.subscription import Subscription
        # rclpy >= Iron passes message info to a two-argument callback (sequence numbers)
        callback = (source.offer_with_info if hasattr(Subscription, "CallbackType")
                    else source.offer)
        kwargs = {}
        try:  # the middleware's sample-lost event (rclpy >= Humble)
            from rclpy.event_handler import SubscriptionEventCallbacks
        except ImportError:
            try:
                from rclpy.qos_event import SubscriptionEventCallbacks
            except ImportError:
                SubscriptionEventCallbacks = None
        if SubscriptionEventCallbacks is not None:
            try:
                kwargs["event_callbacks"] = SubscriptionEventCallbacks(
                    message_lost=source.on_message_lost)
            except TypeError:  # before message_lost existed
                pass
        # best effort, keep last 5: a slow engine takes the newest frame (the source's slot).
        return (self.node.create_subscription(kind, source.uri, callback,
                                              qos_profile_sensor_data, **kwargs),
                self.node.create_subscription(CameraInfo, self.camera_info_topic(image),
                                              publisher.on_camera_info, qos_profile_sensor_data))

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
        """The executor's loop: subscription callbacks, parameters and the diagnostics timer.

        An exception here is a fault of the node (a callback, the middleware, the context
        shut down under us): it ends the run, and ``run()`` raises it as NodeFault."""
        try:
            while not self._closing.is_set():
                self._executor.spin_once(timeout_sec=_POLL_S)
        except BaseException as exc:
            if not self._closing.is_set():
                self.fault = exc
                log.debug("executor stopped", exc_info=True)
                self.pipeline.stop("fault")

    def run(self):
        """Process frames until ``stop()``; raises the error that ended the pipeline, or
        NodeFault when the executor stopped on an exception."""
        if self._spin_thread is None:
            self.start()
        for result in self.pipeline:
            self.stats.add_timings(result.timings)
        if self.fault is not None:
            raise NodeFault(self.fault_message())

    def fault_message(self):
        """The one line that says why the executor stopped (None: it did not)."""
        if self.fault is None:
            return None
        return "executor stopped: {}: {}".format(type(self.fault).__name__, first_line(self.fault))

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
        in transport before the node (RosImageSource.lost)."""
        pipe, sources = self.pipeline, self.sources
        return {"received": sum(s.received for s in sources),
                "lost": sum(s.lost for s in sources),
                "processed": pipe.frames_processed,
                "dropped": sum(s.dropped for s in sources) + pipe.frames_dropped,
                "refused": pipe.frames_corrupt,
                "published": self.stats.published}

    def publisher_count(self):
        """Publishers matched on the input topic."""
        return sum(self.node.count_publishers(source.uri) for source in self.sources)

    def problems(self, fps, counts, now):
        """What is wrong with the input now: [(kind, level name, message)], worst first."""
        settings, found = self.settings, []
        publishers = self.publisher_count()
        for source in self.sources:   # each camera on its own: one silent camera is named
            last = source.last_received_at
            silent = now - (last if last is not None else self.started_at)
            if not settings.stale_timeout > 0 or silent < settings.stale_timeout:
                continue
            matched = self.node.count_publishers(source.uri)
            # a matched publisher and nothing arrives: the transport may lose every frame
            # (a middleware without sample-lost events says nothing else)
            hint = "; if it is publishing, {}".format(
                transport_hint(_rmw_implementation())) if matched else ""
            kind = "stale" if len(self.sources) == 1 else "stale " + source.uri
            found.append((kind, "ERROR" if last is not None else "WARN",
                          "{} for {:.1f} s on {} ({} publisher(s) matched){}".format(
                              "no image" if last is not None else "no image received yet",
                              silent, source.uri, matched, hint)))
        lost = self._lost_recently(counts, now)
        if lost is not None:
            found.append(("transport", "WARN",
                          "{} of {} images sent in the last {:g} s were lost in transport "
                          "({} publisher(s) matched); {}".format(
                              lost[0], lost[1], TRANSPORT_WINDOW_S, publishers,
                              transport_hint(_rmw_implementation()))))
        if settings.min_fps > 0 and fps < settings.min_fps:
            found.append(("rate", "WARN", "{:.1f} FPS, below min_fps {:g}{}".format(
                fps, settings.min_fps, "" if counts["received"] else " (no image received yet)")))
        found.sort(key=lambda p: p[1] != "ERROR")
        return found

    def _lost_recently(self, counts, now):
        """(lost, sent) over the last TRANSPORT_WINDOW_S when at least TRANSPORT_LOST_SHARE of
        what the publishers sent, and TRANSPORT_LOST_LEAST frames or all of them, never
        arrived; else None."""
        history = self._history
        history.append((now, counts["received"], counts["lost"]))
        while len(history) > 1 and history[1][0] <= now - TRANSPORT_WINDOW_S:
            history.popleft()
        then, received, lost = history[0]
        lost, received = counts["lost"] - lost, counts["received"] - received
        if lost > 0 and lost >= TRANSPORT_LOST_SHARE * (lost + received) and (
                lost >= TRANSPORT_LOST_LEAST or received == 0):
            return lost, lost + received
        return None

    def diagnostic_status(self, window, times, elapsed_s, now=None):
        """One diagnostic_msgs/DiagnosticStatus for a window of ``elapsed_s`` seconds."""
        from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
        now = _clock() if now is None else now
        fps = len(times) / elapsed_s if elapsed_s > 0 else 0.0
        counts = self.counters()
        info = self.engine.describe()
        status = DiagnosticStatus()
        status.name = "{}: perception".format(self.node.get_fully_qualified_name()
                                              if hasattr(self.node, "get_fully_qualified_name")
                                              else self.node.get_name())
        status.hardware_id = str(info.get("engine") or self.settings.engine)
        problems = self.problems(fps, counts, now)
        self.current_problems = problems
        if problems:
            status.level = max(_level(level) for _, level, _ in problems)
            status.message = "; ".join(message for _, _, message in problems)
        else:
            status.level = _level("OK")
            status.message = "{:.1f} FPS".format(fps)
        settings = self.settings
        values = [("fps", "{:.2f}".format(fps)), ("min_fps", "{:g}".format(settings.min_fps)),
                  ("stale_timeout", "{:g}".format(settings.stale_timeout)),
                  ("input_problem", "; ".join(m for _, _, m in problems) or "none")]
        values += [("frames_" + name, str(value)) for name, value in sorted(counts.items())]
        values += [("frames_lost_reported", str(sum(s.lost_reported for s in self.sources))),
                   ("frames_lost_in_sequence", str(sum(s.lost_in_sequence for s in self.sources))),
                   ("input_publishers", str(self.publisher_count()))]
        for name in ("receive_to_publish",) + NodeStats.STAGES:
            stats = summarize(window.get(name, []))
            for key in ("p50", "p90", "p99", "max"):
                value = stats[key]
                values.append(("{}_{}_ms".format(name, key),
                               "{:.2f}".format(value) if value is not None else "-"))
        threshold = self.publisher.threshold
        # The core's own backend ("onnxruntime 1.32.0 cpu") where libswiftrt runs the engine.
        backend = info.get("core_backend") or info.get("backend")
        values += [("backend", str(backend)), ("precision", str(info.get("precision"))),
                   ("task", str(self.engine.manifest.task)),
                   ("input_size", "{}x{}".format(self.engine.size[1], self.engine.size[0])),
                   ("input_topic", ", ".join(s.uri for s in self.sources)),
                   ("transport", settings.transport),
                   ("resize", self.resize_mode()), ("output_size", settings.output_size),
                   ("outlier_threshold", "-" if threshold is None else "{:g}".format(threshold)),
                   ("published_topics", ", ".join(sorted(
                       [t for p in self.publishers for t in p.topics.values()]
                       if len(self.publishers) > 1 else self.publisher.publishers)))]
        status.values = [KeyValue(key=k, value=v) for k, v in values]
        return status

    def publish_diagnostics(self):
        """The timer callback: the last second's rate and latencies on /diagnostics, and a log
        line when a problem starts or ends (not one a second)."""
        from diagnostic_msgs.msg import DiagnosticArray
        now = _clock()
        elapsed = now - self._last_tick if self._last_tick is not None else DIAGNOSTICS_PERIOD_S
        self._last_tick = now
        window, times = self.stats.take_window()
        array = DiagnosticArray()
        array.header.stamp = self.node.get_clock().now().to_msg()
        status = self.diagnostic_status(window, times, elapsed, now)
        array.status = [status]
        self._diagnostics_pub.publish(array)
        current = dict((kind, (level, message)) for kind, level, message in self.current_problems)
        for kind, (level, message) in current.items():
            if kind not in self._problems:
                if level == "ERROR":
                    _log_error(self.logger, message)
                else:
                    _log_warning(self.logger, message)
        for kind in self._problems:
            if kind not in current:
                _log_info(self.logger, "{} (now {})".format({
                    "rate": "back above min_fps {:g}".format(self.settings.min_fps),
                    "stale": "images arrive again on {}".format(self.source.uri),
                    "transport": "no more images lost in transport"}.get(
                        kind, "images arrive again on {}".format(kind[len("stale "):])),
                    status.message))
        self._problems = current

    def summary(self):
        """Pipeline.summary() with ROS's counters and rates.

        ``read`` and ``dropped`` include the frames replaced in the source's slot;
        ``wall_s`` and the rates run from the first frame received to the last result
        published (a node waits for its camera: time before the first frame is no
        measure of its speed).
        """
        summary = self.pipeline.summary()
        if self.fault is not None and summary.get("error") is None:
            summary["error"] = self.fault_message()
        frames = summary["frames"]
        before = sum(s.dropped for s in self.sources)   # replaced in a source's slot
        frames["read"] += before
        frames["dropped"] += before
        frames["received"] = sum(s.received for s in self.sources)
        frames["published"] = self.stats.published
        frames["lost"] = sum(s.lost for s in self.sources)
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


def _rmw_implementation():
    """The middleware in use (rmw_fastrtps_cpp, ...), or '' where rclpy cannot say."""
    try:
        from rclpy.utilities import get_rmw_implementation_identifier
        return get_rmw_implementation_identifier()
    except Exception:
        return ""
