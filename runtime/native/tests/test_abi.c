/* C tests of libswiftrt through its ABI only (C99): what a vehicle-software caller relies on.
 *
 *   test_abi ENGINES_DIR [FRAMES [BACKEND]]
 *
 * ENGINES_DIR is what tests/make_engines.py writes: seg.onnx, ood.onnx, bundle/, bad/ (broken
 * engines and manifests). FRAMES (default 40) frames run through each engine; the sanitizer build
 * runs a few hundred. BACKEND: openvino (default) or onnxruntime, the backend every engine is
 * opened with (the error tests open with AUTO).
 */
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swiftrt.h"

static int failures = 0;
static char dir[4096];
static int backend_kind = SRT_BACKEND_OPENVINO;
static const char *backend_label = "openvino";

/* Default options with the backend under test. */
static const srt_open_options *opts(srt_open_options *o) {
  srt_open_options_init(o);
  o->backend = backend_kind;
  return o;
}

#define CHECK(cond, ...)                                       \
  do {                                                         \
    if (!(cond)) {                                             \
      ++failures;                                              \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                            \
      fprintf(stderr, "\n");                                   \
    }                                                          \
  } while (0)

static const char *path_of(const char *name) {
  static char buf[8192];
  snprintf(buf, sizeof buf, "%s/%s", dir, name);
  return buf;
}

/* A failing call: the status, and one non-empty line in srt_last_error. */
static void expect_error(srt_status got, srt_status want, const char *what) {
  const char *msg = srt_last_error();
  CHECK(got == want, "%s: status %s, expected %s (%s)", what, srt_status_string(got), srt_status_string(want), msg);
  CHECK(msg != NULL && msg[0] != '\0', "%s: empty srt_last_error", what);
  CHECK(msg == NULL || strchr(msg, '\n') == NULL, "%s: srt_last_error has more than one line: %s", what, msg);
  if (getenv("SRT_TEST_VERBOSE")) printf("  %-40s %s: %s\n", what, srt_status_string(got), msg);
}

/* A deterministic synthetic frame: gradients plus a moving block. */
static unsigned char *make_frame(int w, int h, size_t stride, int seed) {
  unsigned char *p = (unsigned char *)malloc(stride * (size_t)h);
  int x, y;
  for (y = 0; y < h; ++y)
    for (x = 0; x < w; ++x) {
      unsigned char *px = p + (size_t)y * stride + 3 * (size_t)x;
      int block = (x / 16 + y / 16 + seed) % 3;
      px[0] = (unsigned char)((x * 255) / (w > 1 ? w - 1 : 1));
      px[1] = (unsigned char)((y * 255) / (h > 1 ? h - 1 : 1));
      px[2] = (unsigned char)(block * 100 + seed * 7);
    }
  return p;
}

static srt_frame frame_of(const unsigned char *data, int w, int h, size_t stride) {
  srt_frame f;
  memset(&f, 0, sizeof f);
  f.struct_size = sizeof f;
  f.format = SRT_FORMAT_BGR8;
  f.width = w;
  f.height = h;
  f.stride = stride;
  f.data = data;
  f.data_size = stride * (size_t)h;
  return f;
}

static void test_versions(void) {
  srt_status s;
  CHECK(srt_abi_version() == SRT_ABI_VERSION, "abi %u", srt_abi_version());
  CHECK(strstr(srt_version(), backend_label) != NULL, "version '%s' does not name the %s backend", srt_version(),
        backend_label);
  for (s = 0; s <= SRT_ERROR_BUSY; ++s) CHECK(strncmp(srt_status_string(s), "SRT_", 4) == 0, "status %d", (int)s);
  CHECK(strcmp(srt_status_string(12345), "SRT_ERROR_UNKNOWN") == 0, "unknown status");
}

