/* How every struct of the ABI evolves (built against today's swiftrt.h): srt_X_init, and what the
 * library does with a struct_size that is not its own.
 *
 *   test_struct_evolution ENGINES_DIR      (seg.onnx and ood.onnx from tests/make_engines.py)
 *
 * A newer caller's struct is larger: accepted while the bytes this library does not know are zero
 * (what the newer srt_X_init leaves there), refused with SRT_ERROR_STRUCT_SIZE once one is set (a
 * field the library would silently ignore); the library never writes into those bytes. An older
 * caller's smaller struct is tests/abi/consumer_0.1.0.c's job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swiftrt.h"

#define TAIL 24

static int failures = 0;
static char dir[4096];

#define CHECK(cond, ...)                                                \
  do {                                                                  \
    if (!(cond)) {                                                      \
      ++failures;                                                       \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
      fprintf(stderr, __VA_ARGS__);                                     \
      fprintf(stderr, "\n");                                            \
    }                                                                   \
  } while (0)

static const char *path_of(const char *name) {
  static char buf[8192];
  snprintf(buf, sizeof buf, "%s/%s", dir, name);
  return buf;
}

static void expect_status(srt_status got, srt_status want, const char *what) {
  CHECK(got == want, "%s: %s, expected %s (%s)", what, srt_status_string(got), srt_status_string(want), srt_last_error());
}

static int all_zero(const unsigned char *p, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i)
    if (p[i]) return 0;
  return 1;
}

/* Each struct followed by TAIL bytes: a newer header's fields this library does not know. */
typedef struct { srt_open_options s; unsigned char tail[TAIL]; } big_options;
typedef struct { srt_frame s; unsigned char tail[TAIL]; } big_frame;
typedef struct { srt_result s; unsigned char tail[TAIL]; } big_result;
typedef struct { struct srt_engine_info s; unsigned char tail[TAIL]; } big_info;
typedef struct { srt_class_info s; unsigned char tail[TAIL]; } big_class;

static void test_init(void) {
  srt_open_options options;
  srt_frame frame;
  srt_result result;
  struct srt_engine_info info;
  srt_class_info cls;
  big_frame big;
  memset(&options, 0xab, sizeof options);
  memset(&frame, 0xab, sizeof frame);
  memset(&result, 0xab, sizeof result);
  memset(&info, 0xab, sizeof info);
  memset(&cls, 0xab, sizeof cls);
  CHECK(srt_open_options_init(&options) == SRT_OK && options.struct_size == sizeof options &&
            options.outlier_threshold == 0.5f && options.backend == SRT_BACKEND_AUTO && options.threads == 0,
        "srt_open_options_init: size %u threshold %f", options.struct_size, options.outlier_threshold);
  CHECK(srt_frame_init(&frame) == SRT_OK && frame.struct_size == sizeof frame &&
            all_zero((const unsigned char *)&frame + 4, sizeof frame - 4), "srt_frame_init");
  CHECK(srt_result_init(&result) == SRT_OK && result.struct_size == sizeof result &&
            all_zero((const unsigned char *)&result + 4, sizeof result - 4), "srt_result_init");
  CHECK(srt_engine_info_init(&info) == SRT_OK && info.struct_size == sizeof info &&
            all_zero((const unsigned char *)&info + 4, sizeof info - 4), "srt_engine_info_init");
  CHECK(srt_class_info_init(&cls) == SRT_OK && cls.struct_size == sizeof cls &&
            all_zero((const unsigned char *)&cls + 4, sizeof cls - 4), "srt_class_info_init");
  expect_status(srt_frame_init(NULL), SRT_ERROR_INVALID_ARGUMENT, "srt_frame_init(NULL)");
  expect_status(srt_frame_init_sized(&frame, 4), SRT_ERROR_STRUCT_SIZE, "srt_frame_init_sized(4)");
  /* A newer header's init through this library: the whole (larger) struct zeroed, nothing beyond. */
  memset(&big, 0xab, sizeof big);
  CHECK(srt_frame_init_sized(&big.s, (uint32_t)(sizeof big.s + 16)) == SRT_OK && big.s.struct_size == sizeof big.s + 16 &&
            all_zero((const unsigned char *)&big + 4, sizeof big.s + 12) && big.tail[16] == 0xab && big.tail[TAIL - 1] == 0xab,
        "srt_frame_init_sized(sizeof + 16) on a larger struct");
}

static void test_open(void) {
  big_options big;
  srt_engine *engine = NULL;
  struct srt_engine_info info;
  memset(&big, 0, sizeof big);
  srt_open_options_init(&big.s);
  big.s.struct_size = 8;
  expect_status(srt_engine_open(path_of("ood.onnx"), &big.s, &engine), SRT_ERROR_STRUCT_SIZE, "options struct_size 8");
  big.s.struct_size = (1u << 16) + 8;
  expect_status(srt_engine_open(path_of("ood.onnx"), &big.s, &engine), SRT_ERROR_STRUCT_SIZE, "options struct_size 65544");
  /* A newer caller that set a field this library does not know: refused, never ignored. */
  big.s.struct_size = sizeof big;
  big.s.use_outlier_threshold = 1;
  big.s.outlier_threshold = 0.25f;
  big.tail[5] = 1;
  expect_status(srt_engine_open(path_of("ood.onnx"), &big.s, &engine), SRT_ERROR_STRUCT_SIZE, "options with a set unknown field");
  CHECK(strstr(srt_last_error(), "not 0") != NULL, "message: %s", srt_last_error());
  CHECK(engine == NULL, "engine set on failure");
  /* The same with the unknown tail zero: opens, and the known fields are read. */
  big.tail[5] = 0;
  expect_status(srt_engine_open(path_of("ood.onnx"), &big.s, &engine), SRT_OK, "options larger, zero tail");
  if (!engine) return;
  srt_engine_info_init(&info);
  CHECK(srt_engine_info(engine, &info) == SRT_OK && info.outlier_threshold == 0.25f, "threshold %f (options say 0.25)",
        info.outlier_threshold);
  srt_engine_close(engine);
}

