// The forecast family: a bundle of three models (features -> f2f -> decoder) and the ring of
// past features between them (as the Python engine ran them before issue 26): the frame feeds the
// features stage (the engine's frame model); once the ring holds a feature map near every past
// offset, f2f predicts the future features and the decoder turns them into the forecast map.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "../error.hpp"
#include "../tensor.hpp"
#include "task.hpp"

namespace srt {
namespace {

// A rate as runtime/manifest.py prints it in the same message: 30.0, 12.5.
std::string number_text(double v) {
  char text[32];
  std::snprintf(text, sizeof(text), v == std::floor(v) && std::fabs(v) < 1e15 ? "%.1f" : "%g", v);
  return text;
}

std::string number_text(const Json &j) { return j.is_number() ? number_text(j.number()) : std::string("a non-number"); }

const double kEps = 1e-6;  // s: a frame exactly half an interval away still counts
const int kSlack = 2;
const double kMaxRateFactor = 8.0;

// capacity_for: the ring's size
int capacity_for(double oldest_offset_s, double frame_rate, double source_rate) {
  double rate = frame_rate;
  if (source_rate > 0) rate = std::min(std::max(rate, source_rate), kMaxRateFactor * frame_rate);
  return static_cast<int>(std::ceil(std::fabs(oldest_offset_s) * rate - kEps)) + 1 + kSlack;
}

// FeatureRing: (time, features) in time order, bounded. A ring of slots
// whose feature storage is reused: no allocation per frame once every slot has been filled.
class FeatureRing {
 public:
  explicit FeatureRing(int capacity = 1) : capacity_(std::max(1, capacity)), slots_(static_cast<size_t>(capacity_)) {}
  int capacity() const { return capacity_; }
  void resize(int capacity) {  // keeps the newest entries
    capacity = std::max(1, capacity);
    if (capacity == capacity_) return;
    std::vector<Slot> slots(static_cast<size_t>(capacity));
    size_t keep = std::min(size_, static_cast<size_t>(capacity));
    for (size_t i = 0; i < keep; ++i) {
      Slot &from = at(size_ - keep + i);
      slots[i].first = from.first;
      slots[i].second.swap(from.second);
    }
    slots_.swap(slots);
    capacity_ = capacity, head_ = 0, size_ = keep;
  }
  void clear() { head_ = 0, size_ = 0; }
  // The storage of the new newest entry (the dropped oldest one's, when the ring is full).
  std::vector<float> &add(double t, size_t n) {
    if (size_ && t < at(size_ - 1).first) clear();
    if (size_ == static_cast<size_t>(capacity_)) head_ = (head_ + 1) % slots_.size(), --size_;
    Slot &slot = at(size_);
    ++size_;
    slot.first = t;
    slot.second.resize(n);
    return slot.second;
  }
  // For each offset the entry nearest to now + offset (ties: the newer); false when one is out of tolerance.
  bool select(double now, const std::vector<double> &offsets, double tolerance, std::vector<const std::vector<float> *> &out,
              std::vector<double> &times) const {
    out.clear();
    times.clear();
    if (!size_) return false;
    bool complete = true;
    size_t last = size_ - 1;
    for (double offset : offsets) {
      double target = now + offset;
      size_t lo = 0, hi = size_;  // bisect_left
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (at(mid).first < target) lo = mid + 1;
        else hi = mid;
      }
      size_t index = std::min(lo, last);
      if (index > 0 && target - at(index - 1).first < at(index).first - target) --index;
      double err = at(index).first - target;
      out.push_back(&at(index).second);
      times.push_back(at(index).first);
      if (std::fabs(err) > tolerance + kEps) complete = false;
    }
    return complete;
  }