static void test_open_errors(void) {
  srt_engine *engine = (srt_engine *)1;
  srt_open_options options;
  expect_error(srt_engine_open(NULL, NULL, &engine), SRT_ERROR_INVALID_ARGUMENT, "open(NULL path)");
  CHECK(engine == NULL, "engine not reset to NULL on failure");
  expect_error(srt_engine_open(path_of("seg.onnx"), NULL, NULL), SRT_ERROR_INVALID_ARGUMENT, "open(NULL engine)");
  expect_error(srt_open_options_init(NULL), SRT_ERROR_INVALID_ARGUMENT, "options_init(NULL)");
  srt_open_options_init(&options);
  options.struct_size = 0;
  expect_error(srt_engine_open(path_of("seg.onnx"), &options, &engine), SRT_ERROR_STRUCT_SIZE, "options struct_size 0");
  options.struct_size = 8;
  expect_error(srt_engine_open(path_of("seg.onnx"), &options, &engine), SRT_ERROR_STRUCT_SIZE, "options struct_size 8");
  /* A size ending inside a field (here half of the providers pointer) is garbage, not an older header. */
  srt_open_options_init(&options);
  options.struct_size = (uint32_t)offsetof(srt_open_options, providers) + 4;
  options.providers = "cpu";
  expect_error(srt_engine_open(path_of("seg.onnx"), &options, &engine), SRT_ERROR_STRUCT_SIZE,
               "options struct_size ending inside a pointer");
  srt_open_options_init(&options);
  options.backend = 42;
  expect_error(srt_engine_open(path_of("seg.onnx"), &options, &engine), SRT_ERROR_INVALID_ARGUMENT, "backend 42");
  srt_open_options_init(&options);
  options.use_outlier_threshold = 1;
  options.outlier_threshold = 1.5f;
  expect_error(srt_engine_open(path_of("ood.onnx"), &options, &engine), SRT_ERROR_INVALID_ARGUMENT, "threshold 1.5");
  expect_error(srt_engine_open(path_of("missing.onnx"), NULL, &engine), SRT_ERROR_NOT_FOUND, "missing engine");
  expect_error(srt_engine_open(path_of("bad/no_manifest.onnx"), NULL, &engine), SRT_ERROR_NOT_FOUND, "no manifest");
  expect_error(srt_engine_open(path_of("bad/schema2.onnx"), NULL, &engine), SRT_ERROR_MANIFEST, "schema_version 2");
  CHECK(strstr(srt_last_error(), "schema version 2") != NULL, "schema message: %s", srt_last_error());
  expect_error(srt_engine_open(path_of("bad/badjson.onnx"), NULL, &engine), SRT_ERROR_MANIFEST, "malformed JSON");
  expect_error(srt_engine_open(path_of("bad/nofield.onnx"), NULL, &engine), SRT_ERROR_MANIFEST, "manifest without outputs");
  expect_error(srt_engine_open(path_of("bad/wrongname.onnx"), NULL, &engine), SRT_ERROR_MANIFEST, "tensor not in model");
  expect_error(srt_engine_open(path_of("bad/emptyinput.onnx"), NULL, &engine), SRT_ERROR_MANIFEST, "empty input name");
  CHECK(strstr(srt_last_error(), "input name must be a non-empty string") != NULL, "message: %s", srt_last_error());
  expect_error(srt_engine_open(path_of("bad/emptyoutput.onnx"), NULL, &engine), SRT_ERROR_MANIFEST, "empty output name");
  CHECK(strstr(srt_last_error(), "output name must be a non-empty string") != NULL, "message: %s", srt_last_error());
  expect_error(srt_engine_open(path_of("bad/noscore.onnx"), NULL, &engine), SRT_ERROR_MANIFEST, "outlier without a score");
  CHECK(strstr(srt_last_error(), "without an output with meaning outlier_score") != NULL, "message: %s", srt_last_error());
  expect_error(srt_engine_open(path_of("bad/truncated.onnx"), NULL, &engine), SRT_ERROR_CORRUPT_ENGINE, "truncated engine");
  expect_error(srt_engine_open(path_of("bad/garbage.onnx"), NULL, &engine), SRT_ERROR_CORRUPT_ENGINE, "garbage engine");
  expect_error(srt_engine_open(path_of("bundle/features.onnx"), NULL, &engine), SRT_ERROR_MANIFEST, "a bundle stage");
  expect_error(srt_engine_open(path_of("bad"), NULL, &engine), SRT_ERROR_NOT_FOUND, "folder without forecast.json");
  CHECK(engine == NULL, "engine set after failures");
  srt_engine_close(NULL); /* allowed */
}

