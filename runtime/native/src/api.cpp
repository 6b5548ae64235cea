// The C ABI: argument checks, struct_size checks, and the wall that no exception crosses.
// Every entry point runs its body through guard(), which turns srt::Error, std::bad_alloc and
// anything else into a status and one line in the thread-local last error.
// This file defines the exported srt_open_options_init of ABI 1's first header, not swiftrt.h's inline.
#define SWIFTRT_BUILDING_LIBRARY
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>

#include "engine.hpp"
#include "error.hpp"
#include "log.hpp"
#include "preprocess.hpp"
#include "swiftrt.h"

extern "C" SRT_API srt_status srt_open_options_init(srt_open_options *options);

#define SRT_STR2(x) #x
#define SRT_STR(x) SRT_STR2(x)
#define SRT_VERSION_STRING SRT_STR(SRT_VERSION_MAJOR) "." SRT_STR(SRT_VERSION_MINOR) "." SRT_STR(SRT_VERSION_PATCH)
static_assert(SRT_VERSION_MAJOR == SRT_ABI_VERSION, "the ABI version is the major version");

struct srt_engine {
  std::unique_ptr<srt::Engine> impl;
  // Set while a call runs a frame (or an asynchronous run waits for srt_engine_wait): a second
  // caller gets SRT_ERROR_BUSY instead of a result mixed with another frame's.
  std::atomic<bool> busy{false};
  std::atomic<bool> pending{false};  // srt_engine_run_async started, srt_engine_wait not yet called
  srt_result *pending_result = nullptr;  // the caller's struct of that run
  srt_result pending_copy{};             // what the core fills until srt_engine_wait
  uint32_t pending_size = 0;             // the caller's struct_size, checked when the run started
};

