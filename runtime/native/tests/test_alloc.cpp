// No heap allocation per frame inside libswiftrt once an engine has run its first frames.
//
//   test_alloc ENGINES_DIR [WARMUP] [FRAMES]
//
// The test binary interposes malloc, calloc, realloc, aligned allocation and operator new (the
// latter reach malloc). For each allocation it walks the stack (backtrace) past the C and C++
// runtimes and this binary: when the first frame left belongs to libswiftrt, libswiftrt
// allocated (directly or through the standard library); when it belongs to OpenVINO or TBB, the
// inference library did (reported, not counted: it is not libswiftrt's code). Over FRAMES frames
// of each engine kind the test engines have (segmentation, logits + host normalization, outlier,
// forecast bundle), after WARMUP frames, libswiftrt must allocate nothing.
#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "swiftrt.h"

extern "C" {
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void __libc_free(void *);
}

namespace {

struct Range {
  uintptr_t lo = 0, hi = 0;
  bool contains(uintptr_t a) const { return a >= lo && a < hi; }
};

// Objects whose frames are looked through (allocator plumbing) and libswiftrt itself.
Range transparent[16];
int transparent_count = 0;
Range swiftrt;
std::atomic<bool> counting{false};
std::atomic<long> ours{0}, theirs{0};
thread_local bool inside = false;

bool is_transparent(uintptr_t a) {
  for (int i = 0; i < transparent_count; ++i)
    if (transparent[i].contains(a)) return true;
  return false;
}

void note_allocation() {
  if (!counting.load(std::memory_order_relaxed) || inside) return;
  inside = true;  // backtrace may allocate (never here after the warm-up call in main)
  void *frames[64];
  int n = backtrace(frames, 64);
  bool mine = false;
  for (int i = 0; i < n; ++i) {
    uintptr_t a = reinterpret_cast<uintptr_t>(frames[i]);
    if (is_transparent(a)) continue;
    mine = swiftrt.contains(a);
    break;
  }
  (mine ? ours : theirs).fetch_add(1, std::memory_order_relaxed);
  if (mine && std::getenv("SRT_ALLOC_STACKS")) backtrace_symbols_fd(frames, n, 2);  // who allocated
  inside = false;
}

int collect(struct dl_phdr_info *info, size_t, void *) {
  std::string name = info->dlpi_name ? info->dlpi_name : "";
  Range r;
  r.lo = UINTPTR_MAX;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr) &ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    uintptr_t lo = info->dlpi_addr + ph.p_vaddr, hi = lo + ph.p_memsz;
    if (lo < r.lo) r.lo = lo;
    if (hi > r.hi) r.hi = hi;
  }
  if (r.lo == UINTPTR_MAX) return 0;
  std::string base = name.substr(name.find_last_of('/') + 1);
  if (base.rfind("libswiftrt", 0) == 0) {
    swiftrt = r;
  } else if (name.empty() || base.rfind("libc.so", 0) == 0 || base.rfind("libstdc++", 0) == 0 ||
             base.rfind("libgcc_s", 0) == 0 || base.rfind("libm.so", 0) == 0 || base.rfind("ld-linux", 0) == 0) {
    if (transparent_count < 16) transparent[transparent_count++] = r;  // "" is this executable
  }
  return 0;
}

int failures = 0;

void check(bool ok, const char *what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAIL: %s: %s\n", what, srt_last_error());
  }
}

