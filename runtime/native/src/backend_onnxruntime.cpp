// ONNX Runtime backend: an .onnx engine run through ONNX Runtime's C API (onnxruntime_c_api.h),
// with the session options the Python engine set before issue 26: all graph optimizations, an
// intra-op thread count (one inter-op thread), intra-op spinning on or off, and the execution
// providers TensorRT -> CUDA -> CPU by availability (or the caller's list). With TensorRT's
// provider, FP16 / INT8 follow the manifest's precision and its engines and timing caches are
// kept in a folder per artifact, as the Python path keeps them.
//
// The C API is a table of function pointers that only grows: GetApi(N) returns the table of
// version N (ONNX Runtime 1.N), or NULL from a library older than N. This backend asks for
// kOrtApiMin, the oldest table with every call it makes on every path, so it runs on any
// libonnxruntime from 1.10 on (the wheel's; on a Jetson ONNX Runtime's release build of JetPack's
// version: 1.10 on JetPack 4, 1.16 on JetPack 5). What came later is used only where the loaded
// library has it (its version string): the CUDA provider's V2 options (1.11), TensorRT's timing
// cache (1.11) and its shared folder (1.17), the same gates the Python engine had.
//
// Buffers: every input and output is a host buffer of this backend wrapped once in an OrtValue;
// Run() writes the outputs into them (pre-allocated outputs), so a frame costs no allocation.
#include <onnxruntime_c_api.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "backend.hpp"
#include "error.hpp"

namespace srt {
namespace {

// ORT 1.10: the oldest C API with every call made here (the TensorRT provider's V2 options are its
// newest); calls and provider options from later versions are gated by loaded_at_least().
constexpr uint32_t kOrtApiMin = 10;
static_assert(kOrtApiMin <= ORT_API_VERSION, "onnxruntime_c_api.h is older than this backend needs");

// Whether the loaded library is ONNX Runtime 1.<minor> or later (its version string, "1.16.3"):
// read instead of probing GetApi(N), which prints to stderr from a library older than N.
bool loaded_at_least(unsigned minor) {
  static const unsigned loaded = [] {
    unsigned major = 0, min = 0;
    if (std::sscanf(OrtGetApiBase()->GetVersionString(), "%u.%u", &major, &min) != 2) return 0u;
    return major > 1 ? ~0u : major == 1 ? min : 0u;
  }();
  return loaded >= minor;
}

// One line where `what` needs a newer library than the one loaded.
void require(unsigned minor, const std::string &what) {
  if (!loaded_at_least(minor))
    fail(SRT_ERROR_UNSUPPORTED, what + " needs ONNX Runtime 1." + std::to_string(minor) + " or later; the library loaded is " +
                                    OrtGetApiBase()->GetVersionString());
}

const OrtApi &api() {
  static const OrtApi *table = loaded_at_least(kOrtApiMin) ? OrtGetApiBase()->GetApi(kOrtApiMin) : nullptr;
  if (!table)
    fail(SRT_ERROR_UNSUPPORTED, std::string("the ONNX Runtime library loaded (") + OrtGetApiBase()->GetVersionString() +
                                    ") does not provide C API version " + std::to_string(kOrtApiMin) +
                                    ": libswiftrt needs ONNX Runtime 1." + std::to_string(kOrtApiMin) + " or later");
  return *table;
}

// The CUDA provider is configured through its V2 options (CreateCUDAProviderOptions), C API 11.
constexpr unsigned kOrtCudaMin = 11;

// An OrtStatus (NULL = success) -> nothing, or srt::Error with ORT's message.
// `what` as a C string: the per-frame call (Run) builds no std::string unless it fails.
void check(OrtStatus *status, srt_status code, const char *what) {
  if (!status) return;
  std::string message = api().GetErrorMessage(status);
  api().ReleaseStatus(status);
  fail(code, std::string(what) + ": " + message);
}

// One environment per process (ORT's logging and global thread state); warnings stay quiet.
OrtEnv *env() {
  static OrtEnv *instance = [] {
    OrtEnv *e = nullptr;
    check(api().CreateEnv(ORT_LOGGING_LEVEL_ERROR, "swiftrt", &e), SRT_ERROR_BACKEND, "ONNX Runtime cannot start");
    return e;
  }();
  return instance;
}

DType from_ort(ONNXTensorElementDataType t, const std::string &name) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return DType::U8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return DType::I32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return DType::I64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return DType::F16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return DType::F32;
    default: break;
  }
  fail(SRT_ERROR_UNSUPPORTED, "tensor '" + name + "' has ONNX element type " + std::to_string(static_cast<int>(t)) +
                                  ", which this core does not handle");
}

