/* srt_preprocess and srt_fit_geometry (ABI 1.2): preprocessing without an engine, against values
 * computed by hand, and their checks: struct sizes, buffer sizes, enums, NULL outputs, and that a
 * failing call writes nothing and no call writes past a buffer.
 *
 *   test_preprocess_api        (no engines needed)
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "swiftrt.h"

static int failures = 0;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      ++failures;                                                     \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                   \
      fprintf(stderr, "\n");                                          \
    }                                                                 \
  } while (0)

static void expect_status(srt_status got, srt_status want, const char *what) {
  CHECK(got == want, "%s: %s, expected %s (%s)", what, srt_status_string(got), srt_status_string(want),
        srt_last_error());
}

/* 2x2 BGR frame; (x / 255 - 0.5) / 0.25 is exact for these values: 0 -2, 51 -1.2, 102 -0.4, 153 0.4,
   204 1.2, 255 2. */
static const uint8_t kFrame[12] = {0, 51, 255, 255, 0, 51, 51, 255, 0, 102, 153, 204};

static srt_frame frame_of(const uint8_t *data, int width, int height, size_t stride) {
  srt_frame f;
  srt_frame_init(&f);
  f.format = SRT_FORMAT_BGR8;
  f.width = width, f.height = height, f.stride = stride;
  f.data = data;
  f.data_size = stride * (size_t)(height - 1) + 3u * (size_t)width;
  return f;
}

static srt_input_spec spec_of(int height, int width, int layout, int dtype, int order, int resize) {
  srt_input_spec s;
  srt_input_spec_init(&s);
  s.height = height, s.width = width, s.layout = layout, s.dtype = dtype, s.color_order = order, s.resize = resize;
  return s;
}

static void test_defaults(void) {
  srt_input_spec s;
  srt_fit fit;
  memset(&s, 0xEE, sizeof s);
  expect_status(srt_input_spec_init(&s), SRT_OK, "srt_input_spec_init");
  CHECK(s.struct_size == sizeof s && s.scale == 1.f && s.std[0] == 1.f && s.std[2] == 1.f && s.mean[1] == 0.f &&
            s.normalize == 0 && s.resize == SRT_RESIZE_MANIFEST && s.reserved0 == 0,
        "srt_input_spec defaults");
  expect_status(srt_fit_init(&fit), SRT_OK, "srt_fit_init");
  CHECK(fit.struct_size == sizeof fit && fit.scale_x == 0 && fit.pad_x == 0, "srt_fit zeroed");
  expect_status(srt_fit_init_sized(&fit, 8), SRT_ERROR_STRUCT_SIZE, "srt_fit_init_sized below 1.2's struct");
}

static void test_normalized_nchw_rgb(void) {
  srt_input_spec s = spec_of(2, 2, SRT_LAYOUT_NCHW, SRT_DTYPE_FLOAT32, SRT_FORMAT_RGB8, SRT_RESIZE_STRETCH);
  srt_frame f = frame_of(kFrame, 2, 2, 6);
  float tensor[13];
  uint8_t fitted[13];
  srt_fit fit;
  /* R plane, G plane, B plane, row-major */
  const float want[12] = {2.f, -1.2f, -2.f, 1.2f, -1.2f, -2.f, 2.f, 0.4f, -2.f, 2.f, -1.2f, -0.4f};
  int i, c;
  s.normalize = 1;
  s.scale = 1.f / 255.f;
  for (c = 0; c < 3; ++c) s.mean[c] = 0.5f, s.std[c] = 0.25f;
  tensor[12] = 42.f, fitted[12] = 42;
  srt_fit_init(&fit);
  expect_status(srt_preprocess(&s, &f, tensor, 12 * sizeof(float), fitted, 12, &fit), SRT_OK, "normalized NCHW");
  for (i = 0; i < 12; ++i) CHECK(fabsf(tensor[i] - want[i]) < 1e-6f, "element %d: %f, want %f", i, tensor[i], want[i]);
  CHECK(memcmp(fitted, kFrame, 12) == 0, "the input's size: the frame is used as it is");
  CHECK(tensor[12] == 42.f && fitted[12] == 42, "nothing written past the buffers");
  CHECK(fit.resize == SRT_RESIZE_STRETCH && fit.scale_x == 1.0 && fit.resized_width == 2 && fit.src_height == 2,
        "identity fit");
}

static void test_uint8_nhwc_rgb_and_null_outputs(void) {
  srt_input_spec s = spec_of(2, 2, SRT_LAYOUT_NHWC, SRT_DTYPE_UINT8, SRT_FORMAT_RGB8, SRT_RESIZE_MANIFEST);
  srt_frame f = frame_of(kFrame, 2, 2, 6);
  uint8_t tensor[12];
  int p;
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, NULL, 0, NULL), SRT_OK, "uint8 NHWC, no fitted/fit");
  for (p = 0; p < 4; ++p)
    CHECK(tensor[3 * p] == kFrame[3 * p + 2] && tensor[3 * p + 1] == kFrame[3 * p + 1] &&
              tensor[3 * p + 2] == kFrame[3 * p],
          "pixel %d in RGB order", p);
  expect_status(srt_preprocess(&s, &f, NULL, 0, NULL, 0, NULL), SRT_OK, "nothing wanted: checks only");
}