namespace {

thread_local std::string last_error;

// One line: newlines and tabs become spaces, runs of spaces collapse, capped at 600 characters.
void set_error(const std::string &text) {
  std::string line;
  line.reserve(text.size());
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    if (c == ' ' && (line.empty() || line.back() == ' ')) continue;
    line += c;
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  if (line.size() > 600) line = line.substr(0, 597) + "...";
  try {
    last_error = line;
  } catch (...) {
    last_error.clear();
  }
}

template <typename F>
srt_status guard(F body) {
  try {
    body();
    return SRT_OK;
  } catch (const srt::Error &e) {
    set_error(e.what());
    return e.status;
  } catch (const std::bad_alloc &) {
    set_error("out of memory");
    return SRT_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception &e) {
    set_error(std::string("internal error: ") + e.what());
    return SRT_ERROR_INTERNAL;
  } catch (...) {
    set_error("internal error: unknown exception");
    return SRT_ERROR_INTERNAL;
  }
}

void require(const void *p, const char *what) {
  if (!p) srt::fail(SRT_ERROR_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

// ---- struct evolution ------------------------------------------------------------------------
// Layout<T>::first: where each struct ended in ABI 1's first header (0.1.0, tests/abi/v0.1.0): at
// its last field then (fields are only appended, so these offsets never move). No caller has a
// smaller struct: a smaller struct_size is garbage.
#define SRT_END_OF(T, field) (offsetof(T, field) + sizeof(static_cast<T *>(nullptr)->field))
const uint32_t kMaxStructSize = 1u << 16;  // beyond this a struct_size is garbage, not a newer header
template <typename T>
struct Layout;
template <>
struct Layout<srt_open_options> {
  static constexpr const char *name = "srt_open_options";
  static constexpr size_t first = SRT_END_OF(srt_open_options, device);
};
template <>
struct Layout<srt_frame> {
  static constexpr const char *name = "srt_frame";
  static constexpr size_t first = SRT_END_OF(srt_frame, reserved1);
};
template <>
struct Layout<srt_result> {
  static constexpr const char *name = "srt_result";
  static constexpr size_t first = SRT_END_OF(srt_result, total_ms);
};
template <>
struct Layout<struct srt_engine_info> {
  static constexpr const char *name = "srt_engine_info";
  static constexpr size_t first = SRT_END_OF(struct srt_engine_info, backend_name);
};
template <>
struct Layout<srt_class_info> {
  static constexpr const char *name = "srt_class_info";
  static constexpr size_t first = SRT_END_OF(srt_class_info, name);
};

template <>
struct Layout<srt_input_spec> {  // added in 1.2: its first struct is 1.2's
  static constexpr const char *name = "srt_input_spec";
  static constexpr size_t first = SRT_END_OF(srt_input_spec, reserved0);
};
template <>
struct Layout<srt_fit> {  // added in 1.2
  static constexpr const char *name = "srt_fit";
  static constexpr size_t first = SRT_END_OF(srt_fit, scale_y);
};

// The defaults of every field (what a caller's smaller struct_size does not cover). An appended
// field whose default is not 0 gets it here.
void set_defaults(srt_open_options *o) {
  o->outlier_threshold = 0.5f;
  o->spin = -1;
}
void set_defaults(srt_frame *) {}
void set_defaults(srt_result *) {}
void set_defaults(struct srt_engine_info *) {}
void set_defaults(srt_class_info *) {}
void set_defaults(srt_input_spec *s) {
  s->scale = 1.f;
  for (int c = 0; c < 3; ++c) s->std[c] = 1.f;
}
void set_defaults(srt_fit *) {}

template <typename T>
T defaults() {
  T out;
  std::memset(&out, 0, sizeof out);
  out.struct_size = sizeof out;
  set_defaults(&out);
  return out;
}

// struct_size of the caller's struct, checked: at least ABI 1's first struct, and any bytes beyond
// this library's struct (a newer swiftrt.h) all zero, so no field the caller set is ignored.
template <typename T>
uint32_t checked_size(const T *given) {
  const char *what = Layout<T>::name;
  const uint32_t size = given->struct_size;
  if (size < Layout<T>::first || size > kMaxStructSize)
    srt::fail(SRT_ERROR_STRUCT_SIZE, std::string(what) + "->struct_size is " + std::to_string(size) + ", expected sizeof(" +
                                         what + ") = " + std::to_string(sizeof(T)) + " (set it with " +
                                         what + "_init)");
  // Every released header's struct ends on a multiple of its alignment (fields are appended in
  // 8-byte groups), so another size would end inside a field (half a pointer): garbage.
  if (size % alignof(T) != 0)
    srt::fail(SRT_ERROR_STRUCT_SIZE, std::string(what) + "->struct_size is " + std::to_string(size) +
                                         ", not a multiple of " + std::to_string(alignof(T)) + " (set it with " +
                                         what + "_init)");
  const unsigned char *bytes = reinterpret_cast<const unsigned char *>(given);
  for (size_t i = sizeof(T); i < size; ++i)
    if (bytes[i] != 0)
      srt::fail(SRT_ERROR_STRUCT_SIZE, std::string(what) + "->struct_size is " + std::to_string(size) + ", this library's " +
                                           what + " has " + std::to_string(sizeof(T)) + " bytes and byte " +
                                           std::to_string(i) + " beyond them is not 0: a field this library " +
                                           "does not know was set (a newer swiftrt.h; upgrade libswiftrt)");
  return size;
}

// The caller's struct as this library knows it: the fields its struct_size covers, defaults for
// the rest (one copy-in for every struct of the ABI).
template <typename T>
T read_struct(const T *given) {
  const uint32_t size = checked_size(given);
  T out = defaults<T>();
  std::memcpy(&out, given, std::min<size_t>(size, sizeof(T)));
  out.struct_size = sizeof(T);
  return out;
}

// Writes `value` into the caller's struct: only the bytes its struct_size covers; struct_size stays.
template <typename T>
void write_struct(T *dest, const T &value, uint32_t size) {
  if (size < sizeof(uint32_t)) return;  // never: sizes reaching here were checked (checked_size)
  std::memcpy(reinterpret_cast<unsigned char *>(dest) + sizeof(uint32_t),
              reinterpret_cast<const unsigned char *>(&value) + sizeof(uint32_t),
              std::min<size_t>(size, sizeof(T)) - sizeof(uint32_t));
}
template <typename T>
void write_struct(T *dest, const T &value) {
  write_struct(dest, value, dest->struct_size);
}

// srt_X_init_sized: exactly `size` bytes: zeroes, struct_size = size, the defaults it covers.
template <typename T>
srt_status init_sized(T *dest, uint32_t size) {
  return guard([&] {
    require(dest, Layout<T>::name);
    if (size < Layout<T>::first || size > kMaxStructSize)
      srt::fail(SRT_ERROR_STRUCT_SIZE, std::string(Layout<T>::name) + " init: size " + std::to_string(size) +
                                           " is smaller than ABI 1's struct (" + std::to_string(Layout<T>::first) +
                                           " bytes) or absurd");
    const T d = defaults<T>();
    std::memset(dest, 0, size);
    std::memcpy(dest, &d, std::min<size_t>(size, sizeof(T)));
    dest->struct_size = size;
  });
}

// The engine for one call that runs frames: SRT_ERROR_BUSY when another one holds it.
class Claim {
 public:
  explicit Claim(srt_engine *e) : e_(e) {
    if (e_->busy.exchange(true, std::memory_order_acquire))
      srt::fail(SRT_ERROR_BUSY, e_->pending ? "the engine has an asynchronous run not yet waited for (srt_engine_wait)"
                                            : "the engine is running another frame (one call at a time per engine; "
                                              "open one engine per thread)");
  }
  ~Claim() {
    if (e_) e_->busy.store(false, std::memory_order_release);
  }
  void keep() { e_ = nullptr; }  // stays busy (an asynchronous run) until srt_engine_wait

 private:
  srt_engine *e_;
};

// Every check of a frame; the view the engine runs. Nothing is read outside
// [data, data + stride * (height - 1) + 3 * width): a frame that does not fit data_size, or whose
// extent overflows, is refused.
struct FrameRun {
  srt::FrameView view;
  bool has_timestamp;
  double timestamp;
};

FrameRun check_frame(const srt_frame *caller) {
  const srt_frame frame = read_struct(caller);  // the fields the caller's struct_size covers, zeros after
  const bool has_size = caller->struct_size >= offsetof(srt_frame, data_size) + sizeof(size_t);
  if (frame.format != SRT_FORMAT_BGR8 && frame.format != SRT_FORMAT_RGB8)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "frame->format " + std::to_string(frame.format) +
                                              " is not SRT_FORMAT_BGR8 or SRT_FORMAT_RGB8");
  if (frame.width <= 0 || frame.height <= 0)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "frame is " + std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                                              ": width and height must be positive");
  if (frame.width > 1 << 16 || frame.height > 1 << 16)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "frame is larger than 65536 pixels on a side");
  const size_t row = static_cast<size_t>(frame.width) * 3, rows = static_cast<size_t>(frame.height) - 1;
  if (frame.stride < row)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "frame->stride " + std::to_string(frame.stride) + " is shorter than a row (" +
                                              std::to_string(row) + " bytes for width " + std::to_string(frame.width) + ")");
  require(frame.data, "frame->data");
  if (rows && frame.stride > (SIZE_MAX - row) / rows)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "frame->stride " + std::to_string(frame.stride) + " times height " +
                                              std::to_string(frame.height) + " overflows: not a frame");
  const size_t extent = frame.stride * rows + row;
  if (reinterpret_cast<uintptr_t>(frame.data) > UINTPTR_MAX - extent)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "frame->data + stride * height runs past the end of the address space");
  if (has_size && frame.data_size == 0)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "frame->data_size is 0: set it to the bytes readable at frame->data (at "
                                          "least stride * (height - 1) + 3 * width = " + std::to_string(extent) + ")");
  if (has_size && frame.data_size < extent)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "frame->data_size " + std::to_string(frame.data_size) + " is smaller than the " +
                                              std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                                              " frame at stride " + std::to_string(frame.stride) + " (" +
                                              std::to_string(extent) + " bytes)");
  if (frame.memory != SRT_MEMORY_HOST && frame.memory != SRT_MEMORY_CUDA)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "frame->memory " + std::to_string(frame.memory) +
                                              " is not SRT_MEMORY_HOST or SRT_MEMORY_CUDA");
