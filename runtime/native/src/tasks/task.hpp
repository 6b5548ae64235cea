// One model family inside the core (segmentation, outlier, forecast): what it requires of its
// manifest, the models it opens (the frame model first), what it makes of their outputs and which
// result fields it fills. Everything else is engine.cpp's, the same for every family: the backend
// choice (open_backend), the frame's preprocessing (host or CUDA), asynchronous runs and timings.
// A new family is one file here (src/tasks/<family>.cpp) and one line in task.cpp's table.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../backend.hpp"
#include "../engine.hpp"
#include "../manifest.hpp"
#include "swiftrt.h"

namespace srt {

// The frame the engine ran through the frame model: its time and the engine's clock marks.
struct FrameDone {
  bool has_timestamp = false;
  double timestamp = 0;         // s, when has_timestamp
  double preprocessed_ms = 0;   // now_ms() when the frame model's input was written
  size_t slot = 0;              // the batch slot the frame ran in (a batch-N model's outputs hold N)
};

class Task {
 public:
  virtual ~Task() = default;
  // The model the camera frame feeds: its frame input and its backend (opened by the task).
  virtual const InputSpec &frame_input() const = 0;
  virtual Backend &frame_backend() = 0;
  // The frame model ran (its outputs are in frame_backend()): the family's outputs, into r's
  // buffers and fields (r->outlier_pixels is -1 unless set here). Returns the milliseconds spent
  // writing the caller's buffers (r->postprocess_ms); the engine sets the other timings from it.
  virtual double finish(const FrameDone &frame, srt_result *r) = 0;
  // Refuses (SRT_ERROR_INVALID_ARGUMENT) result buffers this family never writes.
  virtual void check_result(const srt_result &r) const = 0;
  // More models run after the frame model, on the host's schedule (a forecast bundle): the
  // engine takes no CUDA frames and gives no completion event; one camera per batch.
  virtual bool runs_after_frame_model() const { return false; }
  virtual void reset() {}

  struct srt_engine_info info{};  // the engine's info, filled by the task except struct_size
  std::vector<ClassSpec> classes;
};

// The family the manifest's task names ("segmentation", "outlier", "forecast"), opened.
std::unique_ptr<Task> open_task(const Resolved &where, const OpenOptions &options);

// Refusals shared by the families' check_result.
void refuse_outlier_buffers(const srt_result &r);  // outlier_score, outlier_mask
void refuse_forecast_map(const srt_result &r);

}  // namespace srt
