// The engine behind the C ABI, the same for every model family: the backend choice, the camera
// frame's preprocessing (host or CUDA), asynchronous runs, timings. What a family does with the
// frame model's outputs (and any models after it) is its task's (src/tasks/).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend.hpp"
#include "manifest.hpp"
#include "preprocess.hpp"
#include "swiftrt.h"
#ifdef SWIFTRT_WITH_TENSORRT
#include "preprocess_cuda.hpp"
#endif

namespace srt {

struct OpenOptions {
  int backend = SRT_BACKEND_AUTO;
  int threads = 0;
  int resize = SRT_RESIZE_MANIFEST;
  bool use_outlier_threshold = false;
  float outlier_threshold = 0.5f;
  bool decode_current = false;
  int device = 0;
  int spin = -1;          // -1: spin for one model, not for a bundle's stages (run one after another)
  std::string providers;  // ONNX Runtime execution providers (comma list)
  bool allow_legacy = false;  // manifests without manifest_sha256, artifacts without sha256
};

class Task;
struct FrameDone;

// One frame of a batch call (srt_engine_run_batch), checked by api.cpp, and where its result goes.
struct BatchItem {
  FrameView view;
  bool has_timestamp;
  double timestamp;
  srt_result *result;
};

class Engine {
 public:
  Engine(std::unique_ptr<Task> task, const OpenOptions &options);
  ~Engine();
  // Runs one frame; the result's buffers were checked (check_result) by the caller (api.cpp).
  void run(const FrameView &frame, bool has_timestamp, double timestamp, srt_result *result);
  // srt_engine_run_async / srt_engine_wait: start() preprocesses the frame and queues the frame
  // model, finish() waits for it and completes the result (the task's part included).
  void start(const FrameView &frame, bool has_timestamp, double timestamp, srt_result *result);
  void finish(srt_result *result);
  // Several cameras' frames, each into its own result: one after another for a batch-1 model,
  // up to N per inference (each in its own batch slot) for a batch-N model.
  void run_batch(std::vector<BatchItem> &items);
  void reset();
  void *completion_event();  // cudaEvent_t after the last start(); nullptr: none
  // The family's refusals of result buffers it never writes (SRT_ERROR_INVALID_ARGUMENT).
  void check_result(const srt_result &result) const;
  // The family keeps one stream's past frames: one camera's frame per srt_engine_run_batch.
  bool one_stream() const;

  struct srt_engine_info info{};  // complete except struct_size
  std::vector<ClassSpec> classes;

 private:
#ifdef SWIFTRT_WITH_TENSORRT
  DevicePreprocessor gpu_pre_;  // before task_ (its backends): freed after they waited for their last run
#endif
  // The frame's tensor into batch slot `slot` of the frame model's input (on the GPU for a
  // CUDA frame, on `stream`); true when it went to the device.
  bool preprocess(const FrameView &frame, size_t slot, void *stream);
  FrameDone done(size_t slot) const;

  std::unique_ptr<Task> task_;
  std::unique_ptr<Preprocessor> pre_;
  size_t batch_ = 1, input_slot_bytes_ = 0;  // the frame model's batch, one slot of its input
  bool has_timestamp_ = false;
  double timestamp_ = 0, t0_ = 0, t1_ = 0;
};

std::unique_ptr<Engine> open_engine(const std::string &path, const OpenOptions &options);

// ---- what every task shares (engine.cpp) -------------------------------------------------------

double now_ms();  // steady clock
// The backend for one model of `m` (options' choice, else by the artifact's suffix), the artifact
// checked against its sha256 and the manifest's tensors against the model's. `stage`: one of a
// bundle's models, which run one after another (their threads must not spin).
std::unique_ptr<Backend> open_backend(const ModelManifest &m, const OpenOptions &o, bool stage = false);
void copy_text(char *dst, size_t size, const std::string &text);  // into a fixed char[] of the ABI

}  // namespace srt