#ifndef SWIFTRT_WITH_TENSORRT
  if (frame.memory == SRT_MEMORY_CUDA)
    srt::fail(SRT_ERROR_UNSUPPORTED, "frames in CUDA memory need a libswiftrt built with TensorRT (this one: " +
                                         std::string(srt_version()) + ")");
#endif
  if (frame.has_timestamp && !std::isfinite(frame.timestamp))
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "frame->timestamp is not a finite number");
  srt::FrameView view{static_cast<const uint8_t *>(frame.data), frame.width, frame.height, frame.stride,
                      frame.format == SRT_FORMAT_RGB8};
  view.device = frame.memory == SRT_MEMORY_CUDA;
  view.stream = frame.cuda_stream;  // TensorRT: ordered on the caller's stream (host frames too)
  return FrameRun{view, frame.has_timestamp != 0, frame.timestamp};
}

void check_buffer(const void *p, size_t size, size_t need, const char *what) {
  if (p && size < need)
    srt::fail(SRT_ERROR_BUFFER_TOO_SMALL, std::string("result ") + what + "_size is " + std::to_string(size) + " bytes, " +
                                              std::to_string(need) + " needed (see srt_engine_info)");
}

// ---- preprocessing without an engine (ABI 1.2) ------------------------------------------------

srt::Resize resize_of(int32_t resize, const char *what) {
  switch (resize) {
    case SRT_RESIZE_MANIFEST:  // no manifest here: its default, stretch
    case SRT_RESIZE_STRETCH: return srt::Resize::Stretch;
    case SRT_RESIZE_LETTERBOX: return srt::Resize::Letterbox;
    case SRT_RESIZE_CROP: return srt::Resize::Crop;
  }
  srt::fail(SRT_ERROR_INVALID_ARGUMENT, std::string(what) + " " + std::to_string(resize) + " is not an SRT_RESIZE_* mode");
}