static void test_segmentation(int frames) {
  srt_engine *engine = NULL;
  struct srt_engine_info info;
  srt_class_info cls;
  srt_result result;
  srt_frame frame;
  unsigned char *data, *map;
  size_t plane;
  int i, j, bad_ids = 0;
  srt_open_options options;
  srt_status s = srt_engine_open(path_of("seg.onnx"), opts(&options), &engine);
  CHECK(s == SRT_OK, "open seg.onnx: %s", srt_last_error());
  if (s != SRT_OK) return;

  memset(&info, 0, sizeof info);
  expect_error(srt_engine_info(engine, &info), SRT_ERROR_STRUCT_SIZE, "info struct_size 0");
  expect_error(srt_engine_info(NULL, &info), SRT_ERROR_INVALID_ARGUMENT, "info(NULL engine)");
  expect_error(srt_engine_info(engine, NULL), SRT_ERROR_INVALID_ARGUMENT, "info(NULL info)");
  info.struct_size = sizeof info;
  CHECK(srt_engine_info(engine, &info) == SRT_OK, "info: %s", srt_last_error());
  CHECK(info.task == SRT_TASK_SEGMENTATION, "task %d", info.task);
  CHECK(info.backend == backend_kind, "backend %d", info.backend);
  CHECK(info.num_classes == 19, "classes %d", info.num_classes);
  CHECK(info.input_height > 0 && info.input_width > 0 && info.output_height == info.input_height &&
            info.output_width == info.input_width, "sizes %dx%d -> %dx%d", info.input_width, info.input_height,
        info.output_width, info.output_height);
  CHECK(info.has_outlier_score == 0 && info.forecast_horizon == 0, "flags");
  CHECK(strcmp(info.precision, "fp32") == 0, "precision '%s'", info.precision);
  CHECK(strncmp(info.backend_name, backend_label, strlen(backend_label)) == 0, "backend name '%s'", info.backend_name);

  cls.struct_size = sizeof cls;
  CHECK(srt_engine_class(engine, 0, &cls) == SRT_OK && strcmp(cls.name, "road") == 0, "class 0 '%s'", cls.name);
  CHECK(srt_engine_class(engine, 13, &cls) == SRT_OK && strcmp(cls.name, "car") == 0 && cls.color[2] == 142,
        "class 13 '%s'", cls.name);
  expect_error(srt_engine_class(engine, -1, &cls), SRT_ERROR_INVALID_ARGUMENT, "class -1");
  expect_error(srt_engine_class(engine, info.num_classes, &cls), SRT_ERROR_INVALID_ARGUMENT, "class num_classes");
  cls.struct_size = 4;
  expect_error(srt_engine_class(engine, 0, &cls), SRT_ERROR_STRUCT_SIZE, "class struct_size 4");

  plane = (size_t)info.output_width * (size_t)info.output_height;
  map = (unsigned char *)malloc(plane);
  memset(&result, 0, sizeof result);
  result.struct_size = sizeof result;
  result.class_map = map;
  result.class_map_size = plane;
  data = make_frame(640, 480, 640 * 3 + 5, 0);
  frame = frame_of(data, 640, 480, 640 * 3 + 5);

  /* Bad input through the ABI. */
  expect_error(srt_engine_run(NULL, &frame, &result), SRT_ERROR_INVALID_ARGUMENT, "run(NULL engine)");
  expect_error(srt_engine_run(engine, NULL, &result), SRT_ERROR_INVALID_ARGUMENT, "run(NULL frame)");
  expect_error(srt_engine_run(engine, &frame, NULL), SRT_ERROR_INVALID_ARGUMENT, "run(NULL result)");
  frame.struct_size = 0;
  expect_error(srt_engine_run(engine, &frame, &result), SRT_ERROR_STRUCT_SIZE, "frame struct_size 0");
  frame.struct_size = sizeof frame;
  result.struct_size = 16;
  expect_error(srt_engine_run(engine, &frame, &result), SRT_ERROR_STRUCT_SIZE, "result struct_size short");
  result.struct_size = sizeof result;
  frame.width = frame.height = 0;
  expect_error(srt_engine_run(engine, &frame, &result), SRT_ERROR_INVALID_ARGUMENT, "0x0 frame");
  frame.width = 640, frame.height = -3;
  expect_error(srt_engine_run(engine, &frame, &result), SRT_ERROR_INVALID_ARGUMENT, "negative height");
  frame.height = 480;
  frame.stride = 640 * 3 - 1;
  expect_error(srt_engine_run(engine, &frame, &result), SRT_ERROR_INVALID_ARGUMENT, "short stride");
  frame.stride = 640 * 3 + 5;
  frame.data = NULL;
  expect_error(srt_engine_run(engine, &frame, &result), SRT_ERROR_INVALID_ARGUMENT, "NULL data");
  frame.data = data;
  frame.format = 7;
  expect_error(srt_engine_run(engine, &frame, &result), SRT_ERROR_INVALID_ARGUMENT, "bad format");
  frame.format = SRT_FORMAT_BGR8;
  result.class_map_size = plane - 1;
  expect_error(srt_engine_run(engine, &frame, &result), SRT_ERROR_BUFFER_TOO_SMALL, "class map too small");
  result.class_map_size = plane;
  result.outlier_score = (float *)map;
  result.outlier_score_size = plane * 4;
  expect_error(srt_engine_run(engine, &frame, &result), SRT_ERROR_INVALID_ARGUMENT, "outlier score on a seg engine");
  result.outlier_score = NULL;
  result.forecast_map = map;
  result.forecast_map_size = plane;
  expect_error(srt_engine_run(engine, &frame, &result), SRT_ERROR_INVALID_ARGUMENT, "forecast map on a seg engine");
  result.forecast_map = NULL;

  /* Frames of several sizes and pitches: every class id is a class of the manifest. */
  for (i = 0; i < frames; ++i) {
    int w = i % 3 == 0 ? 640 : (i % 3 == 1 ? info.input_width : 97);
    int h = i % 3 == 0 ? 480 : (i % 3 == 1 ? info.input_height : 61);
    size_t stride = (size_t)w * 3 + (size_t)(i % 4);
    unsigned char *d = make_frame(w, h, stride, i);
    srt_frame f = frame_of(d, w, h, stride);
    f.format = i % 2 ? SRT_FORMAT_RGB8 : SRT_FORMAT_BGR8;
    memset(map, 255, plane);
    s = srt_engine_run(engine, &f, &result);
    CHECK(s == SRT_OK, "run %d: %s", i, srt_last_error());
    for (j = 0; j < (int)plane; ++j) bad_ids += map[j] >= info.num_classes;
    CHECK(result.total_ms > 0 && result.inference_ms > 0 && result.outlier_pixels == -1, "timings / outlier count: %f %f %lld",
          result.total_ms, result.inference_ms, (long long)result.outlier_pixels);
    free(d);
  }
  CHECK(bad_ids == 0, "%d pixels with a class id outside the manifest's classes", bad_ids);
  CHECK(srt_engine_reset(engine) == SRT_OK, "reset of a plain engine");
  expect_error(srt_engine_reset(NULL), SRT_ERROR_INVALID_ARGUMENT, "reset(NULL)");
  free(data);
  free(map);
  srt_engine_close(engine);
}

