"""What one frame gives (``Result``), and which manifests are not a single engine.

Below both engines (runtime.engine, the native core's runtime.backends.native), so that
neither imports the other for them.
"""
from runtime import manifest as manifest_mod
from runtime.errors import ManifestError


class Result(object):
    """What one frame gives: the fitted frame, the class map, raw outputs and stage timings (ms).

    ``outlier_score``: (H, W) float32 1 - P(inlier) for engines whose manifest has an
    ``outlier_score`` output (task ``outlier``), None otherwise.
    """

    __slots__ = ("frame", "class_map", "outputs", "timings", "fit", "outlier_score")

    def __init__(self, frame, class_map, outputs, timings, fit=None, outlier_score=None):
        self.frame = frame
        self.class_map = class_map
        self.outputs = outputs
        self.timings = timings
        self.fit = fit
        self.outlier_score = outlier_score


def refuse_forecast_parts(path, manifest):
    """A forecast bundle is three networks and a ring buffer: not one Engine (say where to go).

    ``manifest``: the runtime.manifest.Manifest of ``path``."""
    task = manifest.task
    if task == "forecast":
        raise ManifestError("{} is a forecast bundle: open it with runtime.open_engine (or "
                            "runtime.forecast.ForecastEngine), or give it to rt-segment --engine"
                            .format(path))
    if task == "forecast_stage":
        raise ManifestError("{} is the '{}' stage of a forecast bundle: give the bundle's {} "
                            "to rt-segment --engine (or runtime.open_engine)".format(
                                path, manifest.stage, manifest_mod.BUNDLE_NAME))