void check_side(int32_t value, const char *what) {
  if (value < 1 || value > 1 << 16)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, std::string(what) + " is " + std::to_string(value) + ": must be 1 to 65536");
}

// The caller's srt_input_spec as the engine's InputSpec (what a manifest's input block becomes).
srt::InputSpec input_spec_of(const srt_input_spec &s) {
  check_side(s.height, "spec->height");
  check_side(s.width, "spec->width");
  if (s.layout != SRT_LAYOUT_NHWC && s.layout != SRT_LAYOUT_NCHW)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "spec->layout " + std::to_string(s.layout) +
                                              " is not SRT_LAYOUT_NHWC or SRT_LAYOUT_NCHW");
  if (s.dtype != SRT_DTYPE_UINT8 && s.dtype != SRT_DTYPE_FLOAT32)
    srt::fail(SRT_ERROR_UNSUPPORTED, "spec->dtype " + std::to_string(s.dtype) +
                                         " is not SRT_DTYPE_UINT8 or SRT_DTYPE_FLOAT32 (the frame inputs this core feeds)");
  if (s.color_order != SRT_FORMAT_BGR8 && s.color_order != SRT_FORMAT_RGB8)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "spec->color_order " + std::to_string(s.color_order) +
                                              " is not SRT_FORMAT_BGR8 or SRT_FORMAT_RGB8");
  if (s.normalize && s.dtype != SRT_DTYPE_FLOAT32)
    srt::fail(SRT_ERROR_UNSUPPORTED, "spec->normalize needs dtype SRT_DTYPE_FLOAT32 (host normalization writes floats)");
  srt::InputSpec in;
  in.name = "srt_input_spec";
  in.height = s.height, in.width = s.width;
  in.nchw = s.layout == SRT_LAYOUT_NCHW;
  in.shape = in.nchw ? std::vector<int64_t>{1, 3, s.height, s.width} : std::vector<int64_t>{1, s.height, s.width, 3};
  in.dtype = s.dtype == SRT_DTYPE_FLOAT32 ? srt::DType::F32 : srt::DType::U8;
  in.rgb = s.color_order == SRT_FORMAT_RGB8;
  in.in_graph = s.normalize == 0;
  if (s.normalize && !srt::fold_normalization(s.scale, s.mean, s.std, in.mul, in.add))
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "spec->std has a 0 (or NaN): the normalization divides by it");
  return in;
}