static void test_outlier(int frames) {
  srt_engine *engine = NULL;
  srt_open_options options;
  struct srt_engine_info info;
  srt_result result;
  size_t plane;
  float *score;
  unsigned char *mask, *map, *data;
  int i, j;
  opts(&options);
  options.use_outlier_threshold = 1;
  options.outlier_threshold = 0.25f;
  if (srt_engine_open(path_of("ood.onnx"), &options, &engine) != SRT_OK) {
    CHECK(0, "open ood.onnx: %s", srt_last_error());
    return;
  }
  info.struct_size = sizeof info;
  srt_engine_info(engine, &info);
  CHECK(info.task == SRT_TASK_OUTLIER && info.has_outlier_score == 1, "outlier task %d", info.task);
  CHECK(fabsf(info.outlier_threshold - 0.25f) < 1e-6f, "threshold %f (options say 0.25)", info.outlier_threshold);
  plane = (size_t)info.output_width * (size_t)info.output_height;
  score = (float *)malloc(plane * sizeof(float));
  mask = (unsigned char *)malloc(plane);
  map = (unsigned char *)malloc(plane);
  memset(&result, 0, sizeof result);
  result.struct_size = sizeof result;
  result.class_map = map, result.class_map_size = plane;
  result.outlier_score = score, result.outlier_score_size = plane * sizeof(float);
  result.outlier_mask = mask, result.outlier_mask_size = plane;
  data = make_frame(800, 400, 2400, 3);
  for (i = 0; i < frames; ++i) {
    srt_frame f = frame_of(data, 800, 400, 2400);
    long long count = 0;
    int agree = 1, in_range = 1;
    CHECK(srt_engine_run(engine, &f, &result) == SRT_OK, "run: %s", srt_last_error());
    for (j = 0; j < (int)plane; ++j) {
      count += score[j] > 0.25f;
      agree &= mask[j] == (score[j] > 0.25f);
      in_range &= score[j] >= 0.f && score[j] <= 1.f;
    }
    CHECK(agree && in_range && count == result.outlier_pixels, "mask / score / count disagree (%lld vs %lld)", count,
          (long long)result.outlier_pixels);
  }
  srt_engine_close(engine);
  /* Without options the manifest's default threshold (0.5) applies. */
  if (srt_engine_open(path_of("ood.onnx"), opts(&options), &engine) == SRT_OK) {
    srt_engine_info(engine, &info);
    CHECK(fabsf(info.outlier_threshold - 0.5f) < 1e-6f, "default threshold %f", info.outlier_threshold);
    srt_engine_close(engine);
  }
  free(data), free(score), free(mask), free(map);
}

static void test_forecast(int frames) {
  srt_engine *engine = NULL;
  srt_open_options options;
  struct srt_engine_info info;
  srt_result result;
  size_t plane;
  unsigned char *fmap, *cmap;
  int i, first = -1, warmups = 0, round;
  opts(&options);
  options.decode_current = 1;
  if (srt_engine_open(path_of("bundle"), &options, &engine) != SRT_OK) {
    CHECK(0, "open bundle: %s", srt_last_error());
    return;
  }
  info.struct_size = sizeof info;
  srt_engine_info(engine, &info);
  CHECK(info.task == SRT_TASK_FORECAST && info.forecast_horizon > 0 && info.past_frames > 1 && info.frame_rate > 0,
        "forecast info");
  plane = (size_t)info.output_width * (size_t)info.output_height;
  fmap = (unsigned char *)malloc(plane);
  cmap = (unsigned char *)malloc(plane);
  memset(&result, 0, sizeof result);
  result.struct_size = sizeof result;
  result.forecast_map = fmap, result.forecast_map_size = plane;
  result.class_map = cmap, result.class_map_size = plane;
  /* Three streams of 12..30 frames: enough for warm-up and forecasts (each costs four networks). */
  if (frames < 3 * 12) frames = 3 * 12;
  if (frames > 3 * 30) frames = 3 * 30;
  /* Round 0: consecutive frames without timestamps (the trained rate); round 1: after reset, with
     timestamps at the trained rate; round 2: timestamps that go back start a new stream. */
  for (round = 0; round < 3; ++round) {
    int warm = 0, got = 0;
    if (round == 1) CHECK(srt_engine_reset(engine) == SRT_OK, "reset");
    for (i = 0; i < frames / 3; ++i) {
      unsigned char *d = make_frame(info.input_width, info.input_height, (size_t)info.input_width * 3, i);
      srt_frame f = frame_of(d, info.input_width, info.input_height, (size_t)info.input_width * 3);
      if (round > 0) {
        f.has_timestamp = 1;
        f.timestamp = (round == 2 ? 100.0 - 50.0 : 1000.0) + i / info.frame_rate;
      }
      CHECK(srt_engine_run(engine, &f, &result) == SRT_OK, "run: %s", srt_last_error());
      if (result.is_forecast) {
        ++got;
        if (first < 0) first = i;
      } else {
        CHECK(got == 0, "warm-up after a forecast in one stream");
        ++warm;
      }
      free(d);
    }
    /* Offsets like -9..0 need 9 earlier frames: frames 0..8 are warm-up. */
    CHECK(got > 0, "round %d: no forecast", round);
    if (round == 0) warmups = warm;
    CHECK(warm == warmups, "round %d: %d warm-up frames, round 0 had %d", round, warm, warmups);
  }
  CHECK(warmups > 0, "a bundle needs warm-up frames");
  expect_error(srt_engine_run(engine, NULL, &result), SRT_ERROR_INVALID_ARGUMENT, "bundle run(NULL frame)");
  srt_engine_close(engine);
  /* Without decode_current the current class map is refused (not silently left empty). */
  if (srt_engine_open(path_of("bundle/forecast.json"), opts(&options), &engine) == SRT_OK) {
    unsigned char *d = make_frame(320, 240, 960, 1);
    srt_frame f = frame_of(d, 320, 240, 960);
    expect_error(srt_engine_run(engine, &f, &result), SRT_ERROR_INVALID_ARGUMENT, "class_map without decode_current");
    result.class_map = NULL;
    CHECK(srt_engine_run(engine, &f, &result) == SRT_OK, "bundle via forecast.json: %s", srt_last_error());
    free(d);
    srt_engine_close(engine);
  } else {
    CHECK(0, "open bundle/forecast.json: %s", srt_last_error());
  }
  free(fmap), free(cmap);
}

