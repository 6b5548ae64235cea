/* A program built against swiftrt.h as libswiftrt 0.1.0 shipped it (tests/abi/v0.1.0/swiftrt.h,
 * never edited), run against this library: what an integrator's binary that is not rebuilt relies on.
 *
 *   consumer_0.1.0 ENGINES_DIR      (seg.onnx from tests/make_engines.py)
 *
 * Its structs are as 0.1.0 compiled them, each followed by canary bytes: the library must read them,
 * fill them, and never write past their struct_size (its own structs may have grown since). It uses
 * the calls as 0.1.0 documented them: srt_open_options_init, `x.struct_size = sizeof x`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swiftrt.h"

#ifdef SRT_VERSION_MAJOR
#error "built against the current swiftrt.h, not tests/abi/v0.1.0/swiftrt.h"
#endif

#define CANARY 64

static int failures = 0;

#define CHECK(cond, ...)                                                \
  do {                                                                  \
    if (!(cond)) {                                                      \
      ++failures;                                                       \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
      fprintf(stderr, __VA_ARGS__);                                     \
      fprintf(stderr, "\n");                                            \
    }                                                                   \
  } while (0)

typedef struct { srt_open_options s; unsigned char canary[CANARY]; } guarded_options;
typedef struct { srt_frame s; unsigned char canary[CANARY]; } guarded_frame;
typedef struct { srt_result s; unsigned char canary[CANARY]; } guarded_result;
typedef struct { struct srt_engine_info s; unsigned char canary[CANARY]; } guarded_info;
typedef struct { srt_class_info s; unsigned char canary[CANARY]; } guarded_class;

static int canary_intact(const unsigned char *c) {
  int i;
  for (i = 0; i < CANARY; ++i)
    if (c[i] != 0xc5) return 0;
  return 1;
}

static void expect_status(srt_status got, srt_status want, const char *what) {
  CHECK(got == want, "%s: %s, expected %s (%s)", what, srt_status_string(got), srt_status_string(want), srt_last_error());
}

int main(int argc, char **argv) {
  char path[4096];
  guarded_options options;
  guarded_info info;
  guarded_class cls;
  guarded_frame frame;
  guarded_result result;
  srt_engine *engine = NULL;
  unsigned char *pixels, *map;
  size_t plane, i, bad_ids = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s ENGINES_DIR\n", argv[0]);
    return 2;
  }
  snprintf(path, sizeof path, "%s/seg.onnx", argv[1]);
  CHECK(srt_abi_version() == SRT_ABI_VERSION, "ABI %u, this program speaks %u", srt_abi_version(), SRT_ABI_VERSION);

  /* 0.1.0's srt_open_options_init (a library function then): fills exactly 0.1.0's struct. */
  memset(&options, 0xc5, sizeof options);
  expect_status(srt_open_options_init(&options.s), SRT_OK, "srt_open_options_init");
  CHECK(options.s.struct_size == sizeof options.s && options.s.outlier_threshold == 0.5f && options.s.threads == 0,
        "options: struct_size %u (this program's is %u), threshold %f", options.s.struct_size,
        (unsigned)sizeof options.s, options.s.outlier_threshold);
  CHECK(canary_intact(options.canary), "srt_open_options_init wrote past this program's struct");
  options.s.threads = 1;
  expect_status(srt_engine_open(path, &options.s, &engine), SRT_OK, "open");
  if (!engine) return 1;

  memset(&info, 0xc5, sizeof info);
  info.s.struct_size = sizeof info.s;
  expect_status(srt_engine_info(engine, &info.s), SRT_OK, "info");
  CHECK(canary_intact(info.canary), "srt_engine_info wrote past this program's struct");
  CHECK(info.s.struct_size == sizeof info.s && info.s.task == SRT_TASK_SEGMENTATION && info.s.num_classes == 19 &&
            info.s.output_width > 0 && info.s.output_height > 0 &&
            /* AUTO: ONNX Runtime where built in (1.0), else OpenVINO (0.1.0's only CPU backend) */
            (strncmp(info.s.backend_name, "onnxruntime", 11) == 0 || strncmp(info.s.backend_name, "openvino", 8) == 0),
        "info: task %d, %d classes, %dx%d, '%s'", info.s.task, info.s.num_classes, info.s.output_width,
        info.s.output_height, info.s.backend_name);

  memset(&cls, 0xc5, sizeof cls);
  cls.s.struct_size = sizeof cls.s;
  expect_status(srt_engine_class(engine, 13, &cls.s), SRT_OK, "class 13");
  CHECK(strcmp(cls.s.name, "car") == 0 && cls.s.id == 13 && cls.s.color[2] == 142, "class 13: '%s'", cls.s.name);
  CHECK(canary_intact(cls.canary), "srt_engine_class wrote past this program's struct");

  plane = (size_t)info.s.output_width * (size_t)info.s.output_height;
  map = (unsigned char *)malloc(plane);
  pixels = (unsigned char *)malloc(400 * 300 * 3);
  for (i = 0; i < 400 * 300 * 3; ++i) pixels[i] = (unsigned char)(i * 13 + i / 1200);
  memset(&frame, 0xc5, sizeof frame);
  memset(&frame.s, 0, sizeof frame.s);
  frame.s.struct_size = sizeof frame.s;
  frame.s.format = SRT_FORMAT_RGB8, frame.s.width = 400, frame.s.height = 300, frame.s.stride = 400 * 3;
  frame.s.data = pixels;
  memset(&result, 0xc5, sizeof result);
  memset(&result.s, 0, sizeof result.s);
  result.s.struct_size = sizeof result.s;
  result.s.class_map = map, result.s.class_map_size = plane;
  memset(map, 255, plane);
  expect_status(srt_engine_run(engine, &frame.s, &result.s), SRT_OK, "run");
  for (i = 0; i < plane; ++i) bad_ids += map[i] >= 19;
  CHECK(bad_ids == 0, "%lu pixels with a class id outside the manifest's", (unsigned long)bad_ids);
  CHECK(result.s.total_ms > 0 && result.s.inference_ms > 0 && result.s.outlier_pixels == -1 &&
            result.s.struct_size == sizeof result.s, "result fields: total %f ms, outlier_pixels %lld, struct_size %u",
        result.s.total_ms, (long long)result.s.outlier_pixels, result.s.struct_size);
  CHECK(canary_intact(result.canary), "srt_engine_run wrote past this program's srt_result");
  CHECK(canary_intact(frame.canary), "srt_engine_run wrote past this program's srt_frame");

  /* Bad structs as 0.1.0 documented them: still refused. */
  frame.s.struct_size = 0;
  expect_status(srt_engine_run(engine, &frame.s, &result.s), SRT_ERROR_STRUCT_SIZE, "frame struct_size 0");
  frame.s.struct_size = sizeof frame.s;
  result.s.struct_size = 8;
  expect_status(srt_engine_run(engine, &frame.s, &result.s), SRT_ERROR_STRUCT_SIZE, "result struct_size 8");
  result.s.struct_size = sizeof result.s;
  info.s.struct_size = 0;
  expect_status(srt_engine_info(engine, &info.s), SRT_ERROR_STRUCT_SIZE, "info struct_size 0");
  cls.s.struct_size = 4;
  expect_status(srt_engine_class(engine, 0, &cls.s), SRT_ERROR_STRUCT_SIZE, "class struct_size 4");
  options.s.struct_size = 8;
  srt_engine_close(engine);
  engine = NULL;
  expect_status(srt_engine_open(path, &options.s, &engine), SRT_ERROR_STRUCT_SIZE, "options struct_size 8");
  CHECK(engine == NULL, "engine set on failure");
  free(map);
  free(pixels);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("a 0.1.0 program on %s: all checks passed\n", srt_version());
  return 0;
}
