#include "segmentation.hpp"

#include "../error.hpp"

namespace srt {

ModelManifest load_frame_model(const Resolved &where, const OpenOptions &o, const std::string &task) {
  ModelManifest m = load_model_manifest(where.artifact, where.manifest, o.allow_legacy);
  if (m.task != task) fail(SRT_ERROR_INTERNAL, where.manifest + ": task '" + m.task + "' opened as '" + task + "'");
  if (m.input.kind != "frame") fail(SRT_ERROR_MANIFEST, where.manifest + ": the input must be a camera frame");
  for (const TensorSpec &out : m.outputs)  // batch item i of every output is frame i's
    if (out.shape.empty() || out.shape[0] != m.input.shape[0])
      fail(SRT_ERROR_MANIFEST, where.manifest + ": output '" + out.name + "' has shape " + join_shape(out.shape) +
                                   " but the input has batch " + std::to_string(m.input.shape[0]));
  return m;
}

SegmentationTask::SegmentationTask(ModelManifest manifest, const OpenOptions &o) : m_(std::move(manifest)) {
  backend_ = open_backend(m_, o);
  map_.bind(m_.output("class_map"), m_.output("logits"), m_.manifest_path);
  classes = m_.classes;
  info.task = SRT_TASK_SEGMENTATION;
  info.num_classes = static_cast<int32_t>(classes.size());
  info.output_height = map_.height, info.output_width = map_.width;
  copy_text(info.precision, sizeof(info.precision), m_.precision);
  copy_text(info.arch, sizeof(info.arch), m_.arch);
}

double SegmentationTask::finish(const FrameDone &frame, srt_result *r) {
  double t = now_ms();
  if (r->class_map) map_.decode(*backend_, frame.slot, r->class_map, scratch_);
  return now_ms() - t;
}

void SegmentationTask::check_result(const srt_result &r) const {
  refuse_outlier_buffers(r);
  refuse_forecast_map(r);
}

std::unique_ptr<Task> open_segmentation(const Resolved &where, const OpenOptions &o) {
  ModelManifest m = load_frame_model(where, o, "segmentation");
  if (m.output("outlier_score"))
    fail(SRT_ERROR_MANIFEST, where.manifest + ": task 'segmentation' with an outlier_score output (an outlier "
                                              "model's manifest says task 'outlier')");
  return std::unique_ptr<Task>(new SegmentationTask(std::move(m), o));
}

}  // namespace srt
