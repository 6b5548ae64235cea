/*
 * swiftrt.h - the C ABI of libswiftrt, swiftrt's native inference core.
 *
 * One engine = one exported artifact and its manifest (X.onnx + X.onnx.json, X.plan + X.plan.json)
 * or a forecast bundle (forecast.json or its folder). Everything the core needs - tensor names,
 * input size, layout, dtype, colour order, normalization, resize mode, classes, outlier threshold,
 * forecast offsets - comes from the manifest; nothing is hard-coded.
 *
 * Rules (see docs/native.md):
 *  - Handles are opaque. Every struct starts with `uint32_t struct_size` = sizeof(struct) as the
 *    caller compiled it; set it (and the defaults) with srt_X_init(&x). Later versions only append
 *    fields, each appended group ending on an 8-byte boundary (reservedN fields pad it), so a struct
 *    has no tail padding and every released sizeof ends between two fields.
 *  - The library reads only the fields the caller's struct_size covers (the rest take their
 *    defaults) and writes only those: a program built against an older swiftrt.h keeps working.
 *    A struct_size larger than this library's struct is accepted when the unknown tail is all zero
 *    bytes (srt_X_init does that), else SRT_ERROR_STRUCT_SIZE: a newer caller never has a field it
 *    set silently ignored. A struct_size smaller than ABI 1's first struct is SRT_ERROR_STRUCT_SIZE.
 *  - Status numbers are stable; SRT_OK is 0. A failing call returns a status and sets a one-line,
 *    thread-local message readable with srt_last_error() until the next failing call on that thread.
 *  - No C++ exception and no abort crosses this ABI.
 *  - One srt_engine_run at a time per engine; different engines may run on different threads. A
 *    second call on an engine that is still running returns SRT_ERROR_BUSY (detected, never a
 *    mixed-up result); so does a call while an srt_engine_run_async is not yet waited for.
 *  - No srt_* call allocates on the heap per frame once an engine has run its first frames
 *    (the backends' own libraries aside).
 *  - Result buffers are owned by the caller and sized from srt_engine_info.
 *
 * Pure C99, usable from C++.
 */