srt_fit fit_of(const srt::FitGeometry &g, srt::Resize mode, int fw, int fh, int width, int height) {
  srt_fit f = defaults<srt_fit>();
  f.resize = mode == srt::Resize::Letterbox ? SRT_RESIZE_LETTERBOX
                                            : (mode == srt::Resize::Crop ? SRT_RESIZE_CROP : SRT_RESIZE_STRETCH);
  f.src_height = fh, f.src_width = fw;
  f.resized_height = g.identity ? fh : g.nh, f.resized_width = g.identity ? fw : g.nw;
  f.height = height, f.width = width;
  if (!g.identity && mode == srt::Resize::Letterbox) f.pad_x = -g.ox, f.pad_y = -g.oy;
  if (!g.identity && mode == srt::Resize::Crop) f.crop_x = g.ox, f.crop_y = g.oy;
  f.scale_x = g.scale_x, f.scale_y = g.scale_y;
  return f;
}

}  // namespace

extern "C" {

uint32_t srt_abi_version(void) { return SRT_ABI_VERSION; }

const char *srt_version(void) {
  return "swiftrt " SRT_VERSION_STRING " (abi " SRT_STR(SRT_VERSION_MAJOR) "; backends:"
#ifdef SWIFTRT_WITH_OPENVINO
         " openvino"
#endif
#ifdef SWIFTRT_WITH_TENSORRT
         " tensorrt"
#endif
#ifdef SWIFTRT_WITH_ONNXRUNTIME
         " onnxruntime"
#endif
         ")";
}

const char *srt_status_string(srt_status status) {
  switch (status) {
    case SRT_OK: return "SRT_OK";
    case SRT_ERROR_INVALID_ARGUMENT: return "SRT_ERROR_INVALID_ARGUMENT";
    case SRT_ERROR_STRUCT_SIZE: return "SRT_ERROR_STRUCT_SIZE";
    case SRT_ERROR_NOT_FOUND: return "SRT_ERROR_NOT_FOUND";
    case SRT_ERROR_MANIFEST: return "SRT_ERROR_MANIFEST";
    case SRT_ERROR_CORRUPT_ENGINE: return "SRT_ERROR_CORRUPT_ENGINE";
    case SRT_ERROR_UNSUPPORTED: return "SRT_ERROR_UNSUPPORTED";
    case SRT_ERROR_BUFFER_TOO_SMALL: return "SRT_ERROR_BUFFER_TOO_SMALL";
    case SRT_ERROR_BACKEND: return "SRT_ERROR_BACKEND";
    case SRT_ERROR_OUT_OF_MEMORY: return "SRT_ERROR_OUT_OF_MEMORY";
    case SRT_ERROR_INTERNAL: return "SRT_ERROR_INTERNAL";
    case SRT_ERROR_BUSY: return "SRT_ERROR_BUSY";
    default: return "SRT_ERROR_UNKNOWN";
  }
}

const char *srt_last_error(void) { return last_error.c_str(); }

srt_status srt_open_options_init_sized(srt_open_options *options, uint32_t size) { return init_sized(options, size); }
srt_status srt_frame_init_sized(srt_frame *frame, uint32_t size) { return init_sized(frame, size); }
srt_status srt_result_init_sized(srt_result *result, uint32_t size) { return init_sized(result, size); }
srt_status srt_engine_info_init_sized(struct srt_engine_info *info, uint32_t size) { return init_sized(info, size); }
srt_status srt_class_info_init_sized(srt_class_info *info, uint32_t size) { return init_sized(info, size); }
srt_status srt_input_spec_init_sized(srt_input_spec *spec, uint32_t size) { return init_sized(spec, size); }
srt_status srt_fit_init_sized(srt_fit *fit, uint32_t size) { return init_sized(fit, size); }

// ABI 1's first header declared this as a function (programs built against it call it): it fills
// that header's srt_open_options and never more, however the struct grows.
srt_status srt_open_options_init(srt_open_options *options) {
  return init_sized(options, static_cast<uint32_t>(Layout<srt_open_options>::first));
}

srt_status srt_engine_open(const char *path, const srt_open_options *caller_options, srt_engine **engine) {
  if (engine) *engine = nullptr;
  return guard([&] {
    require(engine, "engine");
    require(path, "path");
    const srt_open_options options = caller_options ? read_struct(caller_options) : defaults<srt_open_options>();
    if (options.threads < 0) srt::fail(SRT_ERROR_INVALID_ARGUMENT, "options->threads must be >= 0");
    if (options.use_outlier_threshold && !(options.outlier_threshold >= 0.f && options.outlier_threshold <= 1.f))
      srt::fail(SRT_ERROR_INVALID_ARGUMENT, "options->outlier_threshold must be between 0 and 1");
    srt::OpenOptions o;
    o.backend = options.backend;
    o.threads = options.threads;
    o.resize = options.resize;
    o.use_outlier_threshold = options.use_outlier_threshold != 0;
    o.outlier_threshold = options.outlier_threshold;
    o.decode_current = options.decode_current != 0;
    o.device = options.device;
    if (options.spin < -1 || options.spin > 1) srt::fail(SRT_ERROR_INVALID_ARGUMENT, "options->spin must be -1, 0 or 1");
    o.spin = options.spin;
    if (options.providers) o.providers = options.providers;
    o.allow_legacy = options.allow_legacy != 0;  // callers before 1.0 have no such field: 0
    std::unique_ptr<srt_engine> handle(new srt_engine);
    handle->impl = srt::open_engine(path, o);
    *engine = handle.release();
  });
}

void srt_engine_close(srt_engine *engine) {
  try {
    delete engine;
  } catch (...) {  // a backend's destructor must not take the caller down
  }
}

srt_status srt_engine_info(const srt_engine *engine, struct srt_engine_info *info) {
  return guard([&] {
    require(engine, "engine");
    require(info, "info");
    checked_size(info);
    write_struct(info, engine->impl->info);
  });
}

srt_status srt_engine_class(const srt_engine *engine, int index, srt_class_info *info) {
  return guard([&] {
    require(engine, "engine");
    require(info, "info");
    checked_size(info);
    const auto &classes = engine->impl->classes;
    if (index < 0 || static_cast<size_t>(index) >= classes.size())
      srt::fail(SRT_ERROR_INVALID_ARGUMENT, "class index " + std::to_string(index) + " is outside [0, " +
                                                std::to_string(classes.size()) + ")");
    const srt::ClassSpec &c = classes[static_cast<size_t>(index)];
    srt_class_info out = defaults<srt_class_info>();
    out.id = c.id;
    std::memcpy(out.color, c.color, 3);
    std::strncpy(out.name, c.name.c_str(), sizeof(out.name) - 1);
    write_struct(info, out);
  });
}

}  // extern "C"

