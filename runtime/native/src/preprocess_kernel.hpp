// One network-input pixel from a camera frame: fit (stretch / letterbox / crop through the
// OpenCV-exact bilinear tables), colour order, normalization, layout and dtype. The CUDA kernel
// (preprocess_cuda.cu) runs preprocess_pixel once per pixel; tests/test_preprocess_kernel.cpp runs
// the same function on the CPU and compares it with the host Preprocessor, byte for byte.
#pragma once

#include <cstddef>
#include <cstdint>

#include "pixel.hpp"

namespace srt {

struct PreprocessParams {
  const uint8_t *frame = nullptr;  // host or device memory, as the caller runs it
  size_t stride = 0;
  int fw = 0, fh = 0;              // frame size
  int W = 0, H = 0;                // network input size
  bool nchw = false, f32 = false, norm = false;
  int src_channel[3] = {0, 1, 2};  // engine channel c reads frame channel src_channel[c]
  float mul[3] = {1, 1, 1}, add[3] = {0, 0, 0};
  bool identity = false;           // the frame is the input's size: used as it is
  int nw = 0, nh = 0;              // the resized image (nw x nh)...
  int ox = 0, oy = 0;              // ...read at (x + ox, y + oy); outside it (letterbox bars): 0
  bool area2 = false;              // resize tables (ResizeTables of fw x fh -> nw x nh)
  int xmax = 0;
  const int *xofs = nullptr;
  const int16_t *alpha = nullptr;
  const int *yofs = nullptr;
  const int16_t *beta = nullptr;
};

// Channel sc (of the frame's order) of the fitted image at (x, y).
SRT_HD inline uint8_t fitted_element(const PreprocessParams &p, int x, int y, int sc) {
  if (p.identity) return p.frame[static_cast<size_t>(y) * p.stride + 3 * static_cast<size_t>(x) + sc];
  const int rx = x + p.ox, ry = y + p.oy;
  if (rx < 0 || rx >= p.nw || ry < 0 || ry >= p.nh) return 0;
  if (p.area2) {
    const uint8_t *r0 = p.frame + static_cast<size_t>(2 * ry) * p.stride;
    return px::box2(r0, r0 + p.stride, 6 * rx + sc);
  }
  const int sxe = p.xofs[rx * 3 + sc];
  const int a0 = p.alpha[rx * 2], a1 = p.alpha[rx * 2 + 1];
  const bool edge = rx >= p.xmax;
  const int sy0 = px::clip(p.yofs[ry], 0, p.fh), sy1 = px::clip(p.yofs[ry] + 1, 0, p.fh);
  const int32_t s0 = px::hpass(p.frame + static_cast<size_t>(sy0) * p.stride, sxe, a0, a1, edge);
  const int32_t s1 = px::hpass(p.frame + static_cast<size_t>(sy1) * p.stride, sxe, a0, a1, edge);
  return px::vpass(s0, s1, p.beta[ry * 2], p.beta[ry * 2 + 1]);
}

// Writes the three channels of input pixel (x, y) into `tensor` (the input's layout and dtype).
SRT_HD inline void preprocess_pixel(const PreprocessParams &p, int x, int y, void *tensor) {
  const size_t plane = static_cast<size_t>(p.H) * p.W, at = static_cast<size_t>(y) * p.W + x;
  for (int c = 0; c < 3; ++c) {
    const uint8_t v = fitted_element(p, x, y, p.src_channel[c]);
    const size_t i = p.nchw ? c * plane + at : at * 3 + c;
    if (p.f32) static_cast<float *>(tensor)[i] = p.norm ? px::normalize(v, p.mul[c], p.add[c]) : static_cast<float>(v);
    else static_cast<uint8_t *>(tensor)[i] = v;
  }
}

}  // namespace srt
