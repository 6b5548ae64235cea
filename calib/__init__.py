"""Calibration and reduced precision on any CPU (ONNX Runtime, no torch).

* calib.images    calibration image sets: folder / glob / video / generated, seeded, streamed
* calib.ranges    activation ranges from ONNX Runtime's calibrators (entropy, percentile, minmax)
* calib.qdq       INT8 QDQ models (TensorRT-style and CPU-fast)
* calib.int8      ``export_int8``: calibration + quantization + accuracy cost, and TensorRT's calibration
                  cache and amax table (their format: runtime/plan/calibration_cache.py)
* calib.fp16      FP16 models with chosen nodes kept in FP32, and ``export_fp16``
* calib.accuracy  cost against FP32 (mIoU drop or argmax agreement), keep-fp32 search, latency check

Nothing is imported here: each module pulls in only what it needs.
"""
