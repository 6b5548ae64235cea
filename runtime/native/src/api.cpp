// The C ABI: argument checks, struct_size checks, and the wall that no exception crosses.
// Every entry point runs its body through guard(), which turns srt::Error, std::bad_alloc and
// anything else into a status and one line in the thread-local last error.
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>

#include "engine.hpp"
#include "error.hpp"
#include "log.hpp"
#include "swiftrt.h"

#ifndef SWIFTRT_VERSION
#define SWIFTRT_VERSION "0.0.0"
#endif

struct srt_engine {
  std::unique_ptr<srt::Engine> impl;
  // Set while a call runs a frame (or an asynchronous run waits for srt_engine_wait): a second
  // caller gets SRT_ERROR_BUSY instead of a result mixed with another frame's.
  std::atomic<bool> busy{false};
  std::atomic<bool> pending{false};  // srt_engine_run_async started, srt_engine_wait not yet called
  srt_result *pending_result = nullptr;
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

const uint32_t kMaxStructSize = 1u << 16;  // beyond this a struct_size is garbage, not a newer header

void require(const void *p, const char *what) {
  if (!p) srt::fail(SRT_ERROR_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

void check_size(uint32_t given, size_t ours, const char *what) {
  if (given < ours || given > kMaxStructSize)
    srt::fail(SRT_ERROR_STRUCT_SIZE, std::string(what) + "->struct_size is " + std::to_string(given) + ", expected sizeof(" +
                                         what + ") = " + std::to_string(ours) + " (set it, or rebuild against this swiftrt.h)");
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

// A caller's srt_frame: the fields its struct_size covers, the rest zero (a caller built against
// the header before data_size has none).
const size_t kFrameSizeV1 = offsetof(srt_frame, data_size);

srt_frame frame_copy(const srt_frame *frame) {
  if (frame->struct_size < kFrameSizeV1 || frame->struct_size > kMaxStructSize)
    srt::fail(SRT_ERROR_STRUCT_SIZE, "srt_frame->struct_size is " + std::to_string(frame->struct_size) +
                                         ", expected sizeof(srt_frame) = " + std::to_string(sizeof(srt_frame)) +
                                         " (set it, or rebuild against this swiftrt.h)");
  srt_frame f;
  std::memset(&f, 0, sizeof f);
  std::memcpy(&f, frame, frame->struct_size < sizeof f ? frame->struct_size : sizeof f);
  return f;
}

// Every check of a frame; the view the engine runs. Nothing is read outside
// [data, data + stride * (height - 1) + 3 * width): a frame that does not fit data_size, or whose
// extent overflows, is refused.
struct FrameRun {
  srt::FrameView view;
  bool has_timestamp;
  double timestamp;
};

FrameRun check_frame(const srt_frame *caller) {
  const srt_frame frame = frame_copy(caller);
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

}  // namespace

extern "C" {

uint32_t srt_abi_version(void) { return SRT_ABI_VERSION; }

const char *srt_version(void) {
  return "swiftrt " SWIFTRT_VERSION " (abi 1; backends:"
#ifdef SWIFTRT_WITH_OPENVINO
         " openvino"
#endif
#ifdef SWIFTRT_WITH_TENSORRT
         " tensorrt"
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

srt_status srt_open_options_init(srt_open_options *options) {
  return guard([&] {
    require(options, "options");
    std::memset(options, 0, sizeof(*options));
    options->struct_size = sizeof(*options);
    options->outlier_threshold = 0.5f;
  });
}

srt_status srt_engine_open(const char *path, const srt_open_options *options, srt_engine **engine) {
  if (engine) *engine = nullptr;
  return guard([&] {
    require(engine, "engine");
    require(path, "path");
    srt::OpenOptions o;
    if (options) {
      // Callers built before allow_legacy have a smaller struct: they get its default (refuse).
      const size_t legacy_end = offsetof(srt_open_options, allow_legacy) + sizeof(int32_t);
      check_size(options->struct_size, offsetof(srt_open_options, allow_legacy), "srt_open_options");
      if (options->threads < 0) srt::fail(SRT_ERROR_INVALID_ARGUMENT, "options->threads must be >= 0");
      if (options->use_outlier_threshold && !(options->outlier_threshold >= 0.f && options->outlier_threshold <= 1.f))
        srt::fail(SRT_ERROR_INVALID_ARGUMENT, "options->outlier_threshold must be between 0 and 1");
      o.backend = options->backend;
      o.threads = options->threads;
      o.resize = options->resize;
      o.use_outlier_threshold = options->use_outlier_threshold != 0;
      o.outlier_threshold = options->outlier_threshold;
      o.decode_current = options->decode_current != 0;
      o.device = options->device;
      o.allow_legacy = options->struct_size >= legacy_end && options->allow_legacy != 0;
    }
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
    check_size(info->struct_size, sizeof(struct srt_engine_info), "srt_engine_info");
    uint32_t size = info->struct_size;
    *info = engine->impl->info;
    info->struct_size = size;
  });
}

srt_status srt_engine_class(const srt_engine *engine, int index, srt_class_info *info) {
  return guard([&] {
    require(engine, "engine");
    require(info, "info");
    check_size(info->struct_size, sizeof(srt_class_info), "srt_class_info");
    const auto &classes = engine->impl->classes;
    if (index < 0 || static_cast<size_t>(index) >= classes.size())
      srt::fail(SRT_ERROR_INVALID_ARGUMENT, "class index " + std::to_string(index) + " is outside [0, " +
                                                std::to_string(classes.size()) + ")");
    const srt::ClassSpec &c = classes[static_cast<size_t>(index)];
    uint32_t size = info->struct_size;
    std::memset(info, 0, sizeof(*info));
    info->struct_size = size;
    info->id = c.id;
    std::memcpy(info->color, c.color, 3);
    std::strncpy(info->name, c.name.c_str(), sizeof(info->name) - 1);
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
  check_size(result->struct_size, sizeof(srt_result), "srt_result");
  srt::Engine &e = *engine->impl;
  const size_t plane = static_cast<size_t>(e.info.output_height) * e.info.output_width;
  check_buffer(result->class_map, result->class_map_size, plane, "class_map");
  check_buffer(result->outlier_score, result->outlier_score_size, plane * sizeof(float), "outlier_score");
  check_buffer(result->outlier_mask, result->outlier_mask_size, plane, "outlier_mask");
  check_buffer(result->forecast_map, result->forecast_map_size, plane, "forecast_map");
  if (!e.info.has_outlier_score && (result->outlier_score || result->outlier_mask))
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "this engine has no outlier score: set outlier_score and outlier_mask to NULL");
  if (e.info.task != SRT_TASK_FORECAST && result->forecast_map)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "this engine is not a forecast bundle: set forecast_map to NULL");
  if (e.info.task == SRT_TASK_FORECAST && result->class_map && !e.decode_current)
    srt::fail(SRT_ERROR_INVALID_ARGUMENT, "a bundle writes the current frame's class_map only when opened with "
                                          "decode_current; set class_map to NULL or open it so");
  result->is_forecast = 0;
  result->forecast_time = 0;
  result->picked_count = 0;
  result->features_ms = result->f2f_ms = result->decoder_ms = 0;
  return run;
}

}  // namespace

extern "C" {

srt_status srt_engine_run(srt_engine *engine, const srt_frame *frame, srt_result *result) {
  return guard([&] {
    require(engine, "engine");
    Claim claim(engine);
    FrameRun run = prepare_run(engine, frame, result);
    engine->impl->run(run.view, run.has_timestamp, run.timestamp, result);
  });
}

srt_status srt_engine_run_async(srt_engine *engine, const srt_frame *frame, srt_result *result) {
  return guard([&] {
    require(engine, "engine");
    Claim claim(engine);
    FrameRun run = prepare_run(engine, frame, result);
    engine->impl->start(run.view, run.has_timestamp, run.timestamp, result);
    engine->pending_result = result;
    engine->pending.store(true);
    claim.keep();
  });
}

srt_status srt_engine_wait(srt_engine *engine) {
  return guard([&] {
    require(engine, "engine");
    if (!engine->pending.load())
      srt::fail(SRT_ERROR_INVALID_ARGUMENT, "no asynchronous run to wait for (srt_engine_run_async first)");
    struct Release {  // whatever finish() does, the engine is free again afterwards
      srt_engine *e;
      ~Release() {
        e->pending_result = nullptr;
        e->pending.store(false);
        e->busy.store(false, std::memory_order_release);
      }
    } release{engine};
    engine->impl->finish(engine->pending_result);
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

srt_status srt_set_log_callback(srt_log_fn fn, void *user) {
  srt::set_log_callback(fn, user);
  return SRT_OK;
}

}  // extern "C"