 private:
  using Slot = std::pair<double, std::vector<float>>;
  Slot &at(size_t i) { return slots_[(head_ + i) % slots_.size()]; }
  const Slot &at(size_t i) const { return slots_[(head_ + i) % slots_.size()]; }
  int capacity_;
  std::vector<Slot> slots_;
  size_t head_ = 0, size_ = 0;  // oldest entry, number of entries
};

class ForecastTask : public Task {
 public:
  ForecastTask(const std::string &manifest_path, const OpenOptions &o) {
    b_ = load_bundle_manifest(manifest_path, o.allow_legacy);
    const char *names[3] = {"features", "f2f", "decoder"};
    for (int i = 0; i < 3; ++i) {
      stages_[i] = load_model_manifest(b_.stage_paths[i], b_.stage_paths[i] + ".json", o.allow_legacy);
      if (stages_[i].task != "forecast_stage" || stages_[i].stage != names[i])
        bad(std::string("stage file ") + b_.stage_paths[i] + " is not the '" + names[i] + "' stage");
      if (!b_.stage_sha256[i].empty() && stages_[i].sha256 != b_.stage_sha256[i])
        bad(std::string("stage '") + names[i] + "' (" + b_.stage_paths[i] + ") is not the one this forecast.json was "
            "published with (its sha256 differs: a mixed or half re-exported bundle); export the bundle again");
    }
    check_stages();
    for (int i = 0; i < 3; ++i) backends_[i] = open_backend(stages_[i], o, true);
    features_out_ = stages_[0].output("features");
    f2f_out_ = stages_[1].output("features");
    map_.bind(stages_[2].output("class_map"), stages_[2].output("logits"), stages_[2].manifest_path);
    feature_count_ = 1;
    for (int64_t d : b_.feature_shape) feature_count_ *= static_cast<size_t>(d);
    for (int offset : b_.past_offsets) offsets_s_.push_back(offset / b_.frame_rate);
    horizon_s_ = b_.horizon / b_.frame_rate;
    decode_current_ = o.decode_current;
    classes = b_.classes;
    info.task = SRT_TASK_FORECAST;
    info.num_classes = static_cast<int32_t>(classes.size());
    info.output_height = map_.height, info.output_width = map_.width;
    info.forecast_horizon = b_.horizon;
    info.past_frames = static_cast<int32_t>(b_.past_offsets.size());
    info.frame_rate = b_.frame_rate;
    info.forecast_horizon_s = horizon_s_;
    copy_text(info.precision, sizeof(info.precision), b_.precision);
    copy_text(info.arch, sizeof(info.arch), b_.arch);
    reset();
  }

  const InputSpec &frame_input() const override { return stages_[0].input; }
  Backend &frame_backend() override { return *backends_[0]; }
  bool runs_after_frame_model() const override { return true; }

  void check_result(const srt_result &r) const override {
    refuse_outlier_buffers(r);
    if (r.class_map && !decode_current_)
      fail(SRT_ERROR_INVALID_ARGUMENT, "a bundle writes the current frame's class_map only when opened with "
                                       "decode_current; set class_map to NULL or open it so");
  }

  void reset() override {
    ring_ = FeatureRing(capacity_for(offsets_s_[0], b_.frame_rate, 0));
    intervals_count_ = 0;
    interval_ = 0;  // 0: not observed yet (Python's None)
    has_last_ = false;
    frames_ = 0;
  }

  // The features stage ran: its features into the ring, then f2f and the decoder once the ring
  // holds every past offset.
  double finish(const FrameDone &frame, srt_result *r) override {
    double frame_time = frame.has_timestamp ? frame.timestamp : frames_ / b_.frame_rate;
    ++frames_;
    observe(frame_time);
    std::vector<float> &features = ring_.add(frame_time, feature_count_);
    to_float(backends_[0]->buffer(features_out_->name, false), features_out_->dtype, feature_count_, features.data());
    double t2 = now_ms();
    r->features_ms = t2 - frame.preprocessed_ms;
    r->f2f_ms = r->decoder_ms = 0;
    double tolerance = 0.5 * std::max(1.0 / b_.frame_rate, interval_);
    std::vector<const std::vector<float> *> &picked = picked_;
    std::vector<double> &times = times_;
    bool complete = ring_.select(frame_time, offsets_s_, tolerance, picked, times);
    r->is_forecast = complete;
    r->picked_count = static_cast<int32_t>(std::min<size_t>(times.size(), SRT_MAX_PAST));
    for (int i = 0; i < r->picked_count; ++i) r->picked_times[i] = times[static_cast<size_t>(i)];
    r->forecast_time = frame_time + horizon_s_;
    double post = 0;
    if (complete) {
      // f2f: past features concatenated along channels (batch 1: one after the other), oldest first.
      const TensorSpec &in = stages_[1].input;
      char *dst = static_cast<char *>(backends_[1]->buffer(in.name, true));
      for (size_t i = 0; i < picked.size(); ++i)
        from_float(picked[i]->data(), feature_count_, in.dtype, dst + i * feature_count_ * dtype_size(in.dtype));
      backends_[1]->run();
      future_.resize(feature_count_);
      to_float(backends_[1]->buffer(f2f_out_->name, false), f2f_out_->dtype, feature_count_, future_.data());
      double t3 = now_ms();
      r->f2f_ms = t3 - t2;
      decode(future_, r->forecast_map, &post);
      r->decoder_ms = now_ms() - t3 - post;
    }
    if (decode_current_ && r->class_map) {
      double t4 = now_ms(), post_before = post;  // post: the forecast's class-map writing too
      decode(features, r->class_map, &post);
      r->decoder_ms += now_ms() - t4 - (post - post_before);
    }
    return post;
  }

