/* srt_segment: the starting point for vehicle software that links libswiftrt.
 *
 *   srt_segment [--threads N] [--size WxH] [--out DIR] [--rate HZ] ENGINE INPUT...
 *
 * ENGINE: an .onnx / .plan with its manifest, or a forecast bundle (its folder or forecast.json).
 * INPUT: binary PPM files (P6, RGB), raw BGR files of --size WxH (e.g. `ffmpeg -pix_fmt bgr24 -f
 * rawvideo`), or folders of them (sorted by name). Each frame runs through the engine; the class
 * map (for a bundle: the forecast, once warmed up) is written to DIR as NAME.pgm (train ids as grey
 * levels) when --out is given; frames get timestamps at --rate Hz (default: the bundle's rate, 30).
 * At the end it prints frames, FPS and the mean per-stage times the core measured.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "swiftrt.h"

typedef struct {
  unsigned char *data;
  int width, height, format;
} image;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int ends_with(const char *s, const char *tail) {
  size_t n = strlen(s), m = strlen(tail);
  return n >= m && strcmp(s + n - m, tail) == 0;
}

/* Binary PPM (P6, maxval 255) -> RGB8; anything else -> raw BGR8 of the given size. */
static int load(const char *path, int raw_w, int raw_h, image *img) {
  FILE *f = fopen(path, "rb");
  size_t bytes;
  if (!f) return 0;
  if (ends_with(path, ".ppm")) {
    int maxval;
    if (fscanf(f, "P6 %d %d %d", &img->width, &img->height, &maxval) != 3 || maxval != 255 || fgetc(f) == EOF ||
        img->width <= 0 || img->height <= 0) {
      fclose(f);
      return 0;
    }
    img->format = SRT_FORMAT_RGB8;
  } else {
    if (raw_w <= 0 || raw_h <= 0) {
      fclose(f);
      fprintf(stderr, "srt_segment: %s is not a .ppm: give --size WxH for raw BGR frames\n", path);
      return 0;
    }
    img->width = raw_w, img->height = raw_h, img->format = SRT_FORMAT_BGR8;
  }
  bytes = (size_t)img->width * (size_t)img->height * 3;
  img->data = (unsigned char *)malloc(bytes);
  if (!img->data || fread(img->data, 1, bytes, f) != bytes) {
    free(img->data);
    img->data = NULL;
    fclose(f);
    return 0;
  }
  fclose(f);
  return 1;
}

static int compare(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The files to run: each INPUT, or the sorted files of an INPUT folder. */
static char **collect(char **inputs, int count, int *total) {
  char **files = NULL;
  int n = 0, cap = 0, i;
  for (i = 0; i < count; ++i) {
    struct stat st;
    int first = n;
    if (stat(inputs[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      DIR *d = opendir(inputs[i]);
      struct dirent *e;
      while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) files = (char **)realloc(files, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 64));
        files[n] = (char *)malloc(strlen(inputs[i]) + strlen(e->d_name) + 2);
        sprintf(files[n++], "%s/%s", inputs[i], e->d_name);
      }
      if (d) closedir(d);
      qsort(files + first, (size_t)(n - first), sizeof(char *), compare);
    } else {
      if (n == cap) files = (char **)realloc(files, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 64));
      files[n] = (char *)malloc(strlen(inputs[i]) + 1);
      strcpy(files[n++], inputs[i]);
    }
  }
  *total = n;
  return files;
}

static void write_pgm(const char *dir, const char *input, const unsigned char *map, int w, int h) {
  const char *base = strrchr(input, '/');
  char path[4096];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s.pgm", dir, base ? base + 1 : input);
  f = fopen(path, "wb");
  if (!f) return;
  fprintf(f, "P5\n%d %d\n255\n", w, h);
  fwrite(map, 1, (size_t)w * (size_t)h, f);
  fclose(f);
}

