"""swiftrt device runtime: numpy + OpenCV + one inference backend, never torch.

Three objects, in the spirit of jetson-inference (see docs/streaming.md, "Embedding"):
``runtime.sources`` (where frames come from), ``runtime.engine.Engine`` (the network),
``runtime.outputs`` (where results go). This module stays light on purpose: the
export side imports ``runtime.manifest`` without pulling OpenCV.
"""
__version__ = "0.1.0"


def open_engine(path, **options):
    """An Engine, or a ForecastEngine for a forecast bundle (see runtime.engine.open_engine)."""
    from runtime.engine import open_engine as _open_engine  # lazy: keeps this module light
    return _open_engine(path, **options)