 private:
  [[noreturn]] void bad(const std::string &what) const {
    fail(SRT_ERROR_MANIFEST, "forecast bundle " + b_.manifest_path + ": " + what);
  }

  void decode(const std::vector<float> &features, uint8_t *dst, double *post_ms) {
    const TensorSpec &in = stages_[2].input;
    from_float(features.data(), feature_count_, in.dtype, backends_[2]->buffer(in.name, true));
    backends_[2]->run();
    double t = now_ms();
    if (dst) map_.decode(*backends_[2], 0, dst, scratch_);
    *post_ms += now_ms() - t;
  }

  // The stages against each other and the bundle (shapes, kinds, classes, rate, offsets)
  void check_stages() {
    std::vector<int64_t> shape = b_.feature_shape, stacked = shape;
    stacked[1] *= static_cast<int64_t>(b_.past_offsets.size());
    const char *names[3] = {"features", "f2f", "decoder"};
    const char *kinds[3] = {"frame", "features", "features"};
    for (int i = 0; i < 3; ++i) {
      const InputSpec &in = stages_[i].input;
      if (in.shape.empty() || in.shape[0] != 1)  // one stream's ring of past frames: one frame a run
        bad(std::string("stage '") + names[i] + "' input '" + in.name + "' must have batch 1, not " + join_shape(in.shape));
      if (in.kind != kinds[i])
        bad(std::string("stage '") + names[i] + "' input '" + in.name + "' is a " + in.kind + ", expected " + kinds[i]);
      if (i == 1 && in.shape != stacked)
        bad("stage 'f2f' input '" + in.name + "' has shape " + join_shape(in.shape) + ", expected " + join_shape(stacked));
      if (i == 2 && in.shape != shape)
        bad("stage 'decoder' input '" + in.name + "' has shape " + join_shape(in.shape) + ", expected " + join_shape(shape));
      if (i > 0 && !is_float(in.dtype))  // features are fed as float32 or float16, nothing else
        fail(SRT_ERROR_UNSUPPORTED, "forecast bundle " + b_.manifest_path + ": stage '" + names[i] + "' input '" +
                                        in.name + "' is " + dtype_name(in.dtype) +
                                        ": this core feeds features as float16 or float32");
      if (i < 2) {
        const TensorSpec *out = stages_[i].output("features");
        if (!out) bad(std::string("stage '") + names[i] + "' has no output with meaning features");
        if (out->shape != shape)
          bad(std::string("stage '") + names[i] + "' output '" + out->name + "' has shape " + join_shape(out->shape) +
              ", expected feature_shape " + join_shape(shape));
        if (!is_float(out->dtype))
          fail(SRT_ERROR_UNSUPPORTED, "forecast bundle " + b_.manifest_path + ": stage '" + names[i] + "' output '" +
                                          out->name + "' is " + dtype_name(out->dtype) +
                                          ": this core reads features as float16 or float32");
      }
    }
    for (int i = 0; i < 3; ++i) {  // what a stage repeats of the bundle must be the bundle's
      const ModelManifest &s = stages_[i];
      if (!s.frame_rate.is_null() && !(s.frame_rate.is_number() && s.frame_rate.number() == b_.frame_rate))
        bad(std::string("stage '") + names[i] + "' says frame_rate " + number_text(s.frame_rate) +
            ", the bundle says " + number_text(b_.frame_rate));
      if (!s.past_offsets.is_null()) {
        bool same = s.past_offsets.is_array() && s.past_offsets.size() == b_.past_offsets.size();
        for (size_t k = 0; same && k < b_.past_offsets.size(); ++k)
          same = s.past_offsets[k].is_number() && s.past_offsets[k].number() == b_.past_offsets[k];
        if (!same) bad(std::string("stage '") + names[i] + "' says past_offsets other than the bundle's");
      }
    }
    const InputSpec &frame = stages_[0].input, &ours = b_.input;
    if (frame.shape != ours.shape || frame.dtype != ours.dtype || frame.nchw != ours.nchw || frame.rgb != ours.rgb)
      bad("stage 'features' input differs from the bundle's input (shape, dtype, layout or colour order)");
    const std::vector<ClassSpec> &dc = stages_[2].classes;
    bool same = dc.size() == b_.classes.size();
    for (size_t i = 0; same && i < dc.size(); ++i) same = dc[i].id == b_.classes[i].id && dc[i].name == b_.classes[i].name;
    if (!same) bad("stage 'decoder' has classes that differ from the bundle's (ids and names must match)");
  }

