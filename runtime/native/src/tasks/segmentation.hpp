// The segmentation family: one model, camera frame in, class map (or logits) out. The outlier
// family (outlier.cpp) is this plus a score output.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../tensor.hpp"
#include "task.hpp"

namespace srt {

class SegmentationTask : public Task {
 public:
  // `manifest`: a model whose manifest's task is this family's (load_frame_model).
  SegmentationTask(ModelManifest manifest, const OpenOptions &options);
  const InputSpec &frame_input() const override { return m_.input; }
  Backend &frame_backend() override { return *backend_; }
  double finish(const FrameDone &frame, srt_result *r) override;  // the class map
  void check_result(const srt_result &r) const override;

 protected:
  ModelManifest m_;
  std::unique_ptr<Backend> backend_;
  MapOutput map_;
  std::vector<float> scratch_;  // kept from frame to frame: no allocation per frame
};

// A single model's manifest (an artifact's sidecar) for the family `task`: loaded, checked (its
// task, a camera-frame input).
ModelManifest load_frame_model(const Resolved &where, const OpenOptions &options, const std::string &task);

}  // namespace srt
