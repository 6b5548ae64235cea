// The outlier family: a segmentation model with a second output, a per-pixel outlier score
// (1 - P(inlier)), thresholded into a mask and a count.
#include "../error.hpp"
#include "segmentation.hpp"

namespace srt {
namespace {

class OutlierTask : public SegmentationTask {
 public:
  OutlierTask(ModelManifest manifest, const OpenOptions &o) : SegmentationTask(std::move(manifest), o) {
    const std::string &where = m_.manifest_path;
    score_ = m_.output("outlier_score");
    if (!score_) fail(SRT_ERROR_MANIFEST, where + ": task 'outlier' without an output with meaning outlier_score");
    if (!is_float(score_->dtype)) fail(SRT_ERROR_MANIFEST, where + ": the outlier_score output must be float");
    if (score_->count() / static_cast<size_t>(score_->shape[0]) != static_cast<size_t>(map_.height) * map_.width)
      fail(SRT_ERROR_MANIFEST, where + ": the outlier_score output is not the class map's size");
    threshold_ = o.use_outlier_threshold ? o.outlier_threshold : m_.outlier_threshold;
    info.task = SRT_TASK_OUTLIER;
    info.has_outlier_score = 1;
    info.outlier_threshold = threshold_;
  }

  // The class map, then the score (into the caller's buffer or ours), the mask and the count.
  double finish(const FrameDone &frame, srt_result *r) override {
    double t = now_ms();
    SegmentationTask::finish(frame, r);
    size_t n = static_cast<size_t>(map_.height) * map_.width;
    const void *src =
        static_cast<const char *>(backend_->buffer(score_->name, false)) + frame.slot * n * dtype_size(score_->dtype);
    const float *score;
    if (r->outlier_score) {
      to_float(src, score_->dtype, n, r->outlier_score);
      score = r->outlier_score;
    } else if (score_->dtype == DType::F32) {
      score = static_cast<const float *>(src);
    } else {
      scratch_.resize(n);
      to_float(src, score_->dtype, n, scratch_.data());
      score = scratch_.data();
    }
    int64_t count = 0;
    for (size_t i = 0; i < n; ++i) {
      bool out = score[i] > threshold_;
      count += out;
      if (r->outlier_mask) r->outlier_mask[i] = out;
    }
    r->outlier_pixels = count;
    return now_ms() - t;
  }

  void check_result(const srt_result &r) const override { refuse_forecast_map(r); }

 private:
  const TensorSpec *score_ = nullptr;
  float threshold_ = 0.5f;
};

}  // namespace

std::unique_ptr<Task> open_outlier(const Resolved &where, const OpenOptions &o) {
  return std::unique_ptr<Task>(new OutlierTask(load_frame_model(where, o, "outlier"), o));
}

}  // namespace srt