#ifndef SWIFTRT_H
#define SWIFTRT_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define SRT_API
#elif defined(__GNUC__)
#define SRT_API __attribute__((visibility("default")))
#else
#define SRT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* One version story: the library is SRT_VERSION_MAJOR.MINOR.PATCH (srt_version(), the CMake
   package and pkg-config version, the file libswiftrt.so.MAJOR.MINOR.PATCH); its soname is
   libswiftrt.so.MAJOR and MAJOR is the ABI version, bumped only on an incompatible change.
   Appending fields or functions bumps MINOR; the exported symbols carry the version node
   SWIFTRT_MAJOR.MINOR that added them (SWIFTRT_1.0 for ABI 1's first set). */
#define SRT_VERSION_MAJOR 1
#define SRT_VERSION_MINOR 2
#define SRT_VERSION_PATCH 0
#define SRT_ABI_VERSION 1u

/* ---- status ----------------------------------------------------------------------------------- */

typedef int32_t srt_status;
enum {
  SRT_OK = 0,
  SRT_ERROR_INVALID_ARGUMENT = 1, /* a NULL pointer, a bad enum value, a 0x0 frame, a short stride */
  SRT_ERROR_STRUCT_SIZE = 2,      /* struct_size below ABI 1's struct, absurdly large, or a non-zero tail
                                     this library does not know */
  SRT_ERROR_NOT_FOUND = 3,        /* the engine file, its manifest or a bundle stage is missing */
  SRT_ERROR_MANIFEST = 4,         /* unreadable manifest, another schema_version, fields missing or wrong */
  SRT_ERROR_CORRUPT_ENGINE = 5,   /* artifact does not match the manifest's sha256, or the backend cannot load it */
  SRT_ERROR_UNSUPPORTED = 6,      /* a backend not compiled in, a dtype/layout this core does not handle */
  SRT_ERROR_BUFFER_TOO_SMALL = 7, /* a result buffer smaller than srt_engine_info says */
  SRT_ERROR_BACKEND = 8,          /* the inference library failed at run time */
  SRT_ERROR_OUT_OF_MEMORY = 9,
  SRT_ERROR_INTERNAL = 10,
  SRT_ERROR_BUSY = 11             /* the engine is running another frame (another thread) or an
                                     asynchronous run has not been waited for */
};

/* ---- enums ------------------------------------------------------------------------------------ */

enum { SRT_BACKEND_AUTO = 0, SRT_BACKEND_OPENVINO = 1, SRT_BACKEND_TENSORRT = 2, SRT_BACKEND_ONNXRUNTIME = 3 };
enum { SRT_TASK_SEGMENTATION = 1, SRT_TASK_OUTLIER = 2, SRT_TASK_FORECAST = 3 };
enum { SRT_FORMAT_BGR8 = 1, SRT_FORMAT_RGB8 = 2 };
/* How a frame is fitted to the network input; MANIFEST = the manifest's input.resize. */
enum { SRT_RESIZE_MANIFEST = 0, SRT_RESIZE_STRETCH = 1, SRT_RESIZE_LETTERBOX = 2, SRT_RESIZE_CROP = 3 };
/* Where srt_frame.data lives. CUDA: device memory of the engine's GPU (TensorRT builds only;
   elsewhere SRT_ERROR_UNSUPPORTED). */
enum { SRT_MEMORY_HOST = 0, SRT_MEMORY_CUDA = 1 };
/* srt_set_log_callback severities (TensorRT's and OpenVINO's messages mapped onto them). */
enum { SRT_LOG_ERROR = 1, SRT_LOG_WARNING = 2, SRT_LOG_INFO = 3 };

/* srt_input_spec (ABI 1.2): the input tensor's layout and element type. */
enum { SRT_LAYOUT_NHWC = 1, SRT_LAYOUT_NCHW = 2 };
enum { SRT_DTYPE_UINT8 = 1, SRT_DTYPE_FLOAT32 = 2 };

#define SRT_MAX_PAST 16

/* ---- structs ---------------------------------------------------------------------------------- */

typedef struct srt_engine srt_engine; /* opaque */

typedef struct srt_open_options {
  uint32_t struct_size;          /* sizeof(srt_open_options) */
  int32_t backend;               /* SRT_BACKEND_*; AUTO: from the file (.onnx: ONNX Runtime where it is built
                                    in, else OpenVINO; .plan: TensorRT) */
  int32_t threads;               /* inference threads; 0 = the backend's default */
  int32_t resize;                /* SRT_RESIZE_* */
  int32_t use_outlier_threshold; /* nonzero: use outlier_threshold, else the manifest's default */
  float outlier_threshold;       /* in [0, 1]; a pixel is an outlier when its score is above it */
  int32_t decode_current;        /* forecast bundles: also segment the current frame (one decoder run) */
  int32_t device;                /* TensorRT, ONNX Runtime's CUDA/TensorRT providers: CUDA device index */
  int32_t spin;                  /* ONNX Runtime: intra-op threads spin between runs (1) or sleep (0); -1 =
                                    default: spin for one model, sleep for a bundle's stages */
  const char *providers;         /* ONNX Runtime: comma list of execution providers in priority order, e.g.
                                    "tensorrt,cuda,cpu"; NULL or "" = TensorRT, CUDA, CPU as available */
  int32_t allow_legacy;          /* nonzero: also open a manifest without "manifest_sha256" and an artifact
                                    whose manifest records no sha256 (exports older than both); else
                                    SRT_ERROR_MANIFEST */
  int32_t reserved0;             /* 0 (keeps the struct's size a multiple of 8) */
} srt_open_options;

typedef struct srt_frame {
  uint32_t struct_size; /* sizeof(srt_frame) */
  int32_t format;       /* SRT_FORMAT_BGR8 or SRT_FORMAT_RGB8 (3 bytes per pixel) */
  int32_t width, height;
  int32_t reserved0;
  size_t stride;        /* bytes from one row to the next, >= 3 * width */
  const void *data;
  double timestamp;     /* capture time in seconds (forecasting picks past frames by it) */
  int32_t has_timestamp;/* 0: frames are taken as consecutive at the bundle's trained rate */
  int32_t reserved1;
  /* Required: bytes readable at data, at least stride * (height - 1) + 3 * width (else, or 0:
     SRT_ERROR_INVALID_ARGUMENT; nothing is read outside them). A caller built against the header
     before this field (a smaller struct_size) has none: its frames are checked for overflow only. */
  size_t data_size;
  int32_t memory;       /* SRT_MEMORY_HOST (0) or SRT_MEMORY_CUDA */
  int32_t reserved2;
  void *cuda_stream;    /* SRT_MEMORY_CUDA: the caller's cudaStream_t the run is ordered after and
                           on (NULL: the engine's own stream) */
} srt_frame;

typedef struct srt_result {
  uint32_t struct_size; /* sizeof(srt_result) */
  int32_t reserved0;
  /* Caller-owned buffers (NULL = not wanted); sizes in bytes, at least what srt_engine_info says. */
  uint8_t *class_map;        /* output_height x output_width train ids; for a bundle: the current frame
                                (needs decode_current) */
  size_t class_map_size;
  float *outlier_score;      /* output_height x output_width, 1 - P(inlier) (outlier engines) */
  size_t outlier_score_size;
  uint8_t *outlier_mask;     /* output_height x output_width, 1 where score > threshold (outlier engines) */
  size_t outlier_mask_size;
  uint8_t *forecast_map;     /* output_height x output_width train ids at timestamp + horizon (bundles) */
  size_t forecast_map_size;
  /* Filled by the core. */
  int64_t outlier_pixels;    /* pixels above the threshold; -1 without an outlier score */
  int32_t is_forecast;       /* bundles: 1 when forecast_map was written, 0 while warming up */
  int32_t reserved1;
  double forecast_time;      /* bundles: the time the forecast is for (timestamp + horizon / frame_rate) */
  /* Bundles: capture times of the past frames the forecast used, oldest first (the first
     SRT_MAX_PAST of them; picked_count = past_frames), or the nearest buffered ones in warm-up. */
  int32_t picked_count;
  int32_t reserved2;
  double picked_times[SRT_MAX_PAST];
  /* Per-stage wall times of this run, milliseconds. */
  double preprocess_ms;      /* resize, colour order, normalization, layout into the input tensor */
  double inference_ms;       /* the backend call(s); for a bundle: features + f2f + decoder */
  double postprocess_ms;     /* output conversion into the caller's buffers */
  double features_ms, f2f_ms, decoder_ms; /* bundles only (0 otherwise) */
  double total_ms;
} srt_result;

/* Like POSIX `struct stat` and stat(): the struct shares its name with the function srt_engine_info,
   so it has no typedef; write `struct srt_engine_info info; srt_engine_info_init(&info);`. */
struct srt_engine_info {
  uint32_t struct_size; /* sizeof(struct srt_engine_info) */
  int32_t task;         /* SRT_TASK_* */
  int32_t backend;      /* SRT_BACKEND_* in use */
  int32_t num_classes;
  int32_t input_height, input_width;
  int32_t output_height, output_width;
  int32_t has_outlier_score;
  float outlier_threshold;
  int32_t forecast_horizon;   /* frames at frame_rate; 0 unless a bundle */
  int32_t past_frames;        /* number of past offsets of a bundle */
  double frame_rate;          /* a bundle's trained rate (Hz); 0 otherwise */
  double forecast_horizon_s;  /* horizon / frame_rate */
  char precision[16];         /* "fp32", "fp16", "int8" */
  char arch[64];
  char backend_name[32];      /* "openvino 2024.x", "tensorrt 10.3.0" */
};

typedef struct srt_class_info {
  uint32_t struct_size; /* sizeof(srt_class_info) */
  int32_t id;           /* train id written into class maps */
  uint8_t color[3];     /* R, G, B */
  uint8_t reserved0;
  char name[64];
} srt_class_info;

/* A network input described without a manifest (added in ABI 1.2): what srt_preprocess turns a
   frame into. The same fields a manifest's `input` block has. */
typedef struct srt_input_spec {
  uint32_t struct_size; /* sizeof(srt_input_spec) */
  int32_t height, width;/* the input's size, 1 to 65536 each */
  int32_t layout;       /* SRT_LAYOUT_NHWC or SRT_LAYOUT_NCHW (one image, 3 channels) */
  int32_t dtype;        /* SRT_DTYPE_UINT8 or SRT_DTYPE_FLOAT32 */
  int32_t color_order;  /* the order the network is fed: SRT_FORMAT_BGR8 or SRT_FORMAT_RGB8 */
  int32_t resize;       /* SRT_RESIZE_STRETCH / LETTERBOX / CROP; SRT_RESIZE_MANIFEST (0) = stretch */
  int32_t normalize;    /* nonzero: (x * scale - mean[c]) / std[c] on the host (SRT_DTYPE_FLOAT32 only;
                           computed as x * mul + add in float32, mul = scale / std, add = -mean / std);
                           0: the raw values 0..255 (normalization in the graph) */
  float scale;
  float mean[3];        /* per channel of the network's colour order */
  float std[3];         /* non-zero */
  int32_t reserved0;    /* 0 */
} srt_input_spec;

/* How a frame was fitted to an input (added in ABI 1.2): the frame (src_height x src_width) was
   resized to resized_height x resized_width (input pixels per frame pixel: scale_x, scale_y), then
   placed at (pad_x, pad_y) on a black height x width image (letterbox) or cut from (crop_x, crop_y)
   (crop); stretch resizes to height x width. A frame of the input's size is used as it is (scale 1,
   resized = src). What maps results back onto the frame (and moves camera intrinsics). */
typedef struct srt_fit {
  uint32_t struct_size; /* sizeof(srt_fit) */
  int32_t resize;       /* SRT_RESIZE_STRETCH / LETTERBOX / CROP */
  int32_t src_height, src_width;
  int32_t resized_height, resized_width;
  int32_t height, width;
  int32_t pad_x, pad_y;
  int32_t crop_x, crop_y;
  double scale_x, scale_y;
} srt_fit;

/* ---- functions -------------------------------------------------------------------------------- */

SRT_API uint32_t srt_abi_version(void);
/* "swiftrt 1.0.0 (abi 1; backends: openvino tensorrt)". Static storage. */
SRT_API const char *srt_version(void);
/* A stable, static name for a status ("SRT_ERROR_MANIFEST: ..."); unknown numbers get a generic one. */
SRT_API const char *srt_status_string(srt_status status);
/* The last failure on this thread, one line; "" if none yet. Successful calls leave it as it is; the
   pointer stays valid until the next failing srt_* call on this thread. */
SRT_API const char *srt_last_error(void);

/* ---- struct initialisers ----------------------------------------------------------------------
   srt_X_init(&x) zeroes x, sets x.struct_size = sizeof x as the CALLER compiled it and fills the
   defaults (srt_open_options: outlier_threshold 0.5; every other field 0). They are static inline
   over the exported srt_X_init_sized(x, size), which writes exactly `size` bytes: a program built
   against this header never has more bytes written than its struct has, whatever library it runs
   on. (libswiftrt also exports ABI 1's first srt_open_options_init, for programs built before.) */
SRT_API srt_status srt_open_options_init_sized(srt_open_options *options, uint32_t size);
SRT_API srt_status srt_frame_init_sized(srt_frame *frame, uint32_t size);
SRT_API srt_status srt_result_init_sized(srt_result *result, uint32_t size);
SRT_API srt_status srt_engine_info_init_sized(struct srt_engine_info *info, uint32_t size);
SRT_API srt_status srt_class_info_init_sized(srt_class_info *info, uint32_t size);
/* ABI 1.2 (SWIFTRT_1.2). srt_input_spec defaults: 1.0 scale, 0 mean, 1.0 std, every other field 0. */
SRT_API srt_status srt_input_spec_init_sized(srt_input_spec *spec, uint32_t size);
SRT_API srt_status srt_fit_init_sized(srt_fit *fit, uint32_t size);

#ifndef SWIFTRT_BUILDING_LIBRARY /* the library itself exports the first srt_open_options_init */
static inline srt_status srt_open_options_init(srt_open_options *options) {
  return srt_open_options_init_sized(options, (uint32_t)sizeof *options);
}
#endif
static inline srt_status srt_frame_init(srt_frame *frame) {
  return srt_frame_init_sized(frame, (uint32_t)sizeof *frame);
}
static inline srt_status srt_result_init(srt_result *result) {
  return srt_result_init_sized(result, (uint32_t)sizeof *result);
}
static inline srt_status srt_engine_info_init(struct srt_engine_info *info) {
  return srt_engine_info_init_sized(info, (uint32_t)sizeof *info);
}
static inline srt_status srt_class_info_init(srt_class_info *info) {
  return srt_class_info_init_sized(info, (uint32_t)sizeof *info);
}
static inline srt_status srt_input_spec_init(srt_input_spec *spec) {
  return srt_input_spec_init_sized(spec, (uint32_t)sizeof *spec);
}
static inline srt_status srt_fit_init(srt_fit *fit) {
  return srt_fit_init_sized(fit, (uint32_t)sizeof *fit);
}

/* path: an .onnx / .plan with its manifest beside it, a manifest, or a forecast bundle
   (forecast.json or its folder). options may be NULL. On failure *engine is NULL. */
SRT_API srt_status srt_engine_open(const char *path, const srt_open_options *options, srt_engine **engine);
/* NULL is fine. Not while another call runs on the engine; a pending srt_engine_run_async is
   waited for (its result is not written). */
SRT_API void srt_engine_close(srt_engine *engine);
SRT_API srt_status srt_engine_info(const srt_engine *engine, struct srt_engine_info *info);
/* index in [0, num_classes) */
SRT_API srt_status srt_engine_class(const srt_engine *engine, int index, srt_class_info *info);
SRT_API srt_status srt_engine_run(srt_engine *engine, const srt_frame *frame, srt_result *result);
/* Several cameras, one call (added in ABI 1.1, symbol version SWIFTRT_1.1): frames[i] is camera
   i's frame, each with its own size, stride and data_size; frames[i] == NULL: camera i has no new
   frame this cycle (a partial batch), results[i] is then left untouched and may be NULL. results[i]
   gets frames[i]'s result, as srt_engine_run would give it. Every frame and result is checked before
   any runs (one bad one: its status, "frame i: ...", and nothing written). count <= SRT_MAX_BATCH.
   Not for forecast bundles with more than one frame (one ring of past frames: one engine per
   camera): SRT_ERROR_INVALID_ARGUMENT. A batch-1 artifact runs the frames one after another; a
   batch-N artifact (its manifest's input has first dimension N) up to N per inference, each in its
   own batch slot; its frames are then all in host memory or all in CUDA memory on one cuda_stream
   (else SRT_ERROR_UNSUPPORTED, "frame i: ..."). */
#define SRT_MAX_BATCH 64
SRT_API srt_status srt_engine_run_batch(srt_engine *engine, const srt_frame *const *frames, size_t count,
                                        srt_result *const *results);
/* Forgets a bundle's past frames (a new stream); no-op for other engines. */
SRT_API srt_status srt_engine_reset(srt_engine *engine);

/* Asynchronous runs. srt_engine_run_async starts the frame and returns; the engine is busy (every
   other call on it: SRT_ERROR_BUSY) until srt_engine_wait(engine), which completes the run and
   fills `result` (the struct and buffers given to run_async: keep them alive until then). With
   TensorRT the work is queued on the frame's cuda_stream (or the engine's) and
   srt_engine_completion_event gives the cudaEvent_t recorded after it (cudaStreamWaitEvent on it
   orders later GPU work; the class maps are written by srt_engine_wait). Backends without a GPU
   run the frame inside srt_engine_run_async; srt_engine_wait then only returns its status. */
SRT_API srt_status srt_engine_run_async(srt_engine *engine, const srt_frame *frame, srt_result *result);
SRT_API srt_status srt_engine_wait(srt_engine *engine);
/* *cuda_event: a cudaEvent_t owned by the engine; SRT_ERROR_UNSUPPORTED without TensorRT. */
SRT_API srt_status srt_engine_completion_event(srt_engine *engine, void **cuda_event);

/* Preprocessing without an engine (added in ABI 1.2, symbol version SWIFTRT_1.2): a host frame ->
   the input tensor `spec` describes, by the very code srt_engine_run feeds its network with (the
   same fit, bilinear resize, colour order, normalization and layout; bit for bit). For tools that
   need the tensor itself (calibration, parity checks) or the fitted frame (display).
   tensor: height * width * 3 elements of spec's dtype in spec's layout (tensor_size bytes, at least
   that; else SRT_ERROR_BUFFER_TOO_SMALL). fitted: the frame fitted to height x width, 3 bytes a
   pixel in the FRAME's channel order, rows of 3 * width bytes (fitted_size >= height * width * 3).
   fit: how the frame was fitted. Any of the three may be NULL. The frame must be host memory
   (SRT_MEMORY_HOST; its data_size is checked as srt_engine_run checks it). Nothing is written
   when a check fails. Unlike an engine's runs, each call allocates its working buffers. Thread-safe. */
SRT_API srt_status srt_preprocess(const srt_input_spec *spec, const srt_frame *frame, void *tensor,
                                  size_t tensor_size, uint8_t *fitted, size_t fitted_size, srt_fit *fit);
/* The fit of a src_height x src_width frame to a height x width input by `resize` (SRT_RESIZE_*;
   MANIFEST = stretch), without a frame: srt_preprocess's geometry. Sizes 1 to 65536. */
SRT_API srt_status srt_fit_geometry(int32_t src_height, int32_t src_width, int32_t height, int32_t width,
                                    int32_t resize, srt_fit *fit);

/* Where libswiftrt's messages go: the core's, TensorRT's (ILogger) and OpenVINO's. fn(severity,
   message, user) may be called from any thread that calls into the library (and OpenVINO's),
   with one line without a newline; it must not call back into libswiftrt. fn NULL restores
   the default: warnings and errors to stderr. Process-wide; set it before opening engines. */
typedef void (*srt_log_fn)(int32_t severity, const char *message, void *user);
SRT_API srt_status srt_set_log_callback(srt_log_fn fn, void *user);

#ifdef __cplusplus
}
#endif

#endif /* SWIFTRT_H */