static void test_half_size_box_average(void) {
  /* OpenCV's INTER_LINEAR at exactly half size: (a + b + c + d + 2) >> 2 per 2x2 block. One channel
     shown; the three channels carry the same plane. Row pitch 13 (one byte of padding). */
  const uint8_t plane[4][4] = {{0, 0, 10, 11}, {4, 4, 12, 13}, {200, 200, 255, 254}, {200, 200, 253, 0}};
  uint8_t frame[4 * 13];
  uint8_t fitted[12];
  srt_input_spec s = spec_of(2, 2, SRT_LAYOUT_NHWC, SRT_DTYPE_UINT8, SRT_FORMAT_BGR8, SRT_RESIZE_STRETCH);
  srt_frame f = frame_of(frame, 4, 4, 13);
  srt_fit fit;
  const uint8_t want[4] = {2, 12, 200, 191};
  int x, y, c;
  memset(frame, 99, sizeof frame);
  for (y = 0; y < 4; ++y)
    for (x = 0; x < 4; ++x)
      for (c = 0; c < 3; ++c) frame[y * 13 + 3 * x + c] = plane[y][x];
  srt_fit_init(&fit);
  expect_status(srt_preprocess(&s, &f, NULL, 0, fitted, sizeof fitted, &fit), SRT_OK, "half size");
  for (x = 0; x < 4; ++x) CHECK(fitted[3 * x] == want[x], "block %d: %d, want %d", x, fitted[3 * x], want[x]);
  CHECK(fit.scale_x == 0.5 && fit.scale_y == 0.5 && fit.resized_height == 2, "half-size fit");
}

static void test_geometry(void) {
  srt_fit fit;
  srt_fit_init(&fit);
  /* 480x640 into 128x256 letterbox: scale 4/15, 171x128, pad (256 - 171) / 2 = 42 */
  expect_status(srt_fit_geometry(480, 640, 128, 256, SRT_RESIZE_LETTERBOX, &fit), SRT_OK, "letterbox");
  CHECK(fit.resize == SRT_RESIZE_LETTERBOX && fit.resized_width == 171 && fit.resized_height == 128 && fit.pad_x == 42 &&
            fit.pad_y == 0 && fit.crop_x == 0 && fabs(fit.scale_x - 4.0 / 15.0) < 1e-12 && fit.width == 256,
        "letterbox 480x640 -> 128x256: %dx%d pad %d", fit.resized_width, fit.resized_height, fit.pad_x);
  /* 480x640 into 128x128 crop: scale 4/15, 171x128, cut (171 - 128) / 2 = 21 columns */
  expect_status(srt_fit_geometry(480, 640, 128, 128, SRT_RESIZE_CROP, &fit), SRT_OK, "crop");
  CHECK(fit.resized_width == 171 && fit.crop_x == 21 && fit.crop_y == 0 && fit.pad_x == 0, "crop 480x640 -> 128x128");
  expect_status(srt_fit_geometry(480, 640, 128, 256, SRT_RESIZE_MANIFEST, &fit), SRT_OK, "stretch (default)");
  CHECK(fit.resize == SRT_RESIZE_STRETCH && fit.scale_x == 0.4 && fit.scale_y == 128.0 / 480.0 && fit.crop_x == 0,
        "stretch 480x640 -> 128x256");
  expect_status(srt_fit_geometry(0, 640, 128, 256, SRT_RESIZE_CROP, &fit), SRT_ERROR_INVALID_ARGUMENT, "0 rows");
  CHECK(strstr(srt_last_error(), "src_height") != NULL, "names the argument: %s", srt_last_error());
  expect_status(srt_fit_geometry(4, 4, 2, 2, 9, &fit), SRT_ERROR_INVALID_ARGUMENT, "resize 9");
  expect_status(srt_fit_geometry(4, 4, 2, 2, SRT_RESIZE_CROP, NULL), SRT_ERROR_INVALID_ARGUMENT, "NULL fit");
}

