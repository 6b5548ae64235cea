#include "engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <array>

#include "backend.hpp"
#include "error.hpp"
#include "sha256.hpp"
#ifdef SWIFTRT_WITH_TENSORRT
#include "preprocess_cuda.hpp"
#endif

namespace srt {
namespace {

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

bool ends_with(const std::string &s, const std::string &tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string join_shape(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) mant <<= 1, --exp;
      bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {  // round to nearest even, as numpy's astype(float16)
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = x & 0x7FFFFFu;
  if (((x >> 23) & 0xFF) == 0xFF) return static_cast<uint16_t>(sign | 0x7C00u | (mant ? 0x200u : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;
  return static_cast<uint16_t>(half);
}

// Any float output -> float32 (float16 widened).
void to_float(const void *src, DType t, size_t n, float *dst) {
  if (t == DType::F32) {
    std::memcpy(dst, src, n * 4);
  } else if (t == DType::F16) {
    const uint16_t *s = static_cast<const uint16_t *>(src);
    for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(s[i]);
  } else {
    fail(SRT_ERROR_UNSUPPORTED, std::string("expected a float tensor, got ") + dtype_name(t));
  }
}

// float32 -> a float input tensor of dtype t.
void from_float(const float *src, size_t n, DType t, void *dst) {
  if (t == DType::F32) {
    std::memcpy(dst, src, n * 4);
  } else if (t == DType::F16) {
    uint16_t *d = static_cast<uint16_t *>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = float_to_half(src[i]);
  } else {
    fail(SRT_ERROR_UNSUPPORTED, std::string("expected a float input, got ") + dtype_name(t));
  }
}

template <typename T>
inline uint8_t to_u8_int(T v) { return static_cast<uint8_t>(static_cast<int64_t>(v)); }  // numpy astype(uint8) wraps

inline uint8_t to_u8_float(float v) { return std::isfinite(v) ? static_cast<uint8_t>(static_cast<int64_t>(v)) : 0; }

// A class-map output of any of the dtypes exports produce (uint8, int32, int64, float) -> uint8.
void to_class_map(const void *src, DType t, size_t n, uint8_t *dst) {
  switch (t) {
    case DType::U8: std::memcpy(dst, src, n); return;
    case DType::I32: {
      const int32_t *s = static_cast<const int32_t *>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = to_u8_int(s[i]);
      return;
    }
    case DType::I64: {
      const int64_t *s = static_cast<const int64_t *>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = to_u8_int(s[i]);
      return;
    }
    case DType::F32: {
      const float *s = static_cast<const float *>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = to_u8_float(s[i]);
      return;
    }
    case DType::F16: {
      const uint16_t *s = static_cast<const uint16_t *>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = to_u8_float(half_to_float(s[i]));
      return;
    }
  }
}

// Logits (1, C, H, W) -> uint8 argmax over C (the first maximum, as numpy.argmax). scratch and
// best keep their storage from frame to frame: no allocation once the first frame has run.
void argmax(const void *src, DType t, int channels, size_t plane, uint8_t *dst, std::vector<float> &scratch,
            std::vector<float> &best) {
  const float *s;
  if (t == DType::F32) {
    s = static_cast<const float *>(src);
  } else {
    scratch.resize(static_cast<size_t>(channels) * plane);
    to_float(src, t, scratch.size(), scratch.data());
    s = scratch.data();
  }
  best.assign(s, s + plane);
  std::fill(dst, dst + plane, 0);
  for (int c = 1; c < channels; ++c) {
    const float *p = s + static_cast<size_t>(c) * plane;
    for (size_t i = 0; i < plane; ++i)
      if (p[i] > best[i]) best[i] = p[i], dst[i] = static_cast<uint8_t>(c);
  }
}

// A class map (uint8/int/float) or logits output, decoded into `dst` (H*W bytes).
struct MapOutput {
  const TensorSpec *spec = nullptr;
  bool logits = false;
  int height = 0, width = 0, channels = 0;

  void bind(const TensorSpec *class_map, const TensorSpec *logits_spec, const std::string &where) {
    if (class_map) {
      spec = class_map;
      if (spec->shape.size() < 2) fail(SRT_ERROR_MANIFEST, where + ": class_map output must be (1, H, W)");
    } else if (logits_spec) {
      spec = logits_spec, logits = true;
      if (spec->shape.size() != 4) fail(SRT_ERROR_MANIFEST, where + ": logits output must be (1, C, H, W)");
      channels = static_cast<int>(spec->shape[1]);
      if (channels > 256) fail(SRT_ERROR_UNSUPPORTED, where + ": more than 256 classes do not fit a uint8 class map");
    } else {
      fail(SRT_ERROR_MANIFEST, where + ": no output with meaning 'class_map' or 'logits'");
    }
    height = static_cast<int>(spec->shape[spec->shape.size() - 2]);
    width = static_cast<int>(spec->shape.back());
    slot_bytes = spec->count() / static_cast<size_t>(spec->shape[0]) * dtype_size(spec->dtype);
  }

  // Batch item `slot`'s map (a batch-N artifact's outputs hold N of them, one after another).
  void decode(Backend &backend, size_t slot, uint8_t *dst, std::vector<float> &scratch) {
    const void *src = static_cast<const char *>(backend.buffer(spec->name, false)) + slot * slot_bytes;
    size_t plane = static_cast<size_t>(height) * width;
    if (logits) argmax(src, spec->dtype, channels, plane, dst, scratch, best_);
    else to_class_map(src, spec->dtype, plane, dst);
  }

  size_t slot_bytes = 0;

 private:
  std::vector<float> best_;
};

// `stage`: one of a bundle's stages, which run one after another (their threads must not spin).
std::unique_ptr<Backend> open_backend(const ModelManifest &m, const OpenOptions &o, bool stage = false) {
  const bool onnx = m.format == "onnx" || ends_with(m.artifact_path, ".onnx");
  int kind = o.backend;
  if (kind == SRT_BACKEND_AUTO) {
#ifdef SWIFTRT_WITH_ONNXRUNTIME
    if (onnx) kind = SRT_BACKEND_ONNXRUNTIME;
#else
    if (onnx) kind = SRT_BACKEND_OPENVINO;
#endif
    else if (m.format == "tensorrt" || ends_with(m.artifact_path, ".plan") || ends_with(m.artifact_path, ".engine"))
      kind = SRT_BACKEND_TENSORRT;
    else fail(SRT_ERROR_UNSUPPORTED, "cannot tell the backend for " + m.artifact_path + ": use .onnx or .plan");
  }
  if (kind != SRT_BACKEND_OPENVINO && kind != SRT_BACKEND_TENSORRT && kind != SRT_BACKEND_ONNXRUNTIME)
    fail(SRT_ERROR_INVALID_ARGUMENT, "unknown backend number " + std::to_string(kind));
  if (kind != SRT_BACKEND_ONNXRUNTIME && !o.providers.empty())
    fail(SRT_ERROR_INVALID_ARGUMENT, "options->providers selects ONNX Runtime execution providers; the " +
                                         std::string(kind == SRT_BACKEND_OPENVINO ? "openvino" : "tensorrt") +
                                         " backend does not use them");
  if (!m.sha256.empty()) {
    std::string digest = sha256_file(m.artifact_path);
    if (digest != m.sha256)
      fail(SRT_ERROR_CORRUPT_ENGINE, m.artifact_path + " does not match its manifest: sha256 " + digest.substr(0, 12) +
                                         "... instead of " + m.sha256.substr(0, 12) +
                                         "... (changed or truncated since export: re-export it)");
  } else if (!o.allow_legacy) {
    fail(SRT_ERROR_MANIFEST, m.manifest_path + " records no artifact sha256: " + m.artifact_path +
                                 " cannot be verified (re-export it, or open it with allow_legacy)");
  }
  BackendOptions bo;
  bo.threads = o.threads;
  bo.device = o.device;
  bo.spin = o.spin >= 0 ? o.spin : (stage ? 0 : -1);
  bo.providers = o.providers;
  std::unique_ptr<Backend> backend;
  if (kind == SRT_BACKEND_OPENVINO || kind == SRT_BACKEND_ONNXRUNTIME) {
    const char *name = kind == SRT_BACKEND_OPENVINO ? "openvino" : "onnxruntime";
    if (!ends_with(m.artifact_path, ".onnx"))
      fail(SRT_ERROR_UNSUPPORTED, std::string("the ") + name + " backend runs .onnx engines, not " + m.artifact_path);
  }
  if (kind == SRT_BACKEND_OPENVINO) {
#ifdef SWIFTRT_WITH_OPENVINO
    backend = open_openvino(m, bo);
#else
    fail(SRT_ERROR_UNSUPPORTED, "this libswiftrt was built without the OpenVINO backend");
#endif
  } else if (kind == SRT_BACKEND_ONNXRUNTIME) {
#ifdef SWIFTRT_WITH_ONNXRUNTIME
    backend = open_onnxruntime(m, bo);
#else
    fail(SRT_ERROR_UNSUPPORTED, "this libswiftrt was built without the ONNX Runtime backend (configure it with "
                                "ONNXRUNTIME_ROOT: make native-lib)");
#endif
  } else {
#ifdef SWIFTRT_WITH_TENSORRT
    backend = open_tensorrt(m, bo);
#else
    fail(SRT_ERROR_UNSUPPORTED, "this libswiftrt was built without the TensorRT backend (" + m.artifact_path + ")");
#endif
  }
  // The tensors the manifest names must exist in the model with the same shape and dtype.
  auto check = [&](const TensorSpec &t, bool input) {
    std::vector<std::string> names = backend->names(input);
    if (std::find(names.begin(), names.end(), t.name) == names.end()) {
      std::string have;
      for (const std::string &n : names) have += (have.empty() ? "" : ", ") + n;
      fail(SRT_ERROR_MANIFEST, m.manifest_path + ": manifest " + (input ? "input" : "output") + " '" + t.name +
                                   "' is not in the model (it has " + have + ")");
    }
    BackendTensor b = backend->tensor(t.name, input);
    if (b.shape != t.shape)
      fail(SRT_ERROR_MANIFEST, m.manifest_path + ": tensor '" + t.name + "' is " + join_shape(b.shape) +
                                   " in the model but " + join_shape(t.shape) + " in its manifest");
    if (b.dtype != t.dtype)
      fail(SRT_ERROR_MANIFEST, m.manifest_path + ": tensor '" + t.name + "' is " + dtype_name(b.dtype) +
                                   " in the model but " + dtype_name(t.dtype) + " in its manifest");
  };
  check(m.input, true);
  for (const TensorSpec &t : m.outputs) check(t, false);
  return backend;
}

Resize resize_mode(const OpenOptions &o, Resize manifest_mode) {
  switch (o.resize) {
    case SRT_RESIZE_MANIFEST: return manifest_mode;
    case SRT_RESIZE_STRETCH: return Resize::Stretch;
    case SRT_RESIZE_LETTERBOX: return Resize::Letterbox;
    case SRT_RESIZE_CROP: return Resize::Crop;
  }
  fail(SRT_ERROR_INVALID_ARGUMENT, "unknown resize mode " + std::to_string(o.resize));
}

void copy_text(char *dst, size_t size, const std::string &text) {
  std::memset(dst, 0, size);
  std::strncpy(dst, text.c_str(), size - 1);
}

// ---- segmentation and outlier engines ---------------------------------------------------------

class ModelEngine : public Engine {
 public:
  ModelEngine(const std::string &artifact, const std::string &manifest_path, const OpenOptions &o) {
    m_ = load_model_manifest(artifact, manifest_path, o.allow_legacy);
    if (m_.task == "forecast_stage")
      fail(SRT_ERROR_MANIFEST, artifact + " is the '" + m_.stage + "' stage of a forecast bundle: open the bundle's "
                                          "forecast.json (or its folder)");
    if (m_.input.kind != "frame") fail(SRT_ERROR_MANIFEST, manifest_path + ": the input must be a camera frame");
    batch_ = static_cast<size_t>(m_.input.shape[0]);
    for (const TensorSpec &out : m_.outputs)
      if (out.shape.empty() || out.shape[0] != m_.input.shape[0])
        fail(SRT_ERROR_MANIFEST, manifest_path + ": output '" + out.name + "' has batch " +
                                     (out.shape.empty() ? std::string("none") : std::to_string(out.shape[0])) +
                                     " but the input has batch " + std::to_string(batch_));
    backend_ = open_backend(m_, o);
    input_slot_bytes_ = m_.input.count() / batch_ * dtype_size(m_.input.dtype);
    // Slots no frame filled yet run zeros, never uninitialised memory.
    std::memset(backend_->buffer(m_.input.name, true), 0, m_.input.count() * dtype_size(m_.input.dtype));
    pre_.reset(new Preprocessor(m_.input, resize_mode(o, m_.input.resize)));
    map_.bind(m_.output("class_map"), m_.output("logits"), manifest_path);
    score_ = m_.output("outlier_score");
    if (score_) {
      if (score_->dtype != DType::F32 && score_->dtype != DType::F16)
        fail(SRT_ERROR_MANIFEST, manifest_path + ": the outlier_score output must be float");
      size_t n = score_->count() / batch_;
      if (n != static_cast<size_t>(map_.height) * map_.width)
        fail(SRT_ERROR_MANIFEST, manifest_path + ": the outlier_score output is not the class map's size");
      threshold_ = o.use_outlier_threshold ? o.outlier_threshold : m_.outlier_threshold;
    }
    classes = m_.classes;
    info.task = score_ ? SRT_TASK_OUTLIER : SRT_TASK_SEGMENTATION;
    info.backend = backend_->kind();
    info.num_classes = static_cast<int32_t>(classes.size());
    info.input_height = m_.input.height, info.input_width = m_.input.width;
    info.output_height = map_.height, info.output_width = map_.width;
    info.has_outlier_score = score_ != nullptr;
    info.outlier_threshold = score_ ? threshold_ : 0.f;
    copy_text(info.precision, sizeof(info.precision), m_.precision);
    copy_text(info.arch, sizeof(info.arch), m_.arch);
    copy_text(info.backend_name, sizeof(info.backend_name), backend_->describe());
  }

  void run(const FrameView &frame, bool has_timestamp, double timestamp, srt_result *r) override {
    start(frame, has_timestamp, timestamp, r);
    finish(r);
  }

  // One frame in batch slot 0 (a batch-N artifact's other slots hold earlier frames: batch items
  // do not mix, so they cost time, not correctness), then the backend's queued run.
  void start(const FrameView &frame, bool, double, srt_result *r) override {
    t0_ = now_ms();
    bool device = preprocess(frame, 0);
    t1_ = now_ms();
    backend_->enqueue(frame.stream, device);
    r->preprocess_ms = t1_ - t0_;
  }

  // Waits for the backend, then writes the caller's buffers (class map, score, mask).
  void finish(srt_result *r) override {
    backend_->synchronize();
    double t2 = now_ms();
    decode(0, r);
    double t3 = now_ms();
    r->preprocess_ms = t1_ - t0_, r->inference_ms = t2 - t1_, r->postprocess_ms = t3 - t2, r->total_ms = t3 - t0_;
  }

  // A batch-N artifact: up to N frames per inference, each in its own slot. Each frame's result
  // has its own preprocess and postprocess times and the shared inference time; total_ms runs from
  // the inference call's first preprocessing to the frame's own postprocessing.
  void run_batch(std::vector<BatchItem> &items) override {
    if (batch_ == 1) return Engine::run_batch(items);
    bool device = false;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0 && items[i].view.device != device)
        fail(SRT_ERROR_UNSUPPORTED, "a batch mixes frames in CUDA and host memory: give one kind per call");
      device = items[i].view.device;
    }
    for (size_t first = 0; first < items.size(); first += batch_) {
      size_t n = std::min(batch_, items.size() - first);
      double t0 = now_ms();
      for (size_t k = 0; k < n; ++k) {
        double a = now_ms();
        preprocess(items[first + k].view, k);
        items[first + k].result->preprocess_ms = now_ms() - a;
      }
      double t1 = now_ms();
      backend_->enqueue(items[first].view.stream, device);
      backend_->synchronize();
      double t2 = now_ms();
      for (size_t k = 0; k < n; ++k) {
        srt_result *r = items[first + k].result;
        double a = now_ms();
        decode(k, r);
        double b = now_ms();
        r->inference_ms = t2 - t1, r->postprocess_ms = b - a, r->total_ms = b - t0;
      }
    }
  }

  void *completion_event() override { return backend_->completion_event(); }

 private:
  // The frame's tensor into batch slot `slot` of the input: on the GPU for a device frame (true),
  // else on the host (false).
  bool preprocess(const FrameView &frame, size_t slot) {
    if (frame.device) {
#ifdef SWIFTRT_WITH_TENSORRT
      char *input = static_cast<char *>(backend_->device_buffer(m_.input.name, true));
      if (!backend_->has_device() || !input)
        fail(SRT_ERROR_UNSUPPORTED, "frames in CUDA memory need the TensorRT backend; this engine runs on " +
                                        backend_->describe());
      void *stream = frame.stream ? frame.stream : backend_->own_stream();
      gpu_pre_.run(*pre_, frame, input + slot * input_slot_bytes_, stream);
      return true;
#else
      fail(SRT_ERROR_UNSUPPORTED, "frames in CUDA memory need a libswiftrt built with TensorRT");
#endif
    }
    pre_->run(frame, static_cast<char *>(backend_->buffer(m_.input.name, true)) + slot * input_slot_bytes_);
    return false;
  }

  // Batch slot `slot`'s outputs into the caller's buffers (class map, score, mask).
  void decode(size_t slot, srt_result *r) {
    if (r->class_map) map_.decode(*backend_, slot, r->class_map, scratch_);
    r->outlier_pixels = -1;
    if (!score_) return;
    size_t n = static_cast<size_t>(map_.height) * map_.width;
    const void *src = static_cast<const char *>(backend_->buffer(score_->name, false)) +
                      slot * n * dtype_size(score_->dtype);
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
  }

  ModelManifest m_;
  size_t batch_ = 1, input_slot_bytes_ = 0;
#ifdef SWIFTRT_WITH_TENSORRT
  DevicePreprocessor gpu_pre_;  // before backend_: freed after the backend waited for its last run
#endif
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Preprocessor> pre_;
  MapOutput map_;
  const TensorSpec *score_ = nullptr;
  float threshold_ = 0.5f;
  std::vector<float> scratch_;
  double t0_ = 0, t1_ = 0;
};

// ---- forecast bundles -------------------------------------------------------------------------

const double kEps = 1e-6;  // s: a frame exactly half an interval away still counts (feature_ring.py)
const int kSlack = 2;
const double kMaxRateFactor = 8.0;

// runtime/feature_ring.py capacity_for
int capacity_for(double oldest_offset_s, double frame_rate, double source_rate) {
  double rate = frame_rate;
  if (source_rate > 0) rate = std::min(std::max(rate, source_rate), kMaxRateFactor * frame_rate);
  return static_cast<int>(std::ceil(std::fabs(oldest_offset_s) * rate - kEps)) + 1 + kSlack;
}

// runtime/feature_ring.py FeatureRing: (time, features) in time order, bounded. A ring of slots
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

class ForecastEngine : public Engine {
 public:
  ForecastEngine(const std::string &manifest_path, const OpenOptions &o) {
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
    pre_.reset(new Preprocessor(stages_[0].input, resize_mode(o, stages_[0].input.resize)));
    features_out_ = stages_[0].output("features");
    f2f_out_ = stages_[1].output("features");
    map_.bind(stages_[2].output("class_map"), stages_[2].output("logits"), stages_[2].manifest_path);
    feature_count_ = 1;
    for (int64_t d : b_.feature_shape) feature_count_ *= static_cast<size_t>(d);
    for (int offset : b_.past_offsets) offsets_s_.push_back(offset / b_.frame_rate);
    horizon_s_ = b_.horizon / b_.frame_rate;
    decode_current = o.decode_current;
    classes = b_.classes;
    info.task = SRT_TASK_FORECAST;
    info.backend = backends_[0]->kind();
    info.num_classes = static_cast<int32_t>(classes.size());
    info.input_height = stages_[0].input.height, info.input_width = stages_[0].input.width;
    info.output_height = map_.height, info.output_width = map_.width;
    info.forecast_horizon = b_.horizon;
    info.past_frames = static_cast<int32_t>(b_.past_offsets.size());
    info.frame_rate = b_.frame_rate;
    info.forecast_horizon_s = horizon_s_;
    copy_text(info.precision, sizeof(info.precision), b_.precision);
    copy_text(info.arch, sizeof(info.arch), b_.arch);
    copy_text(info.backend_name, sizeof(info.backend_name), backends_[0]->describe());
    reset();
  }

  // runtime/forecast.py ForecastEngine.reset
  void reset() override {
    ring_ = FeatureRing(capacity_for(offsets_s_[0], b_.frame_rate, 0));
    intervals_count_ = 0;
    interval_ = 0;  // 0: not observed yet (Python's None)
    has_last_ = false;
    frames_ = 0;
  }

  void run(const FrameView &frame, bool has_ts, double ts, srt_result *r) override {
    if (frame.device)
      fail(SRT_ERROR_UNSUPPORTED, "frames in CUDA memory are taken by segmentation and outlier engines, not by "
                                  "forecast bundles (copy the frame to the host)");
    double t0 = now_ms();
    pre_->run(frame, backends_[0]->buffer(stages_[0].input.name, true));
    double t1 = now_ms();
    backends_[0]->run();
    double frame_time = has_ts ? ts : frames_ / b_.frame_rate;
    ++frames_;
    observe(frame_time);
    std::vector<float> &features = ring_.add(frame_time, feature_count_);
    to_float(backends_[0]->buffer(features_out_->name, false), features_out_->dtype, feature_count_, features.data());
    double t2 = now_ms();
    r->features_ms = t2 - t1;
    r->f2f_ms = r->decoder_ms = 0;
    double tolerance = 0.5 * std::max(1.0 / b_.frame_rate, interval_);
    std::vector<const std::vector<float> *> &picked = picked_;
    std::vector<double> &times = times_;
    bool complete = ring_.select(frame_time, offsets_s_, tolerance, picked, times);
    r->is_forecast = complete;
    r->picked_count = static_cast<int32_t>(std::min<size_t>(times.size(), SRT_MAX_PAST));
    for (int i = 0; i < r->picked_count; ++i) r->picked_times[i] = times[static_cast<size_t>(i)];
    r->forecast_time = frame_time + horizon_s_;
    r->outlier_pixels = -1;
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
    if (decode_current && r->class_map) {
      double t4 = now_ms();
      decode(features, r->class_map, &post);
      r->decoder_ms += now_ms() - t4 - post;
    }
    double t5 = now_ms();
    r->preprocess_ms = t1 - t0;
    r->postprocess_ms = post;
    r->inference_ms = t5 - t1 - post;
    r->total_ms = t5 - t0;
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

  // runtime/forecast.py ForecastBundle._check_stages (shapes, kinds, classes)
  void check_stages() {
    std::vector<int64_t> shape = b_.feature_shape, stacked = shape;
    stacked[1] *= static_cast<int64_t>(b_.past_offsets.size());
    const char *names[3] = {"features", "f2f", "decoder"};
    const char *kinds[3] = {"frame", "features", "features"};
    for (int i = 0; i < 3; ++i) {
      const InputSpec &in = stages_[i].input;
      if (in.kind != kinds[i])
        bad(std::string("stage '") + names[i] + "' input '" + in.name + "' is a " + in.kind + ", expected " + kinds[i]);
      if (i == 1 && in.shape != stacked)
        bad("stage 'f2f' input '" + in.name + "' has shape " + join_shape(in.shape) + ", expected " + join_shape(stacked));
      if (i == 2 && in.shape != shape)
        bad("stage 'decoder' input '" + in.name + "' has shape " + join_shape(in.shape) + ", expected " + join_shape(shape));
      if (i < 2) {
        const TensorSpec *out = stages_[i].output("features");
        if (!out) bad(std::string("stage '") + names[i] + "' has no output with meaning features");
        if (out->shape != shape)
          bad(std::string("stage '") + names[i] + "' output '" + out->name + "' has shape " + join_shape(out->shape) +
              ", expected feature_shape " + join_shape(shape));
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

  // runtime/forecast.py ForecastEngine._observe: the source's frame interval (median of the last 16).
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
  std::unique_ptr<Preprocessor> pre_;
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

std::unique_ptr<Engine> open_engine(const std::string &path, const OpenOptions &options) {
  Resolved r = resolve(path);
  if (r.bundle) return std::unique_ptr<Engine>(new ForecastEngine(r.manifest, options));
  return std::unique_ptr<Engine>(new ModelEngine(r.artifact, r.manifest, options));
}

}  // namespace srt
