// The TensorRT backend (src/backend_tensorrt.cpp, compiled unchanged) against a test double of
// TensorRT and CUDA (tests/trt_double/): nothing leaks when opening fails at any step, and one
// logger lives for the whole process.
//
// The double counts every object and handle it hands out until it is released. A successful
// open counts its fallible steps (runtime, deserialization, context, device queries, pinned and
// device buffers, stream, events, tensor addresses); then the open is repeated failing at each
// step in turn, and after each refusal nothing may be alive. A dynamic-shape plan (refused after
// the context exists) and a run + close are checked the same way. What this cannot show: how the
// real TensorRT and CUDA behave (not run on hardware).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <NvInfer.h>
#include <NvInferPlugin.h>

#include "backend.hpp"
#include "error.hpp"
#include "log.hpp"

// ---- the double -------------------------------------------------------------------------------

namespace dbl {

int steps = 0;         // fallible calls so far
int fail_at = -1;      // the fallible call that fails (1-based), -1: none
bool dynamic = false;  // the plan's output has a dynamic dimension
std::map<std::string, int> live;
void *plugin_logger = nullptr;
int plugin_inits = 0;
nvinfer1::ILogger *runtime_logger = nullptr;

bool fails() { return ++steps == fail_at; }
int alive() {
  int n = 0;
  for (const auto &kv : live) n += kv.second;
  return n;
}

struct Tensor {
  const char *name;
  nvinfer1::TensorIOMode mode;
  nvinfer1::Dims dims;
};
std::vector<Tensor> tensors() {
  nvinfer1::Dims in{4, {1, 48, 80, 3}}, out{3, {1, 48, dynamic ? -1 : 80}};
  return {{"frame", nvinfer1::TensorIOMode::kINPUT, in}, {"class_map", nvinfer1::TensorIOMode::kOUTPUT, out}};
}

cudaError_t made(const char *what, void **handle, size_t size) {
  if (fails()) return cudaErrorMemoryAllocation;
  *handle = ::operator new(size ? size : 1);
  ++live[what];
  return cudaSuccess;
}
cudaError_t released(const char *what, void *handle) {
  if (!handle) return cudaSuccess;
  --live[what];
  ::operator delete(handle);
  return cudaSuccess;
}

}  // namespace dbl

const char *cudaGetErrorString(cudaError_t) { return "test double: the call was made to fail"; }
cudaError_t cudaGetDeviceCount(int *count) {
  if (dbl::fails()) return cudaErrorNoDevice;
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int) { return dbl::fails() ? cudaErrorUnknown : cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int) {
  if (dbl::fails()) return cudaErrorUnknown;
  std::memset(prop, 0, sizeof *prop);
  std::strcpy(prop->name, "Test Double GPU");
  prop->major = 8, prop->minor = 7;
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t n) { return dbl::made("pinned buffer", p, n); }
cudaError_t cudaFreeHost(void *p) { return dbl::released("pinned buffer", p); }
cudaError_t cudaMalloc(void **p, size_t n) { return dbl::made("device buffer", p, n); }
cudaError_t cudaFree(void *p) { return dbl::released("device buffer", p); }
cudaError_t cudaMemset(void *, int, size_t) { return cudaSuccess; }
cudaError_t cudaStreamCreate(cudaStream_t *s) { return dbl::made("stream", reinterpret_cast<void **>(s), 8); }
cudaError_t cudaStreamDestroy(cudaStream_t s) { return dbl::released("stream", s); }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t *e) { return dbl::made("event", reinterpret_cast<void **>(e), 8); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { return dbl::released("event", e); }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(dst, src, n);
  return cudaSuccess;
}

namespace nvinfer1 {

IExecutionContext::~IExecutionContext() noexcept { --dbl::live["execution context"]; }
bool IExecutionContext::setTensorAddress(char const *, void *data) noexcept { return data && !dbl::fails(); }
bool IExecutionContext::enqueueV3(cudaStream_t) noexcept { return true; }

ICudaEngine::~ICudaEngine() noexcept { --dbl::live["engine"]; }
IExecutionContext *ICudaEngine::createExecutionContext() noexcept {
  if (dbl::fails()) return nullptr;
  ++dbl::live["execution context"];
  return new IExecutionContext;
}
int32_t ICudaEngine::getNbIOTensors() const noexcept { return 2; }
char const *ICudaEngine::getIOTensorName(int32_t i) const noexcept { return i == 0 ? "frame" : "class_map"; }
TensorIOMode ICudaEngine::getTensorIOMode(char const *name) const noexcept {
  for (const auto &t : dbl::tensors())
    if (std::strcmp(t.name, name) == 0) return t.mode;
  return TensorIOMode::kNONE;
}
Dims ICudaEngine::getTensorShape(char const *name) const noexcept {
  for (const auto &t : dbl::tensors())
    if (std::strcmp(t.name, name) == 0) return t.dims;
  return Dims{-1, {}};
}
DataType ICudaEngine::getTensorDataType(char const *) const noexcept { return DataType::kUINT8; }

IRuntime::~IRuntime() noexcept { --dbl::live["runtime"]; }
ICudaEngine *IRuntime::deserializeCudaEngine(void const *, std::size_t) noexcept {
  if (dbl::fails()) {
    dbl::runtime_logger->log(ILogger::Severity::kERROR, "test double: the plan cannot be deserialized");
    return nullptr;
  }
  ++dbl::live["engine"];
  return new ICudaEngine;
}

IRuntime *createInferRuntime(ILogger &logger) noexcept {
  if (dbl::fails()) return nullptr;
  dbl::runtime_logger = &logger;
  ++dbl::live["runtime"];
  return new IRuntime;
}

}  // namespace nvinfer1

