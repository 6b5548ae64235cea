// TensorRT backend: a serialized plan on one GPU, for the Jetson.
//
// Compiled against TensorRT 8.2 (JetPack 4.6, TX2), 8.5/8.6 (JetPack 5 / 6.0) and 10.x (JetPack
// 6.1+). The I/O API is chosen at compile time from NV_TENSORRT_MAJOR/MINOR: named tensors
// (setTensorAddress + enqueueV3) from 8.5, bindings (enqueueV2) on 8.2. One execution context, one
// CUDA stream and four CUDA events per engine; page-locked host buffers that the preprocessor and
// the output conversion use directly, device buffers allocated once. The plan's manifest block
// `tensorrt` (version, gpu, compute_capability) is checked against this TensorRT and GPU before
// deserializing, because TensorRT's own refusal of a foreign plan is cryptic.
//
// Every TensorRT object and CUDA resource is owned by a member that frees it (RAII): when the
// constructor throws halfway (no context, no memory, a dynamic-shape plan), what was made is freed.
// One logger for the process, never destroyed: TensorRT's plugin library keeps the pointer given
// to initLibNvInferPlugins. Device frames: the input's device buffer is written by the
// preprocessing kernel (preprocess_cuda.cu) and enqueue() skips its host copy.
//
// Verified here only by compiling (make native-check) and by tests/test_tensorrt_raii.cpp, which
// runs this file against a test double of TensorRT and CUDA (nothing leaks on a failed open): no
// GPU, no TensorRT libraries; not run on hardware.
#include <NvInfer.h>
#include <NvInferPlugin.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <utility>

#include "backend.hpp"
#include "error.hpp"
#include "log.hpp"

#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 5)
#define SWIFTRT_TRT_TENSOR_API 1
#else
#define SWIFTRT_TRT_TENSOR_API 0
#endif

namespace srt {
namespace {

void cuda_check(cudaError_t status, const char *what) {
  if (status != cudaSuccess) fail(SRT_ERROR_BACKEND, std::string(what) + ": " + cudaGetErrorString(status));
}

// TensorRT's last error on this thread, for the one-line message of the call that failed.
std::string &last_trt_error() {
  thread_local std::string text;
  return text;
}

// TensorRT's log through srt_set_log_callback's hook (default: warnings and errors to stderr).
class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, char const *msg) noexcept override {
    if (severity > Severity::kINFO) return;
    int32_t level = severity <= Severity::kERROR ? SRT_LOG_ERROR
                                                 : (severity == Severity::kWARNING ? SRT_LOG_WARNING : SRT_LOG_INFO);
    srt::log(level, msg, "TensorRT");
    if (severity <= Severity::kERROR) {
      try {
        last_trt_error() = msg;
      } catch (...) {
      }
    }
  }
};

// The process's logger, created (and the plugins registered with it) on first use and never
// destroyed: initLibNvInferPlugins keeps the pointer for the life of the process.
Logger &process_logger() {
  static Logger *logger = [] {
    Logger *l = new Logger;
    initLibNvInferPlugins(l, "");  // plugin-backed layers (DeformConv on 10.x)
    return l;
  }();
  return *logger;
}

// Owns one CUDA handle (a buffer, stream or event) and releases it when its owner goes, also
// when the owner's constructor throws.
template <typename T, cudaError_t (*Release)(T)>
class CudaHandle {
 public:
  CudaHandle() = default;
  CudaHandle(const CudaHandle &) = delete;
  CudaHandle &operator=(const CudaHandle &) = delete;
  CudaHandle(CudaHandle &&other) noexcept : h_(other.h_) { other.h_ = nullptr; }
  CudaHandle &operator=(CudaHandle &&other) noexcept {
    std::swap(h_, other.h_);
    return *this;
  }
  ~CudaHandle() {
    if (h_) Release(h_);
  }
  T get() const { return h_; }
  T *out() { return &h_; }  // for cudaXxx(&handle) on an empty handle

 private:
  T h_ = nullptr;
};

cudaError_t free_host(void *p) { return cudaFreeHost(p); }
cudaError_t free_device(void *p) { return cudaFree(p); }
cudaError_t destroy_stream(cudaStream_t s) { return cudaStreamDestroy(s); }
cudaError_t destroy_event(cudaEvent_t e) { return cudaEventDestroy(e); }

