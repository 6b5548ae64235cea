// Device frames (SRT_MEMORY_CUDA, TensorRT builds): the frame is fitted, colour-ordered and
// normalized on the GPU straight into the engine's device input buffer, one CUDA thread per
// input pixel running preprocess_pixel (preprocess_kernel.hpp), the same function the CPU test
// compares with the host Preprocessor. Compiled by nvcc (make native-check); NOT RUN ON A GPU.
#pragma once

#include <cstddef>
#include <cstdint>

#include "preprocess.hpp"

namespace srt {

class DevicePreprocessor {
 public:
  DevicePreprocessor() = default;
  DevicePreprocessor(const DevicePreprocessor &) = delete;
  DevicePreprocessor &operator=(const DevicePreprocessor &) = delete;
  ~DevicePreprocessor();
  // Queues the preprocessing of `frame` (device memory) into `device_tensor` on `stream` (a
  // cudaStream_t). The resize tables are copied to the device when the frame size changes.
  void run(Preprocessor &host, const FrameView &frame, void *device_tensor, void *stream);

 private:
  void upload(const PreprocessParams &p, void *stream);
  int sw_ = -1, sh_ = -1, nw_ = -1, nh_ = -1;
  void *tables_ = nullptr;      // device: xofs | alpha | yofs | beta
  size_t tables_bytes_ = 0;
  void *staging_ = nullptr;     // pinned host copy of the tables for the upload
  PreprocessParams device_{};   // params with the device tables' addresses
};

// Launches the kernel (preprocess_cuda.cu); p's pointers are device pointers.
void launch_preprocess(const PreprocessParams &p, void *device_tensor, void *stream);

}  // namespace srt