extern "C" int32_t getInferLibVersion() noexcept { return 100300; }  // 10.3.0
extern "C" bool initLibNvInferPlugins(void *logger, char const *) {
  dbl::plugin_logger = logger;
  ++dbl::plugin_inits;
  return true;
}

// ---- the test ---------------------------------------------------------------------------------

namespace {

int failures = 0;
void check(bool ok, const std::string &what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

std::string report() {
  std::string s;
  for (const auto &kv : dbl::live)
    if (kv.second) s += " " + kv.first + " x" + std::to_string(kv.second);
  return s.empty() ? " nothing" : s;
}

std::vector<std::string> logged;
void hook(int32_t, const char *message, void *) { logged.push_back(message); }

}  // namespace

int main(int argc, char **argv) {
  const std::string plan = std::string(argc > 1 ? argv[1] : ".") + "/double.plan";
  std::ofstream(plan, std::ios::binary) << "a plan for the test double";
  srt::ModelManifest m;
  m.artifact_path = plan;
  m.manifest_path = plan + ".json";
  m.tensorrt = srt::Json::parse(R"({"version": "10.3.0", "gpu": "Test Double GPU", "compute_capability": "8.7"})", "test");
  srt::BackendOptions options;
  srt::set_log_callback(hook, nullptr);

  // A successful open, a run and a close: everything made is released.
  dbl::steps = 0, dbl::fail_at = -1;
  int total_steps = 0;
  {
    std::unique_ptr<srt::Backend> b = srt::open_tensorrt(m, options);
    total_steps = dbl::steps;
    check(dbl::live["pinned buffer"] == 2 && dbl::live["device buffer"] == 2 && dbl::live["event"] == 4 &&
              dbl::live["stream"] == 1 && dbl::live["execution context"] == 1,
          "an open engine holds its buffers, stream, events and context:" + report());
    std::memset(b->buffer("frame", true), 7, 48 * 80 * 3);
    b->run();
    check(b->device_buffer("frame", true) != nullptr && b->completion_event() != nullptr, "device buffer and event");
  }
  check(dbl::alive() == 0, "after close:" + report());
  check(total_steps >= 12, "the open has " + std::to_string(total_steps) + " fallible steps");

  // Fail at every step in turn: a one-line srt::Error, and nothing alive afterwards.
  for (int k = 1; k <= total_steps; ++k) {
    dbl::steps = 0, dbl::fail_at = k;
    bool threw = false;
    std::string message;
    try {
      std::unique_ptr<srt::Backend> b = srt::open_tensorrt(m, options);
    } catch (const srt::Error &e) {
      threw = true, message = e.what();
    }
    check(threw, "failing step " + std::to_string(k) + " was not refused");
    check(dbl::alive() == 0, "failing step " + std::to_string(k) + " (" + message + ") leaked:" + report());
    if (message.find("deserialized") != std::string::npos)
      check(message.find("test double: the plan cannot be deserialized") != std::string::npos,
            "TensorRT's error is in the message: " + message);
  }
  dbl::fail_at = -1;

  // A dynamic-shape plan is refused after the runtime, engine and context exist.
  dbl::dynamic = true;
  try {
    std::unique_ptr<srt::Backend> b = srt::open_tensorrt(m, options);
    check(false, "a dynamic-shape plan was opened");
  } catch (const srt::Error &e) {
    check(e.status == SRT_ERROR_UNSUPPORTED, std::string("dynamic shape: ") + e.what());
  }
  check(dbl::alive() == 0, "dynamic-shape refusal leaked:" + report());
  dbl::dynamic = false;

  // One logger for the process, registered with the plugin library once, alive after every
  // backend is gone (initLibNvInferPlugins keeps the pointer); it speaks through the log hook.
  check(dbl::plugin_inits == 1, "initLibNvInferPlugins called " + std::to_string(dbl::plugin_inits) + " times");
  check(dbl::plugin_logger == dbl::runtime_logger, "the plugins' logger is the runtime's");
  logged.clear();
  static_cast<nvinfer1::ILogger *>(dbl::plugin_logger)->log(nvinfer1::ILogger::Severity::kWARNING, "late plugin message");
  check(logged.size() == 1 && logged[0] == "late plugin message", "the plugins' logger still speaks through the hook");
  srt::set_log_callback(nullptr, nullptr);

  if (failures) return 1;
  std::printf("TensorRT backend (test double): %d failing steps, nothing leaked; one process logger\n", total_steps);
  return 0;
}
