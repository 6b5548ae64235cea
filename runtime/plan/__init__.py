"""Device side of TensorRT: the static compatibility check, plan building and calibration caches.

Needs no torch and no ``onnx`` (Python 3.6+): a user copies an exported ``engines/X.onnx`` and
its manifest to the Jetson and builds the plan there.
"""