using PinnedBuffer = CudaHandle<void *, free_host>;
using DeviceBuffer = CudaHandle<void *, free_device>;
using Stream = CudaHandle<cudaStream_t, destroy_stream>;
using Event = CudaHandle<cudaEvent_t, destroy_event>;

DType from_trt(nvinfer1::DataType t, const std::string &name) {
  switch (t) {
    case nvinfer1::DataType::kFLOAT: return DType::F32;
    case nvinfer1::DataType::kHALF: return DType::F16;
    case nvinfer1::DataType::kINT32: return DType::I32;
#if SWIFTRT_TRT_TENSOR_API
    case nvinfer1::DataType::kUINT8: return DType::U8;
#endif
#if NV_TENSORRT_MAJOR >= 10
    case nvinfer1::DataType::kINT64: return DType::I64;
#endif
    default: break;
  }
  fail(SRT_ERROR_UNSUPPORTED, "plan tensor '" + name + "' has a data type this core does not handle");
}

// "8.5.2.2" -> {8, 5, 2}: plans are tied to major.minor.patch.
std::vector<int> parse_version(const std::string &text) {
  std::vector<int> parts;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, '.') && parts.size() < 3) parts.push_back(std::atoi(item.c_str()));
  while (parts.size() < 3) parts.push_back(0);
  return parts;
}

std::string version_text(const std::vector<int> &v) {
  return std::to_string(v[0]) + "." + std::to_string(v[1]) + "." + std::to_string(v[2]);
}

// The linked TensorRT's version (getInferLibVersion: 8.x = M*1000+m*100+p, 10.x = M*10000+m*100+p).
std::vector<int> runtime_version() {
  int32_t v = getInferLibVersion();
  if (v >= 10000) return {v / 10000, (v / 100) % 100, v % 100};
  return {v / 1000, (v / 100) % 10, v % 100};
}