/* ONNX Runtime's own options: execution providers and intra-op spinning. */
static void test_onnxruntime_options(void) {
  srt_engine *engine = NULL;
  srt_open_options options;
  struct srt_engine_info info;
  srt_result result;
  unsigned char *d = make_frame(300, 200, 900, 6);
  srt_frame f = frame_of(d, 300, 200, 900);
  /* AUTO runs an .onnx on ONNX Runtime where it is built in. */
  if (srt_engine_open(path_of("seg.onnx"), NULL, &engine) == SRT_OK) {
    info.struct_size = sizeof info;
    srt_engine_info(engine, &info);
    CHECK(info.backend == SRT_BACKEND_ONNXRUNTIME, "AUTO picked backend %d for an .onnx", info.backend);
    srt_engine_close(engine);
  } else {
    CHECK(0, "open seg.onnx (AUTO): %s", srt_last_error());
  }
  /* An explicit provider list, names short or ORT's, and sleeping threads. */
  opts(&options);
  options.providers = " cpu ,CPUExecutionProvider";
  options.spin = 0;
  options.threads = 1;
  if (srt_engine_open(path_of("seg.onnx"), &options, &engine) == SRT_OK) {
    memset(&result, 0, sizeof result);
    result.struct_size = sizeof result;
    CHECK(srt_engine_run(engine, &f, &result) == SRT_OK, "run with providers=cpu: %s", srt_last_error());
    info.struct_size = sizeof info;
    srt_engine_info(engine, &info);
    CHECK(strstr(info.backend_name, "cpu") != NULL, "backend name '%s' does not name the provider", info.backend_name);
    srt_engine_close(engine);
  } else {
    CHECK(0, "open seg.onnx with providers=cpu: %s", srt_last_error());
  }
  /* A provider this ONNX Runtime does not have: one line naming those it has. */
  opts(&options);
  options.providers = "cpu,nosuchprovider";
  expect_error(srt_engine_open(path_of("seg.onnx"), &options, &engine), SRT_ERROR_UNSUPPORTED, "unknown provider");
  CHECK(strstr(srt_last_error(), "nosuchprovider") && strstr(srt_last_error(), "available: "), "provider message: %s",
        srt_last_error());
  opts(&options);
  options.providers = " , ";
  expect_error(srt_engine_open(path_of("seg.onnx"), &options, &engine), SRT_ERROR_INVALID_ARGUMENT, "empty provider list");
  opts(&options);
  options.spin = 2;
  expect_error(srt_engine_open(path_of("seg.onnx"), &options, &engine), SRT_ERROR_INVALID_ARGUMENT, "spin 2");
  /* Providers are ONNX Runtime's: another backend refuses them rather than ignoring them. */
  srt_open_options_init(&options);
  options.backend = SRT_BACKEND_OPENVINO;
  options.providers = "cpu";
  expect_error(srt_engine_open(path_of("seg.onnx"), &options, &engine), SRT_ERROR_INVALID_ARGUMENT,
               "providers with openvino");
  CHECK(engine == NULL, "engine set after failures");
  free(d);
}

