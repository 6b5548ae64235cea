// The per-element arithmetic of frame preprocessing, written once for the host (resize.cpp,
// preprocess.cpp) and the GPU (preprocess_cuda.cu, __host__ __device__): the CUDA kernel computes
// exactly what the host path computes, by construction, and tests/test_preprocess_kernel.cpp runs
// the kernel's element function on the CPU against the host Preprocessor to show it.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define SRT_HD __host__ __device__
#else
#define SRT_HD
#endif

namespace srt {
namespace px {

const int kCoefBits = 11;
const int kCoefScale = 1 << kCoefBits;  // OpenCV's INTER_RESIZE_COEF_SCALE

SRT_HD inline int clip(int v, int lo, int hi) { return v < lo ? lo : (v >= hi ? hi - 1 : v); }

// Horizontal pass of one element: source element sxe (= sx * 3 + channel) and its right neighbour,
// weighted a0, a1 (fixed point, sum 2048); past the last full pair (edge) the element alone.
SRT_HD inline int32_t hpass(const uint8_t *row, int sxe, int a0, int a1, bool edge) {
  return edge ? row[sxe] * kCoefScale : row[sxe] * a0 + row[sxe + 3] * a1;
}

// OpenCV's vector form of the vertical pass (VResizeLinearVec_32s8u): 16-bit products, high
// halves, then a rounding shift by 2. OpenCV 5 runs every element through it (its scalar tail,
// used by OpenCV 4 for the last few elements of a row, can differ by 1).
SRT_HD inline uint8_t vpass(int32_t s0, int32_t s1, int b0, int b1) {
  int v = (((s0 >> 4) * b0) >> 16) + (((s1 >> 4) * b1) >> 16);
  v = (v + 2) >> 2;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// cv::resize's exact 2x INTER_LINEAR downscale: a 2x2 box average (element i of rows r0, r1).
SRT_HD inline uint8_t box2(const uint8_t *r0, const uint8_t *r1, int i) {
  return static_cast<uint8_t>((r0[i] + r0[i + 3] + r1[i] + r1[i + 3] + 2) >> 2);
}

// Host normalization as numpy does it: (x * mul) + add, two float32 operations, never fused
// (the host build has -ffp-contract=off; the device uses round-to-nearest intrinsics, which nvcc
// does not contract into an FMA).
SRT_HD inline float normalize(uint8_t v, float mul, float add) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(__fmul_rn(static_cast<float>(v), mul), add);
#else
  float m = static_cast<float>(v) * mul;
  return m + add;
#endif
}

}  // namespace px
}  // namespace srt