  // The source's frame interval (median of the last 16).
  void observe(double t) {
    double last = last_time_;
    bool had = has_last_;
    last_time_ = t, has_last_ = true;
    if (had && t < last) {  // a new stream
      ring_.clear();
      intervals_count_ = 0;
      return;
    }
    if (!had || t == last) return;
    intervals_[intervals_count_ % kIntervals] = t - last;  // the last 16, in a fixed ring
    ++intervals_count_;
    std::vector<double> &ordered = ordered_;
    ordered.assign(intervals_.begin(), intervals_.begin() + std::min<size_t>(intervals_count_, kIntervals));
    std::sort(ordered.begin(), ordered.end());
    size_t mid = ordered.size() / 2;
    double interval = ordered.size() % 2 ? ordered[mid] : 0.5 * (ordered[mid - 1] + ordered[mid]);
    if (interval == interval_) return;
    interval_ = interval;
    int capacity = capacity_for(offsets_s_[0], b_.frame_rate, 1.0 / interval);
    if (capacity > ring_.capacity()) ring_.resize(capacity);
  }

  BundleManifest b_;
  ModelManifest stages_[3];
  std::unique_ptr<Backend> backends_[3];
  bool decode_current_ = false;
  const TensorSpec *features_out_ = nullptr, *f2f_out_ = nullptr;
  MapOutput map_;
  size_t feature_count_ = 0;
  std::vector<double> offsets_s_;
  double horizon_s_ = 0;
  FeatureRing ring_;
  static constexpr size_t kIntervals = 16;
  std::array<double, kIntervals> intervals_{};
  size_t intervals_count_ = 0;
  std::vector<double> ordered_, times_;  // per-frame working storage, kept
  std::vector<const std::vector<float> *> picked_;
  double interval_ = 0, last_time_ = 0;
  bool has_last_ = false;
  long long frames_ = 0;
  std::vector<float> future_, scratch_;
};

}  // namespace

std::unique_ptr<Task> open_forecast(const Resolved &where, const OpenOptions &o) {
  return std::unique_ptr<Task>(new ForecastTask(where.manifest, o));
}

// A bundle's stage alone: refused (its manifest checked first, as for any model).
std::unique_ptr<Task> open_forecast_stage(const Resolved &where, const OpenOptions &o) {
  ModelManifest m = load_model_manifest(where.artifact, where.manifest, o.allow_legacy);
  fail(SRT_ERROR_MANIFEST, where.artifact + " is the '" + m.stage + "' stage of a forecast bundle: open the bundle's "
                                            "forecast.json (or its folder)");
}

}  // namespace srt