int main(int argc, char **argv) {
  srt_open_options options;
  srt_engine *engine = NULL;
  struct srt_engine_info info;
  srt_result result;
  const char *out_dir = NULL;
  int raw_w = 0, raw_h = 0, i, nfiles = 0, frames = 0, forecasts = 0, failed = 0, cameras = 1;
  double rate = 0, t0, elapsed, pre = 0, inf = 0, post = 0;
  unsigned char *map, *map2 = NULL;
  char **files;

  srt_open_options_init(&options);
  for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
    if (i + 1 >= argc) break;
    if (strcmp(argv[i], "--threads") == 0) options.threads = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--size") == 0) sscanf(argv[i + 1], "%dx%d", &raw_w, &raw_h);
    else if (strcmp(argv[i], "--out") == 0) out_dir = argv[i + 1];
    else if (strcmp(argv[i], "--rate") == 0) rate = atof(argv[i + 1]);
    else if (strcmp(argv[i], "--cameras") == 0) cameras = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "srt_segment: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (argc - i < 2) {
    fprintf(stderr, "usage: srt_segment [--threads N] [--size WxH] [--out DIR] [--rate HZ] [--cameras 1|2] ENGINE "
                    "INPUT...\n");
    return 2;
  }
  if (cameras != 1 && cameras != 2) {
    fprintf(stderr, "srt_segment: --cameras is 1 or 2\n");
    return 2;
  }
  if (srt_engine_open(argv[i], &options, &engine) != SRT_OK) {
    fprintf(stderr, "srt_segment: %s\n", srt_last_error());
    return 2;
  }
  srt_engine_info_init(&info);
  srt_engine_info(engine, &info);
  if (rate <= 0) rate = info.frame_rate > 0 ? info.frame_rate : 30.0;
  printf("%s: %s %s, %dx%d -> %dx%d, %d classes, %s\n", argv[i], info.arch, info.precision, info.input_width,
         info.input_height, info.output_width, info.output_height, info.num_classes, info.backend_name);
  map = (unsigned char *)malloc((size_t)info.output_width * (size_t)info.output_height);
  map2 = (unsigned char *)malloc((size_t)info.output_width * (size_t)info.output_height);
  srt_result_init(&result);
  if (info.task == SRT_TASK_FORECAST) result.forecast_map = map, result.forecast_map_size = (size_t)info.output_width * info.output_height;
  else result.class_map = map, result.class_map_size = (size_t)info.output_width * info.output_height;
  if (out_dir) mkdir(out_dir, 0777);

  files = collect(argv + i + 1, argc - i - 1, &nfiles);
  t0 = now_s();
  if (cameras == 2) { /* two cameras: file 2k is camera 0's, 2k+1 camera 1's; one call per pair */
    for (i = 0; i < nfiles; i += 2) {
      image img[2] = {{NULL, 0, 0, 0}, {NULL, 0, 0, 0}};
      srt_frame frame[2];
      const srt_frame *batch[2] = {NULL, NULL};
      unsigned char *maps[2] = {map, map2};
      srt_result res[2];
      srt_result *outs[2] = {&res[0], &res[1]};
      int c;
      for (c = 0; c < 2; ++c) {
        srt_result_init(&res[c]);
        res[c].class_map = maps[c], res[c].class_map_size = (size_t)info.output_width * info.output_height;
        if (i + c >= nfiles) continue; /* an odd count: camera 1 has no frame (a partial batch) */
        if (!load(files[i + c], raw_w, raw_h, &img[c])) {
          fprintf(stderr, "srt_segment: cannot read %s (skipped)\n", files[i + c]);
          ++failed;
          continue;
        }
        srt_frame_init(&frame[c]);
        frame[c].format = img[c].format;
        frame[c].width = img[c].width, frame[c].height = img[c].height, frame[c].stride = (size_t)img[c].width * 3;
        frame[c].data = img[c].data;
        frame[c].data_size = frame[c].stride * (size_t)img[c].height;
        batch[c] = &frame[c];
      }
      if (srt_engine_run_batch(engine, batch, 2, outs) != SRT_OK) {
        fprintf(stderr, "srt_segment: %s: %s\n", files[i], srt_last_error());
        ++failed;
      } else {
        for (c = 0; c < 2; ++c) {
          if (!batch[c]) continue;
          ++frames;
          pre += res[c].preprocess_ms, inf += res[c].inference_ms, post += res[c].postprocess_ms;
          if (out_dir) write_pgm(out_dir, files[i + c], maps[c], info.output_width, info.output_height);
        }
      }
      for (c = 0; c < 2 && i + c < nfiles; ++c) {
        free(img[c].data);
        free(files[i + c]);
      }
    }
    nfiles = 0; /* done: skip the one-camera loop */
  }
  for (i = 0; i < nfiles; ++i) {
    image img = {NULL, 0, 0, 0};
    srt_frame frame;
    if (!load(files[i], raw_w, raw_h, &img)) {
      fprintf(stderr, "srt_segment: cannot read %s (skipped)\n", files[i]);
      ++failed;
      free(files[i]);
      continue;
    }
    srt_frame_init(&frame);
    frame.format = img.format;
    frame.width = img.width, frame.height = img.height, frame.stride = (size_t)img.width * 3;
    frame.data = img.data;
    frame.data_size = frame.stride * (size_t)img.height;
    frame.timestamp = frames / rate, frame.has_timestamp = 1;
    if (srt_engine_run(engine, &frame, &result) != SRT_OK) {
      fprintf(stderr, "srt_segment: %s: %s\n", files[i], srt_last_error());
      ++failed;
    } else {
      ++frames;
      pre += result.preprocess_ms, inf += result.inference_ms, post += result.postprocess_ms;
      if (info.task != SRT_TASK_FORECAST || result.is_forecast) {
        forecasts += result.is_forecast;
        if (out_dir) write_pgm(out_dir, files[i], map, info.output_width, info.output_height);
      }
    }
    free(img.data);
    free(files[i]);
  }
  elapsed = now_s() - t0;
  free(files);
  printf("%d frames in %.2f s: %.1f FPS (reading files included); per frame: preprocess %.2f ms, inference %.2f ms, "
         "postprocess %.2f ms", frames, elapsed, elapsed > 0 ? frames / elapsed : 0.0, frames ? pre / frames : 0.0,
         frames ? inf / frames : 0.0, frames ? post / frames : 0.0);
  if (info.task == SRT_TASK_FORECAST) printf("; %d forecasts", forecasts);
  printf("\n");
  free(map);
  free(map2);
  srt_engine_close(engine);
  return failed ? 1 : 0;
}
