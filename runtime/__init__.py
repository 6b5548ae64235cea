"""swiftrt device runtime: numpy + OpenCV + one inference backend, never torch.

Three objects, in the spirit of jetson-inference (see README "Embedding"):
``runtime.sources`` (where frames come from), ``runtime.engine.Engine`` (the network),
``runtime.outputs`` (where results go). This module stays light on purpose: the
export side imports ``runtime.manifest`` without pulling OpenCV.
"""
__version__ = "0.1.0"
