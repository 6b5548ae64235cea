// The CUDA preprocessing kernel's arithmetic, run on the CPU: preprocess_pixel (the function the
// kernel in src/preprocess_cuda.cu runs once per pixel, compiled here for the host) must give the
// host Preprocessor's tensor byte for byte, for every fit mode, input layout and dtype, colour
// order and frame size tried (identity, exact 2x, 1-pixel, few-row and camera-sized frames).
// This shows the GPU path computes the host path's numbers by construction; the kernel itself
// has not run on a GPU here.
#include <cstdio>
#include <cstring>
#include <vector>

#include "preprocess.hpp"

namespace {

srt::InputSpec spec_of(bool f32, bool nchw, bool rgb, bool in_graph, int h, int w) {
  srt::InputSpec s;
  s.name = "frame";
  s.dtype = f32 ? srt::DType::F32 : srt::DType::U8;
  s.nchw = nchw;
  s.rgb = rgb;
  s.in_graph = in_graph;
  s.height = h, s.width = w;
  s.shape = nchw ? std::vector<int64_t>{1, 3, h, w} : std::vector<int64_t>{1, h, w, 3};
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
  for (int c = 0; c < 3; ++c) s.mul[c] = (1.f / 255.f) / stdv[c], s.add[c] = -mean[c] / stdv[c];
  return s;
}

std::vector<uint8_t> frame_pixels(int h, size_t stride, int seed) {
  std::vector<uint8_t> p(stride * static_cast<size_t>(h));
  uint32_t x = 2463534242u + static_cast<uint32_t>(seed);
  for (auto &v : p) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    v = static_cast<uint8_t>(x);
  }
  return p;
}

}  // namespace

int main() {
  const int H = 48, W = 80;
  const int sizes[][2] = {{W, H}, {2 * W, 2 * H}, {1, 1}, {1, 4}, {7, 3}, {512, 2}, {97, 61}, {640, 480}, {301, 500}};
  const srt::Resize modes[] = {srt::Resize::Stretch, srt::Resize::Letterbox, srt::Resize::Crop};
  int cases = 0, failures = 0;
  for (int variant = 0; variant < 4; ++variant) {
    const bool f32 = variant >= 2, nchw = variant % 2 == 1, norm = variant == 2;
    for (bool spec_rgb : {false, true})
      for (srt::Resize mode : modes) {
        srt::Preprocessor host(spec_of(f32, nchw, spec_rgb, !norm, H, W), mode);
        for (const auto &size : sizes)
          for (bool frame_rgb : {false, true}) {
            const int fw = size[0], fh = size[1];
            const size_t stride = static_cast<size_t>(fw) * 3 + static_cast<size_t>(cases % 5);
            std::vector<uint8_t> pixels = frame_pixels(fh, stride, cases);
            srt::FrameView frame{pixels.data(), fw, fh, stride, frame_rgb};
            const size_t bytes = static_cast<size_t>(H) * W * 3 * (f32 ? 4 : 1);
            std::vector<uint8_t> want(bytes, 0xAB), got(bytes, 0xCD);
            host.run(frame, want.data());
            srt::PreprocessParams p = host.params(frame);  // what the GPU path uploads
            for (int y = 0; y < H; ++y)
              for (int x = 0; x < W; ++x) srt::preprocess_pixel(p, x, y, got.data());
            ++cases;
            if (std::memcmp(want.data(), got.data(), bytes) != 0) {
              ++failures;
              size_t at = 0;
              while (want[at] == got[at]) ++at;
              std::fprintf(stderr, "FAIL: %s %s %s spec %s, mode %d, %dx%d %s frame: first difference at byte %zu\n",
                           f32 ? "float32" : "uint8", nchw ? "NCHW" : "NHWC", norm ? "normalized" : "", spec_rgb ? "RGB" : "BGR",
                           static_cast<int>(mode), fw, fh, frame_rgb ? "RGB" : "BGR", at);
            }
          }
      }
  }
  if (failures) {
    std::fprintf(stderr, "%d of %d cases differ\n", failures, cases);
    return 1;
  }
  std::printf("preprocess_pixel == host Preprocessor in all %d cases\n", cases);
  return 0;
}