static void test_refusals_write_nothing(void) {
  srt_input_spec s = spec_of(2, 2, SRT_LAYOUT_NHWC, SRT_DTYPE_FLOAT32, SRT_FORMAT_BGR8, SRT_RESIZE_LETTERBOX);
  srt_frame f = frame_of(kFrame, 2, 2, 6);
  float tensor[12];
  uint8_t fitted[12];
  srt_fit fit;
  struct {
    srt_input_spec s;
    unsigned char tail[16];
  } big;
  unsigned i;
  memset(tensor, 0x5A, sizeof tensor);
  memset(fitted, 0x5A, sizeof fitted);
  srt_fit_init(&fit);
  fit.pad_x = 77;
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor - 1, fitted, sizeof fitted, &fit),
                SRT_ERROR_BUFFER_TOO_SMALL, "tensor one byte short");
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, fitted, 11, &fit), SRT_ERROR_BUFFER_TOO_SMALL,
                "fitted one byte short");
  s.dtype = SRT_DTYPE_UINT8;
  s.normalize = 1;
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, fitted, sizeof fitted, &fit), SRT_ERROR_UNSUPPORTED,
                "host normalization into uint8");
  s.dtype = SRT_DTYPE_FLOAT32;
  s.std[1] = 0.f;
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, fitted, sizeof fitted, &fit),
                SRT_ERROR_INVALID_ARGUMENT, "std 0");
  s = spec_of(2, 2, 3, SRT_DTYPE_FLOAT32, SRT_FORMAT_BGR8, SRT_RESIZE_STRETCH);
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, NULL, 0, NULL), SRT_ERROR_INVALID_ARGUMENT, "layout 3");
  s = spec_of(2, 2, SRT_LAYOUT_NHWC, 7, SRT_FORMAT_BGR8, SRT_RESIZE_STRETCH);
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, NULL, 0, NULL), SRT_ERROR_UNSUPPORTED, "dtype 7");
  s = spec_of(2, 2, SRT_LAYOUT_NHWC, SRT_DTYPE_FLOAT32, 0, SRT_RESIZE_STRETCH);
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, NULL, 0, NULL), SRT_ERROR_INVALID_ARGUMENT, "colour 0");
  s = spec_of(0, 2, SRT_LAYOUT_NHWC, SRT_DTYPE_FLOAT32, SRT_FORMAT_BGR8, SRT_RESIZE_STRETCH);
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, NULL, 0, NULL), SRT_ERROR_INVALID_ARGUMENT, "height 0");
  s = spec_of(2, 2, SRT_LAYOUT_NHWC, SRT_DTYPE_FLOAT32, SRT_FORMAT_BGR8, 5);
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, NULL, 0, NULL), SRT_ERROR_INVALID_ARGUMENT, "resize 5");
  s = spec_of(2, 2, SRT_LAYOUT_NHWC, SRT_DTYPE_FLOAT32, SRT_FORMAT_BGR8, SRT_RESIZE_STRETCH);
  f.data_size = 11;  /* a frame that claims fewer bytes than its extent */
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, fitted, sizeof fitted, &fit), SRT_ERROR_INVALID_ARGUMENT,
                "short frame");
  f = frame_of(kFrame, 2, 2, 6);
  expect_status(srt_preprocess(NULL, &f, tensor, sizeof tensor, NULL, 0, NULL), SRT_ERROR_INVALID_ARGUMENT, "NULL spec");
  expect_status(srt_preprocess(&s, NULL, tensor, sizeof tensor, NULL, 0, NULL), SRT_ERROR_INVALID_ARGUMENT, "NULL frame");
  s.struct_size = 12;
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, NULL, 0, NULL), SRT_ERROR_STRUCT_SIZE, "spec too small");
  s.struct_size = sizeof s;
  fit.struct_size = 4;
  expect_status(srt_preprocess(&s, &f, tensor, sizeof tensor, NULL, 0, &fit), SRT_ERROR_STRUCT_SIZE, "fit too small");
  for (i = 0; i < sizeof tensor; ++i) CHECK(((unsigned char *)tensor)[i] == 0x5A, "tensor byte %u written", i);
  for (i = 0; i < sizeof fitted; ++i) CHECK(fitted[i] == 0x5A, "fitted byte %u written", i);
  CHECK(fit.pad_x == 77, "fit written by a failing call");
  /* A newer header's larger srt_input_spec: zero tail accepted, a set field refused. */
  memset(&big, 0, sizeof big);
  srt_input_spec_init_sized(&big.s, (uint32_t)sizeof big);
  big.s.height = big.s.width = 2, big.s.layout = SRT_LAYOUT_NHWC, big.s.dtype = SRT_DTYPE_UINT8;
  big.s.color_order = SRT_FORMAT_BGR8;
  expect_status(srt_preprocess(&big.s, &f, fitted, sizeof fitted, NULL, 0, NULL), SRT_OK, "larger spec, zero tail");
  big.tail[3] = 1;
  expect_status(srt_preprocess(&big.s, &f, fitted, sizeof fitted, NULL, 0, NULL), SRT_ERROR_STRUCT_SIZE,
                "larger spec, a field set");
}

int main(void) {
  test_defaults();
  test_normalized_nchw_rgb();
  test_uint8_nhwc_rgb_and_null_outputs();
  test_half_size_box_average();
  test_geometry();
  test_refusals_write_nothing();
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("srt_preprocess / srt_fit_geometry: all checks passed\n");
  return 0;
}