std::vector<unsigned char> frame_pixels(int w, int h, int seed) {
  std::vector<unsigned char> p(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<unsigned char>((i * 7 + static_cast<size_t>(seed) * 13) & 0xFF);
  return p;
}

// Opens `name`, runs warmup + frames frames (a camera-sized frame: the core resizes it), counts.
void measure(const std::string &dir, const char *name, int warmup, int frames, bool bundle) {
  srt_engine *engine = nullptr;
  srt_open_options options;
  srt_open_options_init(&options);
  options.decode_current = bundle;
  std::string path = dir + "/" + name;
  if (srt_engine_open(path.c_str(), &options, &engine) != SRT_OK) {
    check(false, name);
    return;
  }
  struct srt_engine_info info;
  std::memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  srt_engine_info(engine, &info);
  size_t plane = static_cast<size_t>(info.output_width) * info.output_height;
  std::vector<unsigned char> map(plane), fmap(plane), mask(plane);
  std::vector<float> score(plane);
  srt_result result;
  std::memset(&result, 0, sizeof result);
  result.struct_size = sizeof result;
  result.class_map = map.data(), result.class_map_size = plane;
  if (info.has_outlier_score) {
    result.outlier_score = score.data(), result.outlier_score_size = plane * 4;
    result.outlier_mask = mask.data(), result.outlier_mask_size = plane;
  }
  if (bundle) result.forecast_map = fmap.data(), result.forecast_map_size = plane;
  const int w = 320, h = 200;
  std::vector<unsigned char> pixels[2] = {frame_pixels(w, h, 1), frame_pixels(w, h, 2)};
  dl_iterate_phdr(collect, nullptr);  // after open: every library the engine needs is loaded
  for (int i = 0; i < warmup + frames; ++i) {
    if (i == warmup) ours = 0, theirs = 0, counting = true;
    srt_frame f;
    std::memset(&f, 0, sizeof f);
    f.struct_size = sizeof f;
    f.format = SRT_FORMAT_BGR8;
    f.width = w, f.height = h, f.stride = static_cast<size_t>(w) * 3;
    f.data = pixels[i % 2].data(), f.data_size = pixels[i % 2].size();
    f.has_timestamp = 1, f.timestamp = info.frame_rate > 0 ? i / info.frame_rate : i / 30.0;
    if (srt_engine_run(engine, &f, &result) != SRT_OK) {
      counting = false;
      check(false, name);
      break;
    }
  }
  counting = false;
  long mine = ours.load(), other = theirs.load();
  std::printf("%-10s %3d frames: %ld allocation(s) by libswiftrt, %.1f per frame by %s\n", name, frames, mine,
              static_cast<double>(other) / frames, info.backend_name);
  if (bundle) check(result.is_forecast == 1, "the bundle forecasts after its warm-up");
  if (mine != 0) {
    ++failures;
    std::fprintf(stderr, "FAIL: %s: libswiftrt allocated %ld time(s) in %d frames after warm-up\n", name, mine, frames);
  }
  srt_engine_close(engine);
}

}  // namespace

extern "C" {
void *malloc(size_t n) {
  note_allocation();
  return __libc_malloc(n);
}
void *calloc(size_t n, size_t size) {
  note_allocation();
  return __libc_calloc(n, size);
}
void *realloc(void *p, size_t n) {
  note_allocation();
  return __libc_realloc(p, n);
}
void *memalign(size_t align, size_t n) {
  note_allocation();
  return __libc_memalign(align, n);
}
void *aligned_alloc(size_t align, size_t n) {
  note_allocation();
  return __libc_memalign(align, n);
}
int posix_memalign(void **out, size_t align, size_t n) {
  note_allocation();
  void *p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void free(void *p) { __libc_free(p); }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s ENGINES_DIR [WARMUP] [FRAMES]\n", argv[0]);
    return 2;
  }
  void *probe[4];
  backtrace(probe, 4);  // loads the unwinder now, not inside the first counted allocation
  const std::string dir = argv[1];
  const int warmup = argc > 2 ? std::atoi(argv[2]) : 24, frames = argc > 3 ? std::atoi(argv[3]) : 24;
  measure(dir, "seg.onnx", warmup, frames, false);
  measure(dir, "logits.onnx", warmup, frames, false);  // argmax over logits, host normalization
  measure(dir, "ood.onnx", warmup, frames, false);
  measure(dir, "bundle", warmup, frames, true);
  // The test is worth something only if it sees allocations at all: the inference library's.
  if (theirs.load() == 0 && failures == 0) {
    ++failures;
    std::fprintf(stderr, "FAIL: no allocation seen at all: the interposition does not work\n");
  }
  if (failures) return 1;
  std::printf("libswiftrt allocated nothing per frame after warm-up\n");
  return 0;
}
