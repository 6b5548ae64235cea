/* hello_swiftrt: open a segmentation engine, run one frame, print what it saw. */
#include <stdio.h>
#include <stdlib.h>
#include <swiftrt.h>

int main(int argc, char **argv) {
  srt_engine *engine = NULL;
  srt_open_options options;
  struct srt_engine_info info;
  srt_class_info cls;
  srt_frame frame;
  srt_result result;
  int w = 640, h = 360, x, y, i, count[256] = {0}, best = 0;
  unsigned char *pixels, *class_map;
  const char *name = "?";
  size_t plane, p;
  if (argc != 2) {
    fprintf(stderr, "usage: hello_swiftrt ENGINE.onnx\n");
    return 2;
  }
  srt_open_options_init(&options); /* every struct: srt_X_init (struct_size and defaults) */
  options.threads = 2;
  if (srt_engine_open(argv[1], &options, &engine) != SRT_OK) {
    fprintf(stderr, "hello_swiftrt: %s\n", srt_last_error()); /* one line */
    return 2;
  }
  srt_engine_info_init(&info);
  srt_engine_info(engine, &info); /* sizes, classes, task, outlier, forecast horizon */
  plane = (size_t)info.output_width * (size_t)info.output_height;
  class_map = malloc(plane);
  pixels = malloc((size_t)w * (size_t)h * 3);
  for (y = 0; y < h; ++y) /* a BGR frame: sky blue above, asphalt grey below */
    for (x = 0; x < w; ++x) {
      unsigned char *px = pixels + ((size_t)y * (size_t)w + (size_t)x) * 3;
      px[0] = y < h / 2 ? 230 : 90, px[1] = y < h / 2 ? 180 : 90, px[2] = y < h / 2 ? 120 : 90;
    }

  srt_frame_init(&frame);
  frame.format = SRT_FORMAT_BGR8; /* or SRT_FORMAT_RGB8 */
  frame.width = w, frame.height = h, frame.stride = (size_t)w * 3, frame.data = pixels;
  frame.data_size = (size_t)w * 3 * (size_t)h; /* bytes readable at data: checked, never read past */
  srt_result_init(&result);
  result.class_map = class_map, result.class_map_size = plane; /* caller-owned, sized from info */
  if (srt_engine_run(engine, &frame, &result) != SRT_OK) {
    fprintf(stderr, "hello_swiftrt: %s\n", srt_last_error());
    return 1;
  }
  for (p = 0; p < plane; ++p) ++count[class_map[p]];
  for (i = 1; i < 256; ++i)
    if (count[i] > count[best]) best = i;
  srt_class_info_init(&cls);
  for (i = 0; i < info.num_classes; ++i) /* class maps hold train ids: find the class with that id */
    if (srt_engine_class(engine, i, &cls) == SRT_OK && cls.id == best) {
      name = cls.name;
      break;
    }
  printf("%s: %dx%d frame -> %dx%d class map in %.1f ms, %.0f%% '%s'\n", srt_version(), w, h, info.output_width,
         info.output_height, result.total_ms, 100.0 * count[best] / (double)plane, name);
  free(pixels);
  free(class_map);
  srt_engine_close(engine);
  return 0;
}