/* A frame must fit the bytes the caller says are there: nothing is read outside them. */
static void test_frame_bounds(void) {
  srt_engine *engine = NULL;
  srt_result result;
  srt_frame f;
  unsigned char *exact, *small;
  size_t extent;
  if (srt_engine_open(path_of("seg.onnx"), NULL, &engine) != SRT_OK) {
    CHECK(0, "open seg.onnx: %s", srt_last_error());
    return;
  }
  memset(&result, 0, sizeof result);
  result.struct_size = sizeof result;
  /* Exactly stride * (h - 1) + 3 * w bytes (the last row unpadded): accepted and read within. */
  extent = 1000 * 59 + 3 * 300;
  exact = (unsigned char *)malloc(extent);
  memset(exact, 90, extent);
  f = frame_of(exact, 300, 60, 1000);
  f.data_size = extent;
  CHECK(srt_engine_run(engine, &f, &result) == SRT_OK, "exact-size frame: %s", srt_last_error());
  f.data_size = extent - 1;
  expect_error(srt_engine_run(engine, &f, &result), SRT_ERROR_INVALID_ARGUMENT, "data_size one byte short");
  f.data_size = 0;
  expect_error(srt_engine_run(engine, &f, &result), SRT_ERROR_INVALID_ARGUMENT, "data_size 0");
  /* A stride of (size_t)-3 wraps: refused, never read 3 bytes before the buffer. */
  f = frame_of(exact, 300, 60, (size_t)-3);
  f.data_size = extent;
  expect_error(srt_engine_run(engine, &f, &result), SRT_ERROR_INVALID_ARGUMENT, "stride (size_t)-3");
  f.data_size = (size_t)-1;
  expect_error(srt_engine_run(engine, &f, &result), SRT_ERROR_INVALID_ARGUMENT, "stride (size_t)-3, data_size max");
  f = frame_of(exact, 300, 60, (size_t)1 << 62);
  f.data_size = extent;
  expect_error(srt_engine_run(engine, &f, &result), SRT_ERROR_INVALID_ARGUMENT, "stride 2^62");
  /* A declared 65536x65536 frame over a small buffer. */
  small = (unsigned char *)malloc(4096);
  memset(small, 0, 4096);
  f = frame_of(small, 65536, 65536, (size_t)65536 * 3);
  f.data_size = 4096;
  expect_error(srt_engine_run(engine, &f, &result), SRT_ERROR_INVALID_ARGUMENT, "65536x65536 frame over 4096 bytes");
  /* A caller built against the header before data_size (a smaller struct): checked for overflow. */
  f = frame_of(exact, 300, 60, 1000);
  f.struct_size = (uint32_t)offsetof(srt_frame, data_size);
  f.data_size = 1; /* beyond its struct: never read */
  CHECK(srt_engine_run(engine, &f, &result) == SRT_OK, "frame without data_size (old header): %s", srt_last_error());
  f.stride = (size_t)-3;
  expect_error(srt_engine_run(engine, &f, &result), SRT_ERROR_INVALID_ARGUMENT, "old-header frame, stride (size_t)-3");
  /* Where the data lives. */
  f = frame_of(exact, 300, 60, 1000);
  f.data_size = extent;
  f.memory = 5;
  expect_error(srt_engine_run(engine, &f, &result), SRT_ERROR_INVALID_ARGUMENT, "memory 5");
  f.memory = SRT_MEMORY_CUDA;
  expect_error(srt_engine_run(engine, &f, &result), SRT_ERROR_UNSUPPORTED, "a CUDA frame without TensorRT");
  free(exact);
  free(small);
  srt_engine_close(engine);
}

static void fill(unsigned char *p, size_t n, unsigned char v) { memset(p, v, n); }

/* The resizer's row cache never carries pixels from one frame into the next: frames 1 to 4 rows
   high (and 1 pixel wide) after larger ones and after a white frame of their own size give the
   class map a reference engine gives that saw only those frames. */
static void test_row_cache(void) {
  srt_engine *used = NULL, *fresh = NULL;
  struct srt_engine_info info;
  srt_result result;
  unsigned char *big, *white, *dark, *want, *got;
  size_t plane;
  int w, h, widths[3] = {1, 7, 512}, wi, differ = 0;
  if (srt_engine_open(path_of("seg.onnx"), NULL, &used) != SRT_OK ||
      srt_engine_open(path_of("seg.onnx"), NULL, &fresh) != SRT_OK) {
    CHECK(0, "open seg.onnx: %s", srt_last_error());
    srt_engine_close(used);
    return;
  }
  info.struct_size = sizeof info;
  srt_engine_info(used, &info);
  plane = (size_t)info.output_width * (size_t)info.output_height;
  want = (unsigned char *)malloc(plane);
  got = (unsigned char *)malloc(plane);
  big = (unsigned char *)malloc(640 * 480 * 3);
  fill(big, 640 * 480 * 3, 255);
  white = (unsigned char *)malloc(512 * 4 * 3);
  dark = (unsigned char *)malloc(512 * 4 * 3);
  fill(white, 512 * 4 * 3, 255);
  memset(&result, 0, sizeof result);
  result.struct_size = sizeof result;
  result.class_map_size = plane;
  for (wi = 0; wi < 3; ++wi)
    for (h = 1; h <= 4; ++h) {
      srt_frame f;
      size_t i;
      w = widths[wi];
      for (i = 0; i < (size_t)w * (size_t)h * 3; ++i) dark[i] = (unsigned char)(20 + (i * 5) % 40);
      /* The reference: an engine that sees only these dark frames, each of another size than the
         one before (a new size always recomputed the resize and emptied the cache). */
      f = frame_of(dark, w, h, (size_t)w * 3);
      result.class_map = want;
      CHECK(srt_engine_run(fresh, &f, &result) == SRT_OK, "reference run: %s", srt_last_error());
      /* The used engine: a large white frame, a white frame of this size, then the dark one. */
      result.class_map = got;
      f = frame_of(big, 640, 480, 640 * 3);
      CHECK(srt_engine_run(used, &f, &result) == SRT_OK, "run: %s", srt_last_error());
      f = frame_of(white, w, h, (size_t)w * 3);
      CHECK(srt_engine_run(used, &f, &result) == SRT_OK, "run: %s", srt_last_error());
      f = frame_of(dark, w, h, (size_t)w * 3);
      CHECK(srt_engine_run(used, &f, &result) == SRT_OK, "run: %s", srt_last_error());
      if (memcmp(want, got, plane) != 0) {
        ++differ;
        fprintf(stderr, "  %dx%d dark frame after white ones: class map differs from the reference\n", w, h);
      }
    }
  CHECK(differ == 0, "%d frame sizes took pixels from an earlier frame", differ);
  srt_engine_close(used);
  srt_engine_close(fresh);
  free(want), free(got), free(big), free(white), free(dark);
}

/* Two threads on ONE engine: every call either gives that thread's own right answer or
   SRT_ERROR_BUSY, never another frame's class map. */
