"""Serving swiftrt engines from other people's servers: Triton Inference Server (triton.py:
a model repository; triton_model.py: the Python-backend model it holds; triton_server.py: a
local tritonserver from the nvidia-pytriton wheel, for tests and benchmarks)."""
