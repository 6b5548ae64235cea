"""What one frame gives (``Result``, also the pipeline's FrameResult), and which manifests are
not a single engine.

Below the engines (runtime.backends.native) and the pipeline, so that neither imports the
other for them.
"""
from runtime import manifest as manifest_mod
from runtime.errors import ManifestError


class Result(object):
    """One frame's result: what Engine.segment returns and what iterating a Pipeline yields.

    frame: the frame (Engine.segment: the fitted frame, as the network saw it; the pipeline:
    the frame as read); fitted: the frame fitted to the network input; fit: how
    (runtime.core_preprocess.Fit); class_map: (H, W) uint8 class ids at the network resolution
    (None while a forecaster warms up); outputs: raw engine outputs; timings: ms per stage
    (preprocess, inference, postprocess; the pipeline adds read and output);
    outlier_score: (H, W) float32 1 - P(inlier) for engines whose manifest has an
    ``outlier_score`` output (task ``outlier``), None otherwise.

    Set by the pipeline only (None from Engine.segment): index: position of the frame in the
    source (counting dropped and corrupt frames); capture_time: time.monotonic() when the
    frame was read; frame_time: the time the engine was given (media time for files with a
    frame rate, capture time for live sources, None when unknown); age_ms: capture to result
    (outputs written); visual: the rendered picture, if an output needed one;
    outlier_pixels: pixels of the score above the threshold (None without a score);
    details: what the engine's ``finish_frame`` says of the frame (e.g. a ForecastFrame);
    camera: the camera's index in a multi-camera run (runtime.multicam), else None.
    """

    __slots__ = ("frame", "class_map", "outputs", "timings", "fit", "outlier_score", "fitted",
                 "index", "capture_time", "frame_time", "age_ms", "visual", "outlier_pixels",
                 "details", "camera")

    def __init__(self, frame, class_map=None, outputs=None, timings=None, fit=None,
                 outlier_score=None, fitted=None, index=None, capture_time=None,
                 frame_time=None):
        self.frame = frame
        self.class_map = class_map
        self.outputs = outputs
        self.timings = timings
        self.fit = fit
        self.outlier_score = outlier_score
        self.fitted = fitted
        self.index = index
        self.capture_time = capture_time
        self.frame_time = frame_time
        self.age_ms = None
        self.visual = None
        self.outlier_pixels = None
        self.details = None
        self.camera = None


def refuse_forecast_parts(path, manifest):
    """A forecast bundle is three networks and a ring buffer: not one Engine (say where to go).

    ``manifest``: the runtime.manifest.Manifest of ``path``."""
    task = manifest.task
    if task == "forecast":
        raise ManifestError("{} is a forecast bundle: open it with runtime.open_engine, "
                            "or give it to rt-segment --engine"
                            .format(path))
    if task == "forecast_stage":
        raise ManifestError("{} is the '{}' stage of a forecast bundle: give the bundle's {} "
                            "to rt-segment --engine (or runtime.open_engine)".format(
                                path, manifest.stage, manifest_mod.BUNDLE_NAME))
