// Engines behind the C ABI: one artifact (segmentation, outlier) or a forecast bundle.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "manifest.hpp"
#include "preprocess.hpp"
#include "swiftrt.h"

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

// One frame of a batch call (srt_engine_run_batch), checked by api.cpp, and where its result goes.
struct BatchItem {
  FrameView view;
  bool has_timestamp;
  double timestamp;
  srt_result *result;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Runs one frame; the result's buffers were checked against info by the caller (api.cpp).
  virtual void run(const FrameView &frame, bool has_timestamp, double timestamp, srt_result *result) = 0;
  // Several cameras' frames, each into its own result. Default: one run() each; an engine over
  // a batch-N artifact fills up to N batch slots per inference.
  virtual void run_batch(std::vector<BatchItem> &items) {
    for (BatchItem &item : items) run(item.view, item.has_timestamp, item.timestamp, item.result);
  }
  virtual void reset() {}
  // srt_engine_run_async / srt_engine_wait: start() queues the frame, finish() completes it into
  // the same result. Default (no GPU): the whole run in start(), nothing left for finish().
  virtual void start(const FrameView &frame, bool has_timestamp, double timestamp, srt_result *result) {
    run(frame, has_timestamp, timestamp, result);
  }
  virtual void finish(srt_result *) {}
  virtual void *completion_event() { return nullptr; }  // cudaEvent_t after the last start(); nullptr: none

  struct srt_engine_info info{};  // complete except struct_size
  std::vector<ClassSpec> classes;
  bool decode_current = false;
};

std::unique_ptr<Engine> open_engine(const std::string &path, const OpenOptions &options);

}  // namespace srt