struct shared_run {
  srt_engine *engine;
  const unsigned char *frame;
  const unsigned char *want;
  size_t plane;
  int ok, busy, wrong, other;
};

static void *shared_body(void *arg) {
  struct shared_run *s = (struct shared_run *)arg;
  srt_result result;
  srt_frame f = frame_of(s->frame, 320, 200, 960);
  unsigned char *map = (unsigned char *)malloc(s->plane);
  int i;
  memset(&result, 0, sizeof result);
  result.struct_size = sizeof result;
  result.class_map = map, result.class_map_size = s->plane;
  for (i = 0; i < 30; ++i) {
    srt_status st = srt_engine_run(s->engine, &f, &result);
    if (st == SRT_OK) {
      ++s->ok;
      s->wrong += memcmp(map, s->want, s->plane) != 0;
    } else if (st == SRT_ERROR_BUSY) {
      ++s->busy;
    } else {
      ++s->other;
    }
  }
  free(map);
  return NULL;
}

static void test_busy_and_async(void) {
  srt_engine *engine = NULL;
  struct srt_engine_info info;
  srt_result result, sync_result;
  unsigned char *frames[2], *wants[2], *map;
  struct shared_run runs[2];
  pthread_t threads[2];
  size_t plane;
  void *event = NULL;
  int i;
  if (srt_engine_open(path_of("seg.onnx"), NULL, &engine) != SRT_OK) {
    CHECK(0, "open seg.onnx: %s", srt_last_error());
    return;
  }
  info.struct_size = sizeof info;
  srt_engine_info(engine, &info);
  plane = (size_t)info.output_width * (size_t)info.output_height;
  map = (unsigned char *)malloc(plane);
  memset(&result, 0, sizeof result);
  result.struct_size = sizeof result;
  result.class_map_size = plane;
  for (i = 0; i < 2; ++i) {
    srt_frame f;
    frames[i] = make_frame(320, 200, 960, 11 + 40 * i);
    wants[i] = (unsigned char *)malloc(plane);
    f = frame_of(frames[i], 320, 200, 960);
    result.class_map = wants[i];
    CHECK(srt_engine_run(engine, &f, &result) == SRT_OK, "reference run: %s", srt_last_error());
  }
  CHECK(memcmp(wants[0], wants[1], plane) != 0, "the two frames must give different class maps");
  for (i = 0; i < 2; ++i) {
    memset(&runs[i], 0, sizeof runs[i]);
    runs[i].engine = engine, runs[i].frame = frames[i], runs[i].want = wants[i], runs[i].plane = plane;
    pthread_create(&threads[i], NULL, shared_body, &runs[i]);
  }
  for (i = 0; i < 2; ++i) pthread_join(threads[i], NULL);
  CHECK(runs[0].wrong + runs[1].wrong == 0, "%d results with another thread's class map", runs[0].wrong + runs[1].wrong);
  CHECK(runs[0].other + runs[1].other == 0, "statuses other than OK and BUSY");
  CHECK(runs[0].ok + runs[1].ok >= 30, "frames got through (%d, %d)", runs[0].ok, runs[1].ok);
  if (getenv("SRT_TEST_VERBOSE"))
    printf("  one engine, two threads: %d ok, %d busy\n", runs[0].ok + runs[1].ok, runs[0].busy + runs[1].busy);

  /* Asynchronous runs: busy until waited for, then the same answer as a synchronous run. */
  {
    srt_frame f = frame_of(frames[1], 320, 200, 960);
    srt_frame g = frame_of(frames[0], 320, 200, 960);
    expect_error(srt_engine_wait(engine), SRT_ERROR_INVALID_ARGUMENT, "wait without a run");
    expect_error(srt_engine_wait(NULL), SRT_ERROR_INVALID_ARGUMENT, "wait(NULL)");
    result.class_map = map;
    memset(map, 255, plane);
    CHECK(srt_engine_run_async(engine, &f, &result) == SRT_OK, "run_async: %s", srt_last_error());
    sync_result = result;
    sync_result.class_map = wants[0];
    expect_error(srt_engine_run(engine, &g, &sync_result), SRT_ERROR_BUSY, "run while an async run is pending");
    expect_error(srt_engine_run_async(engine, &g, &sync_result), SRT_ERROR_BUSY, "run_async while one is pending");
    expect_error(srt_engine_reset(engine), SRT_ERROR_BUSY, "reset while an async run is pending");
    CHECK(srt_engine_wait(engine) == SRT_OK, "wait: %s", srt_last_error());
    CHECK(memcmp(map, wants[1], plane) == 0, "the async run's class map is the synchronous one's");
    CHECK(result.total_ms > 0, "async timings");
    expect_error(srt_engine_wait(engine), SRT_ERROR_INVALID_ARGUMENT, "a second wait");
    expect_error(srt_engine_completion_event(engine, &event), SRT_ERROR_UNSUPPORTED, "no CUDA event on OpenVINO");
    expect_error(srt_engine_completion_event(engine, NULL), SRT_ERROR_INVALID_ARGUMENT, "completion_event(NULL)");
    CHECK(srt_engine_run(engine, &g, &result) == SRT_OK, "run after wait: %s", srt_last_error());
  }
  for (i = 0; i < 2; ++i) free(frames[i]), free(wants[i]);
  free(map);
  srt_engine_close(engine);
}

/* The manifest's own digest, and legacy files only on request. */
static int log_warnings = 0;
static char log_last[1024];

