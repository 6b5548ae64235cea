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

  // Asynchronous runs and device frames (TensorRT). A backend without a GPU runs in enqueue()
  // and has no device buffers, stream or event.
  virtual bool has_device() const { return false; }
  // Device buffer of an input (device frames are preprocessed straight into it); nullptr: none.
  virtual void *device_buffer(const std::string &, bool) { return nullptr; }
  // Queues the host inputs' copies (all of them unless input_on_device), the inference and the
  // outputs' copies to their host buffers on `stream` (a cudaStream_t; nullptr: the backend's own),
  // then records the completion event. synchronize() waits for it.
  virtual void enqueue(void *stream, bool input_on_device) {
    (void)stream, (void)input_on_device;
    run();
  }
  virtual void synchronize() {}
  virtual void *completion_event() { return nullptr; }  // a cudaEvent_t
  virtual void *own_stream() { return nullptr; }        // the backend's cudaStream_t
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