namespace {

// The checks of srt_engine_run and srt_engine_run_async: the frame's view, the result prepared.
FrameRun prepare_run(srt_engine *engine, const srt_frame *frame, srt_result *result) {
  require(engine, "engine");
  require(frame, "frame");
  require(result, "result");
  FrameRun run = check_frame(frame);
  srt::Engine &e = *engine->impl;
  const size_t plane = static_cast<size_t>(e.info.output_height) * e.info.output_width;
  check_buffer(result->class_map, result->class_map_size, plane, "class_map");
  check_buffer(result->outlier_score, result->outlier_score_size, plane * sizeof(float), "outlier_score");
  check_buffer(result->outlier_mask, result->outlier_mask_size, plane, "outlier_mask");
  check_buffer(result->forecast_map, result->forecast_map_size, plane, "forecast_map");
  e.check_result(*result);  // the buffers this engine's family writes
  result->is_forecast = 0;
  result->forecast_time = 0;
  result->picked_count = 0;
  result->features_ms = result->f2f_ms = result->decoder_ms = 0;
  return run;
}

}  // namespace

extern "C" {

srt_status srt_engine_run(srt_engine *engine, const srt_frame *frame, srt_result *caller_result) {
  return guard([&] {
    require(engine, "engine");
    require(caller_result, "result");
    Claim claim(engine);
    srt_result result = read_struct(caller_result);  // the fields the caller's struct_size covers
    FrameRun run = prepare_run(engine, frame, &result);
    engine->impl->run(run.view, run.has_timestamp, run.timestamp, &result);
    write_struct(caller_result, result);
  });
}

srt_status srt_engine_run_batch(srt_engine *engine, const srt_frame *const *frames, size_t count,
                                srt_result *const *caller_results) {
  return guard([&] {
    require(engine, "engine");
    require(frames, "frames");
    require(caller_results, "results");
    if (count > SRT_MAX_BATCH)
      srt::fail(SRT_ERROR_INVALID_ARGUMENT, "count " + std::to_string(count) + " is more than SRT_MAX_BATCH (" +
                                                std::to_string(SRT_MAX_BATCH) + ")");
    Claim claim(engine);
    srt_result results[SRT_MAX_BATCH];
    FrameRun runs[SRT_MAX_BATCH];
    size_t given = 0;
    for (size_t i = 0; i < count; ++i) given += frames[i] != nullptr;
    if (given > 1 && engine->impl->one_stream())
      srt::fail(SRT_ERROR_INVALID_ARGUMENT, "a forecast bundle keeps one stream's past frames: give it one "
                                            "camera's frame per call (one engine per camera)");
    for (size_t i = 0; i < count; ++i) {  // every check first: a bad frame runs none
      if (!frames[i]) continue;
      try {
        require(caller_results[i], "results[i]");
        results[i] = read_struct(caller_results[i]);
        runs[i] = prepare_run(engine, frames[i], &results[i]);
      } catch (const srt::Error &error) {
        srt::fail(error.status, "frame " + std::to_string(i) + ": " + error.what());
      }
    }
    std::vector<srt::BatchItem> items;
    for (size_t i = 0; i < count; ++i)
      if (frames[i]) items.push_back({runs[i].view, runs[i].has_timestamp, runs[i].timestamp, &results[i]});
    engine->impl->run_batch(items);
    for (size_t i = 0; i < count; ++i)
      if (frames[i]) write_struct(caller_results[i], results[i]);
  });
}

srt_status srt_engine_run_async(srt_engine *engine, const srt_frame *frame, srt_result *caller_result) {
  return guard([&] {
    require(engine, "engine");
    require(caller_result, "result");
    Claim claim(engine);
    // The core fills its own copy; srt_engine_wait hands it back through the caller's struct_size.
    engine->pending_copy = read_struct(caller_result);
    FrameRun run = prepare_run(engine, frame, &engine->pending_copy);
    engine->impl->start(run.view, run.has_timestamp, run.timestamp, &engine->pending_copy);
    engine->pending_result = caller_result;
    engine->pending_size = checked_size(caller_result);  // the size read_struct accepted
    engine->pending.store(true);
    claim.keep();
  });
}

srt_status srt_engine_wait(srt_engine *engine) {
  return guard([&] {
    require(engine, "engine");
    // exchange: of two threads waiting at once, one finishes the run, the other is told there is none
    if (!engine->pending.exchange(false))
      srt::fail(SRT_ERROR_INVALID_ARGUMENT, "no asynchronous run to wait for (srt_engine_run_async first)");
    struct Release {  // whatever finish() does, the engine is free again afterwards
      srt_engine *e;
      ~Release() {
        e->pending_result = nullptr;
        e->busy.store(false, std::memory_order_release);
      }
    } release{engine};
    engine->impl->finish(&engine->pending_copy);
    write_struct(engine->pending_result, engine->pending_copy, engine->pending_size);
  });
}

srt_status srt_engine_completion_event(srt_engine *engine, void **cuda_event) {
  return guard([&] {
    require(engine, "engine");
    require(cuda_event, "cuda_event");
    *cuda_event = engine->impl->completion_event();
    if (!*cuda_event)
      srt::fail(SRT_ERROR_UNSUPPORTED, "this engine runs on " + std::string(engine->impl->info.backend_name) +
                                           ": no CUDA completion event (srt_engine_wait completes its runs)");
  });
}

srt_status srt_engine_reset(srt_engine *engine) {
  return guard([&] {
    require(engine, "engine");
    Claim claim(engine);
    engine->impl->reset();
  });
}

srt_status srt_preprocess(const srt_input_spec *caller_spec, const srt_frame *frame, void *tensor, size_t tensor_size,
                          uint8_t *fitted, size_t fitted_size, srt_fit *fit) {
  return guard([&] {
    require(caller_spec, "spec");
    require(frame, "frame");
    const srt_input_spec s = read_struct(caller_spec);
    const srt::InputSpec in = input_spec_of(s);
    const srt::Resize mode = resize_of(s.resize, "spec->resize");
    const FrameRun run = check_frame(frame);
    if (run.view.device)
      srt::fail(SRT_ERROR_UNSUPPORTED, "srt_preprocess takes host frames (frame->memory SRT_MEMORY_HOST)");
    if (fit) checked_size(fit);
    const size_t bytes = static_cast<size_t>(in.height) * in.width * 3;
    const size_t tensor_bytes = bytes * (in.dtype == srt::DType::F32 ? sizeof(float) : 1);
    if (tensor && tensor_size < tensor_bytes)
      srt::fail(SRT_ERROR_BUFFER_TOO_SMALL, "tensor_size is " + std::to_string(tensor_size) + " bytes, the " +
                                                std::to_string(in.height) + "x" + std::to_string(in.width) +
                                                " tensor needs " + std::to_string(tensor_bytes));
    if (fitted && fitted_size < bytes)
      srt::fail(SRT_ERROR_BUFFER_TOO_SMALL, "fitted_size is " + std::to_string(fitted_size) + " bytes, the " +
                                                std::to_string(in.height) + "x" + std::to_string(in.width) +
                                                " fitted frame needs " + std::to_string(bytes));
    srt::Preprocessor pre(in, mode);  // the engine's preprocessor: the same fit and tensor code
    if (tensor || fitted) {
      size_t stride = 0;
      const uint8_t *img = pre.fit(run.view, &stride);
      if (fitted) {
        const size_t row = static_cast<size_t>(in.width) * 3;
        for (int y = 0; y < in.height; ++y) std::memcpy(fitted + y * row, img + y * stride, row);
      }
      if (tensor) pre.to_tensor(img, stride, run.view.rgb, tensor);
    }
    if (fit)
      write_struct(fit, fit_of(pre.geometry(run.view.width, run.view.height), mode, run.view.width, run.view.height,
                               in.width, in.height));
  });
}

srt_status srt_fit_geometry(int32_t src_height, int32_t src_width, int32_t height, int32_t width, int32_t resize,
                            srt_fit *fit) {
  return guard([&] {
    require(fit, "fit");
    checked_size(fit);
    check_side(src_height, "src_height");
    check_side(src_width, "src_width");
    check_side(height, "height");
    check_side(width, "width");
    const srt::Resize mode = resize_of(resize, "resize");
    write_struct(fit, fit_of(srt::fit_geometry(src_width, src_height, width, height, mode), mode, src_width, src_height,
                             width, height));
  });
}

srt_status srt_set_log_callback(srt_log_fn fn, void *user) {
  srt::set_log_callback(fn, user);
  return SRT_OK;
}

}  // extern "C"
