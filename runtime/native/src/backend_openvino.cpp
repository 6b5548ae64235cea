// OpenVINO backend: an .onnx engine compiled for OpenVINO's CPU plugin, as
// runtime/backends/openvino.py does it (LATENCY hint, INFERENCE_PRECISION_HINT f32 so an engine
// keeps the precision its manifest states, optional thread count). The infer request's own
// tensors are the host buffers: the preprocessor writes straight into the input tensor.
#include <openvino/openvino.hpp>
#if __has_include(<openvino/core/log.hpp>)
#include <openvino/core/log.hpp>  // ov::util::set_log_callback (OpenVINO 2025+)
#define SWIFTRT_OV_LOG_CALLBACK 1
#endif

#include <map>

#include "backend.hpp"
#include "error.hpp"
#include "log.hpp"

namespace srt {

// srt_set_log_callback: OpenVINO's messages (its default: standard output) go to the caller's hook.
void route_openvino_log(bool to_hook) noexcept {
#ifdef SWIFTRT_OV_LOG_CALLBACK
  try {
    if (!to_hook) {
      ov::util::reset_log_callback();
      return;
    }
    ov::util::set_log_callback([](std::string_view message) {
      std::string line(message);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      int32_t severity = SRT_LOG_INFO;
      if (line.find("ERROR") != std::string::npos) severity = SRT_LOG_ERROR;
      else if (line.find("WARNING") != std::string::npos) severity = SRT_LOG_WARNING;
      log(severity, line.c_str(), "OpenVINO");
    });
  } catch (...) {  // logging must never take the caller down
  }
#else
  (void)to_hook;
#endif
}

namespace {

DType from_ov(const ov::element::Type &t, const std::string &name) {
  if (t == ov::element::u8) return DType::U8;
  if (t == ov::element::i32) return DType::I32;
  if (t == ov::element::i64) return DType::I64;
  if (t == ov::element::f16) return DType::F16;
  if (t == ov::element::f32) return DType::F32;
  fail(SRT_ERROR_UNSUPPORTED, "tensor '" + name + "' has element type " + t.get_type_name() + ", which this core does not handle");
}

// OpenVINO's messages nest "Exception from src/...cpp:NNN:" prefixes; keep what the user can act on.
std::string ov_message(const char *what) {
  std::string text = what, out;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 15, "Exception from ") == 0) {
      size_t colon = text.find(':', i);
      colon = colon == std::string::npos ? colon : text.find(':', colon + 1);  // path:line:
      if (colon != std::string::npos) {
        i = colon + 1;
        continue;
      }
    }
    out += text[i++];
  }
  size_t start = out.find_first_not_of(" \n\t");
  return start == std::string::npos ? text : out.substr(start);
}

// One Core per process: it is thread-safe and loading its plugins is the slow part.
ov::Core &core() {
  static ov::Core instance;
  return instance;
}

class OpenVinoBackend : public Backend {
 public:
  OpenVinoBackend(const ModelManifest &m, const BackendOptions &options) {
    ov::AnyMap config{{ov::hint::performance_mode.name(), ov::hint::PerformanceMode::LATENCY},
                      {ov::hint::inference_precision.name(), ov::element::f32}};
    if (options.threads > 0) config[ov::inference_num_threads.name()] = static_cast<int32_t>(options.threads);
    try {
      compiled_ = core().compile_model(m.artifact_path, "CPU", config);
    } catch (const std::exception &e) {
      fail(SRT_ERROR_CORRUPT_ENGINE, "OpenVINO cannot compile " + m.artifact_path + ": " + ov_message(e.what()));
    }
    request_ = compiled_.create_infer_request();
    add(compiled_.inputs(), true);
    add(compiled_.outputs(), false);
    const ov::Version v = ov::get_openvino_version();
    version_ = std::string("openvino ") + (v.buildNumber ? v.buildNumber : "?");
    size_t dash = version_.find('-');
    if (dash != std::string::npos) version_.resize(dash);
  }

  int kind() const override { return SRT_BACKEND_OPENVINO; }
  std::string describe() const override { return version_; }

  BackendTensor tensor(const std::string &name, bool input) const override { return find(name, input).info; }

  void *buffer(const std::string &name, bool input) override {
    Entry &e = const_cast<Entry &>(find(name, input));
    if (!e.data) e.data = request_.get_tensor(e.port).data();
    return e.data;
  }

  void run() override {
    try {
      request_.infer();
    } catch (const std::exception &e) {
      fail(SRT_ERROR_BACKEND, std::string("OpenVINO inference failed: ") + ov_message(e.what()));
    }
  }

  std::vector<std::string> names(bool input) const override {
    std::vector<std::string> out;
    for (const Entry &e : entries_)
      if (e.input == input)
        for (const std::string &n : e.names) out.push_back(n);
    return out;
  }

 private:
  struct Entry {
    BackendTensor info;
    ov::Output<const ov::Node> port;
    std::vector<std::string> names;
    bool input;
    void *data = nullptr;
  };

  void add(const std::vector<ov::Output<const ov::Node>> &ports, bool input) {
    for (const auto &port : ports) {
      Entry e;
      e.port = port;
      e.input = input;
      e.info.name = port.get_any_name();
      e.names.assign(port.get_names().begin(), port.get_names().end());
      const ov::PartialShape &ps = port.get_partial_shape();
      if (ps.is_dynamic()) fail(SRT_ERROR_UNSUPPORTED, "tensor '" + e.info.name + "' has a dynamic shape; the core needs fixed shapes");
      for (const auto &d : port.get_shape()) e.info.shape.push_back(static_cast<int64_t>(d));
      e.info.dtype = from_ov(port.get_element_type(), e.info.name);
      entries_.push_back(std::move(e));
    }
  }

  const Entry &find(const std::string &name, bool input) const {
    for (const Entry &e : entries_)
      if (e.input == input)
        for (const std::string &n : e.names)
          if (n == name) return e;
    fail(SRT_ERROR_MANIFEST, std::string("the model has no ") + (input ? "input" : "output") + " '" + name + "'");
  }

  ov::CompiledModel compiled_;
  mutable ov::InferRequest request_;
  std::vector<Entry> entries_;
  std::string version_;
};

}  // namespace

std::unique_ptr<Backend> open_openvino(const ModelManifest &manifest, const BackendOptions &options) {
  return std::unique_ptr<Backend>(new OpenVinoBackend(manifest, options));
}

}  // namespace srt