ONNXTensorElementDataType to_ort(DType t) {
  switch (t) {
    case DType::U8: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
    case DType::I32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    case DType::I64: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    case DType::F16: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    case DType::F32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

// "tensorrt", "trt", "cuda", "cpu" or ORT's own names -> ORT's names.
std::string provider_name(std::string name) {
  size_t a = name.find_first_not_of(" \t"), b = name.find_last_not_of(" \t");
  name = a == std::string::npos ? "" : name.substr(a, b - a + 1);
  std::string lower = name;
  for (char &c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "cpu") return "CPUExecutionProvider";
  if (lower == "cuda") return "CUDAExecutionProvider";
  if (lower == "tensorrt" || lower == "trt") return "TensorrtExecutionProvider";
  return name;
}

std::vector<std::string> available_providers() {
  char **names = nullptr;
  int count = 0;
  check(api().GetAvailableProviders(&names, &count), SRT_ERROR_BACKEND, "ONNX Runtime cannot list its providers");
  std::vector<std::string> out(names, names + count);
  OrtStatus *released = api().ReleaseAvailableProviders(names, count);  // never fails (its doc)
  if (released) api().ReleaseStatus(released);
  return out;
}

// The caller's comma list (checked against what this ORT has), else TensorRT -> CUDA -> CPU as available.
std::vector<std::string> choose_providers(const std::string &requested) {
  std::vector<std::string> available = available_providers(), out, missing;
  auto has = [&](const std::string &p) { return std::find(available.begin(), available.end(), p) != available.end(); };
  if (requested.empty()) {  // CUDA left out where this library is too old to configure it
    for (const char *p : {"TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"})
      if (has(p) && (std::strcmp(p, "CUDAExecutionProvider") != 0 || loaded_at_least(kOrtCudaMin))) out.push_back(p);
    return out;
  }
  size_t start = 0;
  while (start <= requested.size()) {
    size_t comma = requested.find(',', start);
    std::string name = provider_name(requested.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (name == "CUDAExecutionProvider") require(kOrtCudaMin, "the core's CUDA provider (its V2 options)");
    if (!name.empty()) (has(name) ? out : missing).push_back(name);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  auto join = [](const std::vector<std::string> &v) {
    std::string s;
    for (const std::string &x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if (!missing.empty())
    fail(SRT_ERROR_UNSUPPORTED, "ONNX Runtime provider(s) " + join(missing) + " not available here; available: " + join(available));
  if (out.empty()) fail(SRT_ERROR_INVALID_ARGUMENT, "options->providers names no execution provider");
  return out;
}

// The cache root: $SWIFTRT_CACHE, else ~/.cache/swiftrt/ort-tensorrt.
std::string cache_root() {
  if (const char *root = std::getenv("SWIFTRT_CACHE")) if (*root) return root;
  std::string base;
  if (const char *xdg = std::getenv("XDG_CACHE_HOME")) base = xdg;
  if (base.empty()) {
    const char *home = std::getenv("HOME");
    base = std::string(home && *home ? home : ".") + "/.cache";
  }
  return base + "/swiftrt/ort-tensorrt";
}

void make_dirs(const std::string &folder) {
  for (size_t i = 1; i <= folder.size(); ++i) {
    if (i < folder.size() && folder[i] != '/') continue;
    std::string part = folder.substr(0, i);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      fail(SRT_ERROR_INVALID_ARGUMENT, "cannot create the TensorRT engine cache " + folder + ": " + std::strerror(errno) +
                                           " (set SWIFTRT_CACHE)");
  }
}

struct FreeBuffer {
  void operator()(void *p) const { std::free(p); }
};
// Owners of ORT's objects, so that a constructor failing half-way releases what it made.
struct ReleaseSession {
  void operator()(OrtSession *p) const { api().ReleaseSession(p); }
};
struct ReleaseMemoryInfo {
  void operator()(OrtMemoryInfo *p) const { api().ReleaseMemoryInfo(p); }
};
struct ReleaseValue {
  void operator()(OrtValue *p) const { api().ReleaseValue(p); }
};

class OnnxRuntimeBackend : public Backend {
 public:
  OnnxRuntimeBackend(const ModelManifest &m, const BackendOptions &options) {
    const OrtApi &ort = api();
    OrtSessionOptions *so = nullptr;
    check(ort.CreateSessionOptions(&so), SRT_ERROR_BACKEND, "ONNX Runtime session options");
    std::unique_ptr<OrtSessionOptions, void (*)(OrtSessionOptions *)> session_options(so, [](OrtSessionOptions *p) {
      api().ReleaseSessionOptions(p);
    });
    check(ort.SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL), SRT_ERROR_BACKEND, "ONNX Runtime options");
    if (options.threads > 0) {
      check(ort.SetIntraOpNumThreads(so, options.threads), SRT_ERROR_BACKEND, "ONNX Runtime threads");
      check(ort.SetInterOpNumThreads(so, 1), SRT_ERROR_BACKEND, "ONNX Runtime threads");
    }
    if (options.spin >= 0)
      check(ort.AddSessionConfigEntry(so, "session.intra_op.allow_spinning", options.spin ? "1" : "0"), SRT_ERROR_BACKEND,
            "ONNX Runtime spinning");
    providers_ = choose_providers(options.providers);
    for (const std::string &p : providers_) {
      if (p == "TensorrtExecutionProvider") append_tensorrt(so, m, options);
      else if (p == "CUDAExecutionProvider") append_cuda(so, options);
      else if (p != "CPUExecutionProvider")
        fail(SRT_ERROR_UNSUPPORTED, "the core's ONNX Runtime backend does not configure the " + p +
                                        " provider (use tensorrt, cuda or cpu)");
    }
    OrtSession *session = nullptr;
    check(ort.CreateSession(env(), m.artifact_path.c_str(), so, &session), SRT_ERROR_CORRUPT_ENGINE,
          ("ONNX Runtime cannot load " + m.artifact_path).c_str());
    session_.reset(session);
    OrtMemoryInfo *memory = nullptr;
    check(ort.CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory), SRT_ERROR_BACKEND, "ONNX Runtime memory");
    memory_.reset(memory);
    add(true);
    add(false);
    version_ = std::string("onnxruntime ") + OrtGetApiBase()->GetVersionString() + " " + short_name(providers_[0]);
  }

  int kind() const override { return SRT_BACKEND_ONNXRUNTIME; }
  std::string describe() const override { return version_; }
  BackendTensor tensor(const std::string &name, bool input) const override { return find(name, input).info; }
  void *buffer(const std::string &name, bool input) override { return find(name, input).data.get(); }

  void run() override {
    check(api().Run(session_.get(), nullptr, input_names_.data(), input_values_.data(), input_values_.size(),
                    output_names_.data(), output_names_.size(), output_values_.data()),
          SRT_ERROR_BACKEND, "ONNX Runtime inference failed");
  }

  std::vector<std::string> names(bool input) const override {
    std::vector<std::string> out;
    for (const Entry &e : entries_)
      if (e.input == input) out.push_back(e.info.name);
    return out;
  }

 private:
  struct Entry {
    BackendTensor info;
    bool input = false;
    std::unique_ptr<void, FreeBuffer> data;
    std::unique_ptr<OrtValue, ReleaseValue> value;
  };

  static std::string short_name(const std::string &provider) {
    if (provider == "TensorrtExecutionProvider") return "tensorrt";
    if (provider == "CUDAExecutionProvider") return "cuda";
    if (provider == "CPUExecutionProvider") return "cpu";
    return provider;
  }

  // TensorRT provider options: FP16 for fp16/int8 artifacts, INT8 for int8
  // ones (explicit Q/DQ), engines in <cache>/<sha256[:16]>; a timing cache from ORT 1.11 (beside
  // the engines), one for all models in the cache root from ORT 1.17 (older ones refuse the key).
  // Compiled here; run only where ONNX Runtime has TensorRT (a Jetson): not run on hardware.
  void append_tensorrt(OrtSessionOptions *so, const ModelManifest &m, const BackendOptions &options) {
    const OrtApi &ort = api();
    std::string root = cache_root(), sha = m.sha256.empty() ? "unknown" : m.sha256.substr(0, 16);
    std::string engines = root + "/" + sha, device = std::to_string(options.device);
    make_dirs(engines);
    const std::string &precision = m.precision.empty() ? std::string("fp32") : m.precision;
    const char *fp16 = precision == "fp16" || precision == "int8" ? "1" : "0";
    const char *int8 = precision == "int8" ? "1" : "0";
    const char *keys[] = {"device_id", "trt_engine_cache_enable", "trt_engine_cache_path", "trt_fp16_enable",
                          "trt_int8_enable", "trt_timing_cache_enable", "trt_timing_cache_path"};
    const char *values[] = {device.c_str(), "1", engines.c_str(), fp16, int8, "1", root.c_str()};
    size_t count = loaded_at_least(17) ? 7 : loaded_at_least(11) ? 6 : 5;  // the keys this library knows
    OrtTensorRTProviderOptionsV2 *trt = nullptr;
    check(ort.CreateTensorRTProviderOptions(&trt), SRT_ERROR_BACKEND, "ONNX Runtime TensorRT provider");
    std::unique_ptr<OrtTensorRTProviderOptionsV2, void (*)(OrtTensorRTProviderOptionsV2 *)> owned(
        trt, [](OrtTensorRTProviderOptionsV2 *p) { api().ReleaseTensorRTProviderOptions(p); });
    check(ort.UpdateTensorRTProviderOptions(trt, keys, values, count), SRT_ERROR_BACKEND,
          "ONNX Runtime TensorRT provider options");
    check(ort.SessionOptionsAppendExecutionProvider_TensorRT_V2(so, trt), SRT_ERROR_BACKEND,
          "ONNX Runtime TensorRT provider");
  }

  // Compiled here; run only where ONNX Runtime has CUDA: not run on hardware.
  void append_cuda(OrtSessionOptions *so, const BackendOptions &options) {
    require(kOrtCudaMin, "the core's CUDA provider (its V2 options)");  // choose_providers kept it out
    const OrtApi &ort = api();
    std::string device = std::to_string(options.device);
    const char *keys[] = {"device_id"};
    const char *values[] = {device.c_str()};
    OrtCUDAProviderOptionsV2 *cuda = nullptr;
    check(ort.CreateCUDAProviderOptions(&cuda), SRT_ERROR_BACKEND, "ONNX Runtime CUDA provider");
    std::unique_ptr<OrtCUDAProviderOptionsV2, void (*)(OrtCUDAProviderOptionsV2 *)> owned(
        cuda, [](OrtCUDAProviderOptionsV2 *p) { api().ReleaseCUDAProviderOptions(p); });
    check(ort.UpdateCUDAProviderOptions(cuda, keys, values, 1), SRT_ERROR_BACKEND, "ONNX Runtime CUDA provider options");
    check(ort.SessionOptionsAppendExecutionProvider_CUDA_V2(so, cuda), SRT_ERROR_BACKEND, "ONNX Runtime CUDA provider");
  }

  // Every input (or output): name, fixed shape, dtype, a host buffer and its OrtValue.
  void add(bool input) {
    const OrtApi &ort = api();
    OrtAllocator *allocator = nullptr;
    check(ort.GetAllocatorWithDefaultOptions(&allocator), SRT_ERROR_BACKEND, "ONNX Runtime allocator");
    size_t count = 0;
    check(input ? ort.SessionGetInputCount(session_.get(), &count) : ort.SessionGetOutputCount(session_.get(), &count),
          SRT_ERROR_BACKEND, "ONNX Runtime model I/O");
    for (size_t i = 0; i < count; ++i) {
      Entry e;
      e.input = input;
      char *name = nullptr;
      check(input ? ort.SessionGetInputName(session_.get(), i, allocator, &name) : ort.SessionGetOutputName(session_.get(), i, allocator, &name),
            SRT_ERROR_BACKEND, "ONNX Runtime model I/O");
      e.info.name = name;
      check(ort.AllocatorFree(allocator, name), SRT_ERROR_BACKEND, "ONNX Runtime allocator");
      OrtTypeInfo *type = nullptr;
      check(input ? ort.SessionGetInputTypeInfo(session_.get(), i, &type) : ort.SessionGetOutputTypeInfo(session_.get(), i, &type),
            SRT_ERROR_BACKEND, "ONNX Runtime model I/O");
      std::unique_ptr<OrtTypeInfo, void (*)(OrtTypeInfo *)> owned(type, [](OrtTypeInfo *p) { api().ReleaseTypeInfo(p); });
      const OrtTensorTypeAndShapeInfo *tensor = nullptr;
      check(ort.CastTypeInfoToTensorInfo(type, &tensor), SRT_ERROR_BACKEND, "ONNX Runtime model I/O");
      if (!tensor) fail(SRT_ERROR_UNSUPPORTED, "'" + e.info.name + "' is not a tensor; the core handles tensors only");
      ONNXTensorElementDataType element;
      size_t dims = 0;
      check(ort.GetTensorElementType(tensor, &element), SRT_ERROR_BACKEND, "ONNX Runtime model I/O");
      check(ort.GetDimensionsCount(tensor, &dims), SRT_ERROR_BACKEND, "ONNX Runtime model I/O");
      e.info.shape.resize(dims);
      check(ort.GetDimensions(tensor, e.info.shape.data(), dims), SRT_ERROR_BACKEND, "ONNX Runtime model I/O");
      size_t n = 1;
      for (int64_t d : e.info.shape) {
        if (d <= 0) fail(SRT_ERROR_UNSUPPORTED, "tensor '" + e.info.name + "' has a dynamic shape; the core needs fixed shapes");
        n *= static_cast<size_t>(d);
      }
      e.info.dtype = from_ort(element, e.info.name);
      size_t bytes = n * dtype_size(e.info.dtype);
      e.data.reset(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
      if (!e.data) throw std::bad_alloc();
      std::memset(e.data.get(), 0, bytes);
      OrtValue *value = nullptr;
      check(ort.CreateTensorWithDataAsOrtValue(memory_.get(), e.data.get(), bytes, e.info.shape.data(), dims,
                                               to_ort(e.info.dtype), &value),
            SRT_ERROR_BACKEND, "ONNX Runtime tensor");
      e.value.reset(value);
      entries_.push_back(std::move(e));
    }
    input_names_.clear(), output_names_.clear(), input_values_.clear(), output_values_.clear();
    for (const Entry &x : entries_) {
      (x.input ? input_names_ : output_names_).push_back(x.info.name.c_str());
      if (x.input) input_values_.push_back(x.value.get());
      else output_values_.push_back(x.value.get());
    }
  }

  const Entry &find(const std::string &name, bool input) const {
    for (const Entry &e : entries_)
      if (e.input == input && e.info.name == name) return e;
    fail(SRT_ERROR_MANIFEST, std::string("the model has no ") + (input ? "input" : "output") + " '" + name + "'");
  }

  std::unique_ptr<OrtSession, ReleaseSession> session_;
  std::unique_ptr<OrtMemoryInfo, ReleaseMemoryInfo> memory_;
  std::vector<std::string> providers_;
  std::vector<Entry> entries_;
  std::vector<const char *> input_names_, output_names_;
  std::vector<const OrtValue *> input_values_;
  std::vector<OrtValue *> output_values_;
  std::string version_;
};

}  // namespace

std::unique_ptr<Backend> open_onnxruntime(const ModelManifest &manifest, const BackendOptions &options) {
  return std::unique_ptr<Backend>(new OnnxRuntimeBackend(manifest, options));
}

}  // namespace srt