std::string squash(const std::string &s) {  // lower case, single spaces (GPU names)
  std::string out;
  for (char c : s) {
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string capability_text(const Json *value) {  // "8.7", 87, "sm_87" -> "8.7"
  if (!value || value->is_null()) return "";
  if (value->is_number()) {
    long long n = static_cast<long long>(value->number());
    return std::to_string(n / 10) + "." + std::to_string(n % 10);
  }
  if (value->is_array() && value->size() == 2)
    return std::to_string((*value)[0].integer()) + "." + std::to_string((*value)[1].integer());
  std::string text = squash(value->string());
  if (text.compare(0, 3, "sm_") == 0) text = text.substr(3);
  if (text.find('.') == std::string::npos && text.size() >= 2) text = text.substr(0, text.size() - 1) + "." + text.back();
  return text;
}

// Refuses a plan built for another TensorRT or GPU, as runtime/backends/trt_api.py check_plan.
void check_plan(const ModelManifest &m, int device) {
  const Json &block = m.tensorrt;
  if (!block.is_object())
    fail(SRT_ERROR_MANIFEST, m.artifact_path + ": the manifest of a TensorRT plan needs a 'tensorrt' block (version, gpu, "
                                               "compute_capability): rebuild the plan with rt-export");
  const Json *version = block.get("version");
  if (!version || !version->is_string() || version->string().empty())
    fail(SRT_ERROR_MANIFEST, m.artifact_path + ": its manifest does not say which TensorRT built it");
  cudaDeviceProp prop;
  cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  std::string here_gpu = prop.name, here_cc = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  std::vector<int> built = parse_version(version->string()), here = runtime_version();
  const Json *gpu = block.get("gpu");
  std::string built_gpu = gpu && gpu->is_string() ? gpu->string() : "";
  std::string built_cc = capability_text(block.get("compute_capability"));
  bool same = built == here;
  if (!built_cc.empty() && built_cc != here_cc) same = false;
  if (!built_gpu.empty() && squash(built_gpu) != squash(here_gpu)) same = false;
  if (!same)
    fail(SRT_ERROR_MANIFEST, m.artifact_path + ": plan was built with TensorRT " + version_text(built) + " for " +
                                 (built_gpu.empty() ? "an unrecorded GPU" : built_gpu) + " (sm " +
                                 (built_cc.empty() ? "?" : built_cc) + "); this is TensorRT " + version_text(here) + " on " +
                                 here_gpu + " (sm " + here_cc + "): rebuild it here from the ONNX model with rt-export");
}

struct IoTensor {
  BackendTensor info;
  bool input = false;
  size_t bytes = 0;
  PinnedBuffer host;    // page-locked
  DeviceBuffer device;
};

class TensorRTBackend : public Backend {
 public:
  TensorRTBackend(const ModelManifest &m, const BackendOptions &options) : device_(options.device) {
    int count = 0;
    cuda_check(cudaGetDeviceCount(&count), "no usable CUDA GPU here (cudaGetDeviceCount)");
    if (device_ < 0 || device_ >= count)
      fail(SRT_ERROR_INVALID_ARGUMENT, "CUDA device " + std::to_string(device_) + " does not exist here (" +
                                           std::to_string(count) + " device(s))");
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    check_plan(m, device_);  // before deserializing
    std::ifstream file(m.artifact_path, std::ios::binary);
    if (!file) fail(SRT_ERROR_NOT_FOUND, "cannot open " + m.artifact_path);
    std::vector<char> blob((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    Logger &logger = process_logger();
    last_trt_error().clear();
    runtime_.reset(nvinfer1::createInferRuntime(logger));
    if (!runtime_) fail(SRT_ERROR_BACKEND, "TensorRT: createInferRuntime failed");
    engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
    if (!engine_)
      fail(SRT_ERROR_CORRUPT_ENGINE, "TensorRT could not load " + m.artifact_path + " (" + last_trt_error() +
                                         "): rebuild the plan here with rt-export");
    context_.reset(engine_->createExecutionContext());
    if (!context_) fail(SRT_ERROR_OUT_OF_MEMORY, "TensorRT could not create an execution context for " + m.artifact_path);
    list_io();
    for (IoTensor &t : io_) {
      cuda_check(cudaMallocHost(t.host.out(), t.bytes), "cudaMallocHost");
      cuda_check(cudaMalloc(t.device.out(), t.bytes), "cudaMalloc");
      // A batch-N plan's slots that no frame has filled read zeros, not whatever was in the memory.
      cuda_check(cudaMemset(t.device.get(), 0, t.bytes), "cudaMemset");
    }
    cuda_check(cudaStreamCreate(stream_.out()), "cudaStreamCreate");
    for (Event &e : events_) cuda_check(cudaEventCreate(e.out()), "cudaEventCreate");
#if SWIFTRT_TRT_TENSOR_API
    for (IoTensor &t : io_)
      if (!context_->setTensorAddress(t.info.name.c_str(), t.device.get()))
        fail(SRT_ERROR_BACKEND, "TensorRT: setTensorAddress failed for '" + t.info.name + "'");
#else
    for (IoTensor &t : io_) bindings_.push_back(t.device.get());
#endif
    version_ = "tensorrt " + version_text(runtime_version());
  }

  // The members free everything (in reverse order: events, stream, buffers, context, engine,
  // runtime) once the GPU is done with the last run, which may be on a caller's stream.
  ~TensorRTBackend() override {
    if (queued_) cudaEventSynchronize(events_[3].get());
    if (stream_.get()) cudaStreamSynchronize(stream_.get());
  }

  int kind() const override { return SRT_BACKEND_TENSORRT; }
  std::string describe() const override { return version_; }

  BackendTensor tensor(const std::string &name, bool input) const override { return find(name, input).info; }
  void *buffer(const std::string &name, bool input) override { return find(name, input).host.get(); }
  bool has_device() const override { return true; }
  void *device_buffer(const std::string &name, bool input) override { return find(name, input).device.get(); }
  void *completion_event() override { return events_[3].get(); }
  void *own_stream() override { return stream_.get(); }

  std::vector<std::string> names(bool input) const override {
    std::vector<std::string> out;
    for (const IoTensor &t : io_)
      if (t.input == input) out.push_back(t.info.name);
    return out;
  }

  void run() override {
    enqueue(nullptr, false);
    synchronize();
  }

  // H2D -> enqueue -> D2H on the caller's stream (or the engine's), events around each; the last
  // one (the completion event) after the outputs' copies.
  void enqueue(void *caller_stream, bool input_on_device) override {
    cudaStream_t stream = caller_stream ? static_cast<cudaStream_t>(caller_stream) : stream_.get();
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    cuda_check(cudaEventRecord(events_[0].get(), stream), "cudaEventRecord");
    for (IoTensor &t : io_)
      if (t.input && !input_on_device)
        cuda_check(cudaMemcpyAsync(t.device.get(), t.host.get(), t.bytes, cudaMemcpyHostToDevice, stream), "H2D copy");
    cuda_check(cudaEventRecord(events_[1].get(), stream), "cudaEventRecord");
    last_trt_error().clear();
#if SWIFTRT_TRT_TENSOR_API
    bool ok = context_->enqueueV3(stream);
#else
    bool ok = context_->enqueueV2(bindings_.data(), stream, nullptr);
#endif
    if (!ok) fail(SRT_ERROR_BACKEND, "TensorRT could not enqueue the inference (" + last_trt_error() + ")");
    cuda_check(cudaEventRecord(events_[2].get(), stream), "cudaEventRecord");
    for (IoTensor &t : io_)
      if (!t.input)
        cuda_check(cudaMemcpyAsync(t.host.get(), t.device.get(), t.bytes, cudaMemcpyDeviceToHost, stream), "D2H copy");
    cuda_check(cudaEventRecord(events_[3].get(), stream), "cudaEventRecord");
    queued_ = true;
  }

  void synchronize() override {
    if (!queued_) return;
    queued_ = false;
    cuda_check(cudaEventSynchronize(events_[3].get()), "cudaEventSynchronize");
  }

 private:
  const IoTensor &find(const std::string &name, bool input) const {
    for (const IoTensor &t : io_)
      if (t.input == input && t.info.name == name) return t;
    fail(SRT_ERROR_MANIFEST, std::string("the plan has no ") + (input ? "input" : "output") + " '" + name + "'");
  }
  IoTensor &find(const std::string &name, bool input) {
    return const_cast<IoTensor &>(static_cast<const TensorRTBackend *>(this)->find(name, input));
  }

  void add(const char *name, bool input, const nvinfer1::Dims &dims, nvinfer1::DataType type) {
    IoTensor t;
    t.info.name = name;
    t.input = input;
    t.info.dtype = from_trt(type, t.info.name);
    size_t count = 1;
    for (int i = 0; i < dims.nbDims; ++i) {
      if (dims.d[i] < 0)
        fail(SRT_ERROR_UNSUPPORTED, "plan tensor '" + t.info.name + "' has a dynamic shape; build the plan for a fixed size");
      t.info.shape.push_back(dims.d[i]);
      count *= static_cast<size_t>(dims.d[i]);
    }
    t.bytes = std::max<size_t>(1, count * dtype_size(t.info.dtype));
    io_.push_back(std::move(t));
  }

  void list_io() {
#if SWIFTRT_TRT_TENSOR_API
    for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
      const char *name = engine_->getIOTensorName(i);
      add(name, engine_->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT, engine_->getTensorShape(name),
          engine_->getTensorDataType(name));
    }
#else
    for (int32_t i = 0; i < engine_->getNbBindings(); ++i)
      add(engine_->getBindingName(i), engine_->bindingIsInput(i), engine_->getBindingDimensions(i),
          engine_->getBindingDataType(i));
#endif
  }

  // Declared in the order they are made; destroyed in reverse (the context before its engine,
  // the engine before its runtime).
  int device_;
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  std::vector<IoTensor> io_;
#if !SWIFTRT_TRT_TENSOR_API
  std::vector<void *> bindings_;
#endif
  Stream stream_;
  Event events_[4];
  bool queued_ = false;  // enqueue() ran and synchronize() has not yet waited for it
  std::string version_;
};

}  // namespace

std::unique_ptr<Backend> open_tensorrt(const ModelManifest &manifest, const BackendOptions &options) {
  return std::unique_ptr<Backend>(new TensorRTBackend(manifest, options));
}

}  // namespace srt
