#include "engine.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "error.hpp"
#include "sha256.hpp"
#include "tasks/task.hpp"
#include "tensor.hpp"

namespace srt {
namespace {

bool ends_with(const std::string &s, const std::string &tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
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

}  // namespace

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

void copy_text(char *dst, size_t size, const std::string &text) {
  std::memset(dst, 0, size);
  std::strncpy(dst, text.c_str(), size - 1);
}

std::unique_ptr<Backend> open_backend(const ModelManifest &m, const OpenOptions &o, bool stage) {
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

// ---- the engine: the frame model's run, the same for every family -------------------------------

Engine::Engine(std::unique_ptr<Task> task, const OpenOptions &o) : task_(std::move(task)) {
  const InputSpec &input = task_->frame_input();
  pre_.reset(new Preprocessor(input, resize_mode(o, input.resize)));
  info = task_->info;
  classes = task_->classes;
  Backend &backend = task_->frame_backend();
  info.backend = backend.kind();
  info.input_height = input.height, info.input_width = input.width;
  copy_text(info.backend_name, sizeof(info.backend_name), backend.describe());
  batch_ = static_cast<size_t>(input.shape[0]);
  input_slot_bytes_ = input.count() / batch_ * dtype_size(input.dtype);
  // Slots no frame has filled yet hold zeros, never uninitialised memory.
  std::memset(backend.buffer(input.name, true), 0, input.count() * dtype_size(input.dtype));
}

Engine::~Engine() = default;

void Engine::run(const FrameView &frame, bool has_timestamp, double timestamp, srt_result *r) {
  start(frame, has_timestamp, timestamp, r);
  finish(r);
}

bool Engine::preprocess(const FrameView &frame, size_t slot, void *stream) {
  Backend &backend = task_->frame_backend();
  const InputSpec &input = task_->frame_input();
  if (frame.device) {
    if (task_->runs_after_frame_model())
      fail(SRT_ERROR_UNSUPPORTED, "this engine runs models after its frame model (a forecast bundle): it takes frames "
                                  "in host memory, not CUDA memory (copy the frame to the host)");
#ifdef SWIFTRT_WITH_TENSORRT
    char *tensor = static_cast<char *>(backend.device_buffer(input.name, true));
    if (!backend.has_device() || !tensor)
      fail(SRT_ERROR_UNSUPPORTED, "frames in CUDA memory need the TensorRT backend; this engine runs on " +
                                      backend.describe());
    gpu_pre_.run(*pre_, frame, tensor + slot * input_slot_bytes_, stream ? stream : backend.own_stream());
    return true;
#else
    (void)stream;
    fail(SRT_ERROR_UNSUPPORTED, "frames in CUDA memory need a libswiftrt built with TensorRT");
#endif
  }
  pre_->run(frame, static_cast<char *>(backend.buffer(input.name, true)) + slot * input_slot_bytes_);
  return false;
}

FrameDone Engine::done(size_t slot) const {
  FrameDone d;
  d.has_timestamp = has_timestamp_, d.timestamp = timestamp_, d.preprocessed_ms = t1_, d.slot = slot;
  return d;
}

// Preprocessing (on the GPU for a device frame) into batch slot 0 and the frame model's queued run.
// A batch-N model's other slots keep earlier frames: batch items do not mix, they cost time only.
void Engine::start(const FrameView &frame, bool has_timestamp, double timestamp, srt_result *r) {
  has_timestamp_ = has_timestamp, timestamp_ = timestamp;
  t0_ = now_ms();
  bool device = preprocess(frame, 0, frame.stream);
  t1_ = now_ms();
  task_->frame_backend().enqueue(frame.stream, device);
  r->preprocess_ms = t1_ - t0_;
}

// Waits for the frame model, then the task's part: the caller's buffers (and any later models).
void Engine::finish(srt_result *r) {
  task_->frame_backend().synchronize();
  r->outlier_pixels = -1;
  double post = task_->finish(done(0), r);
  double end = now_ms();
  r->preprocess_ms = t1_ - t0_, r->inference_ms = end - t1_ - post, r->postprocess_ms = post, r->total_ms = end - t0_;
}

// A batch-N model: up to N frames per inference. Each result has its own preprocess and
// postprocess times and the shared inference time; total_ms runs from the inference's first
// preprocessing to the frame's own postprocessing.
void Engine::run_batch(std::vector<BatchItem> &items) {
  if (batch_ == 1) {
    for (BatchItem &item : items) run(item.view, item.has_timestamp, item.timestamp, item.result);
    return;
  }
  for (size_t i = 1; i < items.size(); ++i) {
    // One inference reads every slot: the slots must be written on its stream, in its memory.
    if (items[i].view.device != items[0].view.device)
      fail(SRT_ERROR_UNSUPPORTED, "frame " + std::to_string(i) + ": a batch model's frames are all in CUDA memory "
                                                                  "or all in host memory, not both");
    if (items[i].view.device && items[i].view.stream != items[0].view.stream)
      fail(SRT_ERROR_UNSUPPORTED, "frame " + std::to_string(i) + ": a batch model's CUDA frames share one cuda_stream");
  }
  Backend &backend = task_->frame_backend();
  for (size_t first = 0; first < items.size(); first += batch_) {
    size_t n = std::min(batch_, items.size() - first);
    void *stream = items[first].view.stream;
    has_timestamp_ = false;
    t0_ = now_ms();
    bool device = false;
    for (size_t k = 0; k < n; ++k) {
      double a = now_ms();
      device = preprocess(items[first + k].view, k, stream);
      items[first + k].result->preprocess_ms = now_ms() - a;
    }
    t1_ = now_ms();
    backend.enqueue(stream, device);
    backend.synchronize();
    double inferred = now_ms();
    for (size_t k = 0; k < n; ++k) {
      BatchItem &item = items[first + k];
      has_timestamp_ = item.has_timestamp, timestamp_ = item.timestamp;
      item.result->outlier_pixels = -1;
      double post = task_->finish(done(k), item.result);
      item.result->inference_ms = inferred - t1_, item.result->postprocess_ms = post;
      item.result->total_ms = now_ms() - t0_;
    }
  }
}

void Engine::reset() { task_->reset(); }

void *Engine::completion_event() {
  return task_->runs_after_frame_model() ? nullptr : task_->frame_backend().completion_event();
}

void Engine::check_result(const srt_result &r) const { task_->check_result(r); }

bool Engine::one_stream() const { return task_->runs_after_frame_model(); }

std::unique_ptr<Engine> open_engine(const std::string &path, const OpenOptions &options) {
  return std::unique_ptr<Engine>(new Engine(open_task(resolve(path), options), options));
}

}  // namespace srt