static unsigned char *make_frame(int w, int h) {
  unsigned char *p = (unsigned char *)malloc((size_t)w * (size_t)h * 3);
  int i;
  for (i = 0; i < w * h * 3; ++i) p[i] = (unsigned char)((i * 7) ^ (i / 311));
  return p;
}

static void test_engine(void) {
  srt_engine *engine = NULL;
  struct srt_engine_info info;
  big_info binfo;
  big_class bcls;
  big_frame bframe;
  big_result bresult;
  srt_frame frame;
  srt_result result;
  unsigned char *data = make_frame(320, 200), *map, *map2;
  size_t plane;
  if (srt_engine_open(path_of("seg.onnx"), NULL, &engine) != SRT_OK) {
    CHECK(0, "open seg.onnx: %s", srt_last_error());
    free(data);
    return;
  }
  srt_engine_info_init(&info);
  CHECK(srt_engine_info(engine, &info) == SRT_OK, "info: %s", srt_last_error());

  /* info and class: a larger struct is filled as far as this library knows; its tail stays zero. */
  memset(&binfo, 0, sizeof binfo);
  binfo.s.struct_size = sizeof binfo;
  expect_status(srt_engine_info(engine, &binfo.s), SRT_OK, "info larger, zero tail");
  CHECK(memcmp((const unsigned char *)&binfo.s + 4, (const unsigned char *)&info + 4, sizeof info - 4) == 0 &&
            binfo.s.struct_size == sizeof binfo && all_zero(binfo.tail, TAIL),
        "larger info: not the same fields, struct_size changed or tail written");
  binfo.tail[0] = 9;
  expect_status(srt_engine_info(engine, &binfo.s), SRT_ERROR_STRUCT_SIZE, "info with a set unknown field");
  memset(&bcls, 0, sizeof bcls);
  bcls.s.struct_size = sizeof bcls;
  CHECK(srt_engine_class(engine, 13, &bcls.s) == SRT_OK && strcmp(bcls.s.name, "car") == 0 && bcls.s.struct_size == sizeof bcls &&
            all_zero(bcls.tail, TAIL), "larger class info: '%s'", bcls.s.name);
  bcls.tail[TAIL - 1] = 1;
  expect_status(srt_engine_class(engine, 13, &bcls.s), SRT_ERROR_STRUCT_SIZE, "class info with a set unknown field");

  /* run: the same class map through exact and larger structs; a set unknown field is refused. */
  plane = (size_t)info.output_width * (size_t)info.output_height;
  map = (unsigned char *)malloc(plane);
  map2 = (unsigned char *)malloc(plane);
  srt_frame_init(&frame);
  frame.format = SRT_FORMAT_BGR8, frame.width = 320, frame.height = 200, frame.stride = 320 * 3, frame.data = data;
  frame.data_size = (size_t)320 * 3 * 200;
  srt_result_init(&result);
  result.class_map = map, result.class_map_size = plane;
  CHECK(srt_engine_run(engine, &frame, &result) == SRT_OK, "run: %s", srt_last_error());
  memset(&bframe, 0, sizeof bframe);
  memset(&bresult, 0, sizeof bresult);
  bframe.s = frame;
  bframe.s.struct_size = sizeof bframe;
  bresult.s = result;
  bresult.s.struct_size = sizeof bresult;
  bresult.s.class_map = map2;
  bresult.s.total_ms = -1;
  expect_status(srt_engine_run(engine, &bframe.s, &bresult.s), SRT_OK, "run with larger frame and result, zero tails");
  CHECK(memcmp(map, map2, plane) == 0, "class map differs with larger structs");
  CHECK(bresult.s.total_ms > 0 && bresult.s.struct_size == sizeof bresult && all_zero(bresult.tail, TAIL),
        "larger result: total_ms %f, struct_size %u, tail written", bresult.s.total_ms, bresult.s.struct_size);
  bframe.tail[1] = 1;
  expect_status(srt_engine_run(engine, &bframe.s, &bresult.s), SRT_ERROR_STRUCT_SIZE, "frame with a set unknown field");
  bframe.tail[1] = 0;
  bresult.tail[2] = 1;
  expect_status(srt_engine_run(engine, &bframe.s, &bresult.s), SRT_ERROR_STRUCT_SIZE, "result with a set unknown field");
  frame.struct_size = 16;
  expect_status(srt_engine_run(engine, &frame, &result), SRT_ERROR_STRUCT_SIZE, "frame struct_size 16");
  free(map);
  free(map2);
  free(data);
  srt_engine_close(engine);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s ENGINES_DIR\n", argv[0]);
    return 2;
  }
  snprintf(dir, sizeof dir, "%s", argv[1]);
  test_init();
  test_open();
  test_engine();
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("struct evolution: all checks passed (%s)\n", srt_version());
  return 0;
}
