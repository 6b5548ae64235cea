// The one small interface every inference backend implements inside the core (like
// runtime/backends/base.py): named host buffers in, run, named host buffers out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "manifest.hpp"

namespace srt {

struct BackendTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual int kind() const = 0;                 // SRT_BACKEND_*
  virtual std::string describe() const = 0;     // "openvino 2026.4.1", "tensorrt 10.3.0"
  // Host buffer of a tensor (its shape and dtype), valid for the backend's life. Inputs are
  // filled before run(); outputs hold the last run's results. Throws when the name is unknown.
  virtual BackendTensor tensor(const std::string &name, bool input) const = 0;
  virtual void *buffer(const std::string &name, bool input) = 0;
  virtual void run() = 0;                       // complete when it returns
  virtual std::vector<std::string> names(bool input) const = 0;
};

struct BackendOptions {
  int threads = 0;
  int device = 0;
  int spin = -1;          // ONNX Runtime: 1 spin, 0 sleep, -1 ONNX Runtime's default
  std::string providers;  // ONNX Runtime: comma list; empty = TensorRT, CUDA, CPU as available
};

std::unique_ptr<Backend> open_openvino(const ModelManifest &manifest, const BackendOptions &options);
std::unique_ptr<Backend> open_onnxruntime(const ModelManifest &manifest, const BackendOptions &options);
std::unique_ptr<Backend> open_tensorrt(const ModelManifest &manifest, const BackendOptions &options);

}  // namespace srt
