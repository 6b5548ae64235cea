/* srt_engine_run_batch (ABI 1.1): several cameras in one call, partial batches, per-frame sizes.
 *
 *   test_batch ENGINES_DIR      (tests/make_engines.py's seg.onnx)
 *
 * Each camera's class map must be the one srt_engine_run gives its frame alone; a camera without a
 * frame (NULL) leaves its result untouched; one bad frame is refused with its index and nothing is
 * written; a batch above SRT_MAX_BATCH and a forecast bundle given two frames are refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swiftrt.h"

static int failures = 0;
#define CHECK(cond, ...)                                                  \
  do {                                                                    \
    if (!(cond)) {                                                        \
      ++failures;                                                         \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
      fprintf(stderr, __VA_ARGS__);                                       \
      fprintf(stderr, "\n");                                              \
    }                                                                     \
  } while (0)

static unsigned char *make_frame(int w, int h, size_t stride, int seed) {
  unsigned char *p = (unsigned char *)calloc(stride * (size_t)h, 1);
  int x, y;
  for (y = 0; y < h; ++y)
    for (x = 0; x < 3 * w; ++x) p[(size_t)y * stride + x] = (unsigned char)((x * (seed + 3) + y * (seed + 7)) & 255);
  return p;
}

static void frame_of(srt_frame *f, const unsigned char *data, int w, int h, size_t stride) {
  srt_frame_init(f);
  f->format = SRT_FORMAT_BGR8;
  f->width = w;
  f->height = h;
  f->stride = stride;
  f->data = data;
  f->data_size = stride * (size_t)h;
}

int main(int argc, char **argv) {
  char path[4096];
  srt_engine *engine = NULL;
  struct srt_engine_info info;
  if (argc < 2) {
    fprintf(stderr, "usage: test_batch ENGINES_DIR\n");
    return 2;
  }
  snprintf(path, sizeof path, "%s/seg.onnx", argv[1]);
  if (srt_engine_open(path, NULL, &engine) != SRT_OK) {
    fprintf(stderr, "cannot open %s: %s\n", path, srt_last_error());
    return 1;
  }
  srt_engine_info_init(&info);
  srt_engine_info(engine, &info);
  {
    const size_t plane = (size_t)info.output_width * info.output_height;
    /* three cameras of different sizes and strides; camera 1 has no new frame */
    const int w[3] = {320, 77, 640}, h[3] = {240, 51, 360};
    const size_t stride[3] = {320 * 3, 77 * 3 + 5, 640 * 3 + 64};
    unsigned char *data[3], *alone[3], *maps[3];
    srt_frame frames[3];
    srt_result results[3];
    const srt_frame *batch[3];
    srt_result *outs[3];
    int i;
    for (i = 0; i < 3; ++i) {
      srt_result one;
      data[i] = make_frame(w[i], h[i], stride[i], i);
      alone[i] = (unsigned char *)malloc(plane);
      maps[i] = (unsigned char *)malloc(plane);
      memset(maps[i], 0xAB, plane);
      frame_of(&frames[i], data[i], w[i], h[i], stride[i]);
      srt_result_init(&one);
      one.class_map = alone[i];
      one.class_map_size = plane;
      CHECK(srt_engine_run(engine, &frames[i], &one) == SRT_OK, "alone %d: %s", i, srt_last_error());
      srt_result_init(&results[i]);
      results[i].class_map = maps[i];
      results[i].class_map_size = plane;
      outs[i] = &results[i];
    }
    batch[0] = &frames[0];
    batch[1] = NULL;
    batch[2] = &frames[2];
    CHECK(srt_engine_run_batch(engine, batch, 3, outs) == SRT_OK, "batch: %s", srt_last_error());
    CHECK(memcmp(maps[0], alone[0], plane) == 0, "camera 0's map differs from its frame alone");
    CHECK(memcmp(maps[2], alone[2], plane) == 0, "camera 2's map differs from its frame alone");
    CHECK(maps[1][0] == 0xAB && maps[1][plane - 1] == 0xAB, "camera 1 had no frame but its map was written");
    /* all three: the same answers */
    batch[1] = &frames[1];
    CHECK(srt_engine_run_batch(engine, batch, 3, outs) == SRT_OK, "full batch: %s", srt_last_error());
    CHECK(memcmp(maps[1], alone[1], plane) == 0, "camera 1's map differs from its frame alone");
    /* a bad frame (stride shorter than a row): refused with its index, nothing written */
    memset(maps[0], 0xCD, plane);
    frames[2].stride = 10;
    {
      srt_status st = srt_engine_run_batch(engine, batch, 3, outs);
      CHECK(st == SRT_ERROR_INVALID_ARGUMENT, "bad frame: %s", srt_status_string(st));
      CHECK(strncmp(srt_last_error(), "frame 2: ", 9) == 0, "message: %s", srt_last_error());
      CHECK(maps[0][0] == 0xCD, "a frame ran although frame 2 was refused");
    }
    frames[2].stride = stride[2];
    /* a result buffer too small in the last slot: refused before camera 0 runs */
    results[2].class_map_size = plane - 1;
    {
      srt_status st = srt_engine_run_batch(engine, batch, 3, outs);
      CHECK(st == SRT_ERROR_BUFFER_TOO_SMALL, "short buffer: %s", srt_status_string(st));
      CHECK(strncmp(srt_last_error(), "frame 2: ", 9) == 0, "message: %s", srt_last_error());
      CHECK(maps[0][0] == 0xCD, "a frame ran although result 2 was refused");
    }
    results[2].class_map_size = plane;
    CHECK(srt_engine_run_batch(engine, batch, SRT_MAX_BATCH + 1, outs) == SRT_ERROR_INVALID_ARGUMENT,
          "count above SRT_MAX_BATCH accepted");
    CHECK(srt_engine_run_batch(engine, NULL, 1, outs) == SRT_ERROR_INVALID_ARGUMENT, "NULL frames accepted");
    CHECK(srt_engine_run_batch(engine, batch, 0, outs) == SRT_OK, "an empty batch: %s", srt_last_error());
    for (i = 0; i < 3; ++i) {
      free(data[i]);
      free(alone[i]);
      free(maps[i]);
    }
  }
  srt_engine_close(engine);
  if (failures) fprintf(stderr, "%d failure(s)\n", failures);
  else printf("test_batch: ok\n");
  return failures ? 1 : 0;
}