static void log_hook(int32_t severity, const char *message, void *user) {
  (void)user;
  if (severity == SRT_LOG_WARNING) ++log_warnings;
  snprintf(log_last, sizeof log_last, "%s", message);
}

static void test_manifest_digest(void) {
  srt_engine *engine = NULL;
  srt_open_options options;
  int user = 0;
  expect_error(srt_engine_open(path_of("bad/edited.onnx"), NULL, &engine), SRT_ERROR_MANIFEST, "manifest edited after export");
  CHECK(strstr(srt_last_error(), "manifest_sha256") != NULL, "digest message: %s", srt_last_error());
  expect_error(srt_engine_open(path_of("bad/legacy.onnx"), NULL, &engine), SRT_ERROR_MANIFEST, "manifest without a digest");
  expect_error(srt_engine_open(path_of("bad/nosha.onnx"), NULL, &engine), SRT_ERROR_MANIFEST, "artifact without sha256");
  srt_open_options_init(&options);
  options.allow_legacy = 1;
  expect_error(srt_engine_open(path_of("bad/edited.onnx"), &options, &engine), SRT_ERROR_MANIFEST,
               "an edited manifest even with allow_legacy");
  /* The core's warning goes through the log hook. */
  CHECK(srt_set_log_callback(log_hook, &user) == SRT_OK, "set_log_callback");
  log_warnings = 0;
  CHECK(srt_engine_open(path_of("bad/legacy.onnx"), &options, &engine) == SRT_OK, "legacy with allow_legacy: %s",
        srt_last_error());
  srt_engine_close(engine);
  engine = NULL;
  CHECK(log_warnings == 1 && strstr(log_last, "legacy") != NULL, "%d warnings, last '%s'", log_warnings, log_last);
  CHECK(srt_engine_open(path_of("bad/nosha.onnx"), &options, &engine) == SRT_OK, "no sha256 with allow_legacy: %s",
        srt_last_error());
  srt_engine_close(engine);
  CHECK(srt_set_log_callback(NULL, NULL) == SRT_OK, "log callback back to stderr");
  /* A caller built before allow_legacy (a smaller struct): the field is never read. */
  srt_open_options_init(&options);
  options.struct_size = (uint32_t)offsetof(srt_open_options, allow_legacy);
  options.allow_legacy = 1;
  engine = NULL;
  expect_error(srt_engine_open(path_of("bad/legacy.onnx"), &options, &engine), SRT_ERROR_MANIFEST,
               "old-header options: legacy still refused");
  CHECK(srt_engine_open(path_of("seg.onnx"), &options, &engine) == SRT_OK, "old-header options: %s", srt_last_error());
  srt_engine_close(engine);
}

/* srt_last_error is per thread, and engines on two threads run independently. */
static void *thread_body(void *arg) {
  int *ok = (int *)arg;
  srt_engine *engine = NULL;
  srt_result result;
  unsigned char *d = make_frame(300, 200, 900, 5);
  srt_frame f = frame_of(d, 300, 200, 900);
  int i;
  srt_open_options options;
  *ok = srt_last_error()[0] == '\0'; /* nothing failed on this new thread yet */
  if (srt_engine_open(path_of("seg.onnx"), opts(&options), &engine) != SRT_OK) *ok = 0;
  memset(&result, 0, sizeof result);
  result.struct_size = sizeof result;
  for (i = 0; engine && i < 5; ++i) *ok &= srt_engine_run(engine, &f, &result) == SRT_OK;
  srt_engine_close(engine);
  free(d);
  return NULL;
}

static void test_threads(void) {
  pthread_t threads[2];
  int ok[2] = {0, 0}, i;
  srt_engine *engine = NULL;
  srt_engine_open(NULL, NULL, &engine); /* leaves an error on this thread */
  for (i = 0; i < 2; ++i) pthread_create(&threads[i], NULL, thread_body, &ok[i]);
  for (i = 0; i < 2; ++i) pthread_join(threads[i], NULL);
  CHECK(ok[0] && ok[1], "engines on two threads (or a thread saw another's last error)");
  CHECK(strstr(srt_last_error(), "path") != NULL, "this thread's last error changed: %s", srt_last_error());
}

int main(int argc, char **argv) {
  int frames = argc > 2 ? atoi(argv[2]) : 40;
  if (argc < 2) {
    fprintf(stderr, "usage: %s ENGINES_DIR [FRAMES]\n", argv[0]);
    return 2;
  }
  snprintf(dir, sizeof dir, "%s", argv[1]);
  if (argc > 3 && strcmp(argv[3], "onnxruntime") == 0) {
    backend_kind = SRT_BACKEND_ONNXRUNTIME, backend_label = "onnxruntime";
  } else if (argc > 3 && strcmp(argv[3], "openvino") != 0) {
    fprintf(stderr, "unknown backend '%s' (openvino, onnxruntime)\n", argv[3]);
    return 2;
  }
  test_versions();
  test_open_errors();
  test_segmentation(frames);
  test_outlier(frames / 4 > 2 ? frames / 4 : 2);
  test_forecast(frames);
  test_threads();
  if (backend_kind == SRT_BACKEND_ONNXRUNTIME) test_onnxruntime_options();
  test_frame_bounds();
  test_row_cache();
  test_busy_and_async();
  test_manifest_digest();
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("all checks passed (%s; %s)\n", srt_version(), backend_label);
  return 0;
}
