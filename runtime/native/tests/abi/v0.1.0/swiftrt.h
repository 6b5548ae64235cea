/*
 * swiftrt.h - the C ABI of libswiftrt, swiftrt's native inference core.
 *
 * One engine = one exported artifact and its manifest (X.onnx + X.onnx.json, X.plan + X.plan.json)
 * or a forecast bundle (forecast.json or its folder). Everything the core needs - tensor names,
 * input size, layout, dtype, colour order, normalization, resize mode, classes, outlier threshold,
 * forecast offsets - comes from the manifest; nothing is hard-coded.
 *
 * Rules (see docs/native.md):
 *  - Handles are opaque. Every struct passed in starts with `uint32_t struct_size` = sizeof(struct)
 *    as the caller compiled it; later versions only append fields.
 *  - Status numbers are stable; SRT_OK is 0. A failing call returns a status and sets a one-line,
 *    thread-local message readable with srt_last_error() until the next failing call on that thread.
 *  - No C++ exception and no abort crosses this ABI.
 *  - One srt_engine_run at a time per engine; different engines may run on different threads.
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

/* Bumped only on an incompatible change of this header. */
#define SRT_ABI_VERSION 1u

/* ---- status ----------------------------------------------------------------------------------- */

typedef int32_t srt_status;
enum {
  SRT_OK = 0,
  SRT_ERROR_INVALID_ARGUMENT = 1, /* a NULL pointer, a bad enum value, a 0x0 frame, a short stride */
  SRT_ERROR_STRUCT_SIZE = 2,      /* struct_size smaller than this ABI's struct (or absurdly large) */
  SRT_ERROR_NOT_FOUND = 3,        /* the engine file, its manifest or a bundle stage is missing */
  SRT_ERROR_MANIFEST = 4,         /* unreadable manifest, another schema_version, fields missing or wrong */
  SRT_ERROR_CORRUPT_ENGINE = 5,   /* artifact does not match the manifest's sha256, or the backend cannot load it */
  SRT_ERROR_UNSUPPORTED = 6,      /* a backend not compiled in, a dtype/layout this core does not handle */
  SRT_ERROR_BUFFER_TOO_SMALL = 7, /* a result buffer smaller than srt_engine_info says */
  SRT_ERROR_BACKEND = 8,          /* the inference library failed at run time */
  SRT_ERROR_OUT_OF_MEMORY = 9,
  SRT_ERROR_INTERNAL = 10
};

/* ---- enums ------------------------------------------------------------------------------------ */

enum { SRT_BACKEND_AUTO = 0, SRT_BACKEND_OPENVINO = 1, SRT_BACKEND_TENSORRT = 2 };
enum { SRT_TASK_SEGMENTATION = 1, SRT_TASK_OUTLIER = 2, SRT_TASK_FORECAST = 3 };
enum { SRT_FORMAT_BGR8 = 1, SRT_FORMAT_RGB8 = 2 };
/* How a frame is fitted to the network input; MANIFEST = the manifest's input.resize. */
enum { SRT_RESIZE_MANIFEST = 0, SRT_RESIZE_STRETCH = 1, SRT_RESIZE_LETTERBOX = 2, SRT_RESIZE_CROP = 3 };

#define SRT_MAX_PAST 16

/* ---- structs ---------------------------------------------------------------------------------- */

typedef struct srt_engine srt_engine; /* opaque */

typedef struct srt_open_options {
  uint32_t struct_size;          /* sizeof(srt_open_options) */
  int32_t backend;               /* SRT_BACKEND_*; AUTO: from the file (.onnx: OpenVINO, .plan: TensorRT) */
  int32_t threads;               /* inference threads; 0 = the backend's default */
  int32_t resize;                /* SRT_RESIZE_* */
  int32_t use_outlier_threshold; /* nonzero: use outlier_threshold, else the manifest's default */
  float outlier_threshold;       /* in [0, 1]; a pixel is an outlier when its score is above it */
  int32_t decode_current;        /* forecast bundles: also segment the current frame (one decoder run) */
  int32_t device;                /* TensorRT: CUDA device index */
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
   so it has no typedef; write `struct srt_engine_info info = {sizeof info};`. */
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

/* ---- functions -------------------------------------------------------------------------------- */

SRT_API uint32_t srt_abi_version(void);
/* "swiftrt 0.1.0 (abi 1; backends: openvino tensorrt)". Static storage. */
SRT_API const char *srt_version(void);
/* A stable, static name for a status ("SRT_ERROR_MANIFEST: ..."); unknown numbers get a generic one. */
SRT_API const char *srt_status_string(srt_status status);
/* The last failure on this thread, one line; "" if none yet. Successful calls leave it as it is; the
   pointer stays valid until the next failing srt_* call on this thread. */
SRT_API const char *srt_last_error(void);

/* Fills `options` with defaults (struct_size included). */
SRT_API srt_status srt_open_options_init(srt_open_options *options);

/* path: an .onnx / .plan with its manifest beside it, a manifest, or a forecast bundle
   (forecast.json or its folder). options may be NULL. On failure *engine is NULL. */
SRT_API srt_status srt_engine_open(const char *path, const srt_open_options *options, srt_engine **engine);
SRT_API void srt_engine_close(srt_engine *engine); /* NULL is fine */
SRT_API srt_status srt_engine_info(const srt_engine *engine, struct srt_engine_info *info);
/* index in [0, num_classes) */
SRT_API srt_status srt_engine_class(const srt_engine *engine, int index, srt_class_info *info);
SRT_API srt_status srt_engine_run(srt_engine *engine, const srt_frame *frame, srt_result *result);
/* Forgets a bundle's past frames (a new stream); no-op for other engines. */
SRT_API srt_status srt_engine_reset(srt_engine *engine);

#ifdef __cplusplus
}
#endif

#endif /* SWIFTRT_H */
