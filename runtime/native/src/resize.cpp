#include "resize.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace srt {

namespace {
const int kCoefBits = 11;
const int kCoefScale = 1 << kCoefBits;  // OpenCV's INTER_RESIZE_COEF_SCALE

inline int16_t coef(float w) { return static_cast<int16_t>(std::lrint(w * kCoefScale)); }
inline int clip(int v, int lo, int hi) { return v < lo ? lo : (v >= hi ? hi - 1 : v); }
}  // namespace

void Resizer::prepare(int sw, int sh, int dw, int dh) {
  if (sw == sw_ && sh == sh_ && dw == dw_ && dh == dh_) return;
  sw_ = sw, sh_ = sh, dw_ = dw, dh_ = dh;
  cached_[0] = cached_[1] = -2;
  // As cv::resize computes them: inverse scales first, then their reciprocals.
  double inv_x = static_cast<double>(dw) / sw, inv_y = static_cast<double>(dh) / sh;
  double scale_x = 1.0 / inv_x, scale_y = 1.0 / inv_y;
  int iscale_x = static_cast<int>(std::lrint(scale_x)), iscale_y = static_cast<int>(std::lrint(scale_y));
  area2_ = std::fabs(scale_x - iscale_x) < DBL_EPSILON && std::fabs(scale_y - iscale_y) < DBL_EPSILON &&
           iscale_x == 2 && iscale_y == 2;
  if (area2_) return;
  xofs_.assign(static_cast<size_t>(dw) * 3, 0);
  alpha_.assign(static_cast<size_t>(dw) * 2, 0);
  xmax_ = dw;
  for (int dx = 0; dx < dw; ++dx) {
    float fx = static_cast<float>((dx + 0.5) * scale_x - 0.5);
    int sx = static_cast<int>(std::floor(fx));
    fx -= sx;
    if (sx < 0) fx = 0.f, sx = 0;
    if (sx + 1 >= sw) {
      xmax_ = std::min(xmax_, dx);
      if (sx >= sw - 1) fx = 0.f, sx = sw - 1;
    }
    for (int c = 0; c < 3; ++c) xofs_[dx * 3 + c] = sx * 3 + c;
    alpha_[dx * 2] = coef(1.f - fx);
    alpha_[dx * 2 + 1] = coef(fx);
  }
  yofs_.assign(dh, 0);
  beta_.assign(static_cast<size_t>(dh) * 2, 0);
  for (int dy = 0; dy < dh; ++dy) {
    float fy = static_cast<float>((dy + 0.5) * scale_y - 0.5);
    int sy = static_cast<int>(std::floor(fy));
    fy -= sy;
    yofs_[dy] = sy;
    beta_[dy * 2] = coef(1.f - fy);
    beta_[dy * 2 + 1] = coef(fy);
  }
  rows_[0].assign(static_cast<size_t>(dw) * 3, 0);
  rows_[1].assign(static_cast<size_t>(dw) * 3, 0);
}

void Resizer::hline(const uint8_t *row, int32_t *out) const {
  int dx = 0;
  for (; dx < xmax_; ++dx) {
    int a0 = alpha_[dx * 2], a1 = alpha_[dx * 2 + 1];
    for (int c = 0; c < 3; ++c) {
      int sx = xofs_[dx * 3 + c];
      out[dx * 3 + c] = row[sx] * a0 + row[sx + 3] * a1;
    }
  }
  for (; dx < dw_; ++dx)
    for (int c = 0; c < 3; ++c) out[dx * 3 + c] = row[xofs_[dx * 3 + c]] * kCoefScale;
}

void Resizer::resize(const uint8_t *src, int sw, int sh, size_t sstride, uint8_t *dst, int dw, int dh,
                     size_t dstride) {
  prepare(sw, sh, dw, dh);
  if (area2_) {  // cv::resize turns an exact 2x INTER_LINEAR downscale into a 2x2 box average
    for (int y = 0; y < dh; ++y) {
      const uint8_t *r0 = src + static_cast<size_t>(2 * y) * sstride, *r1 = r0 + sstride;
      uint8_t *out = dst + static_cast<size_t>(y) * dstride;
      for (int x = 0; x < dw; ++x)
        for (int c = 0; c < 3; ++c) {
          int i = 6 * x + c;
          out[3 * x + c] = static_cast<uint8_t>((r0[i] + r0[i + 3] + r1[i] + r1[i + 3] + 2) >> 2);
        }
    }
    return;
  }
  const int width = dw * 3;
  for (int dy = 0; dy < dh; ++dy) {
    const int32_t *S[2];
    for (int k = 0; k < 2; ++k) {
      int sy = clip(yofs_[dy] + k, 0, sh);
      int slot = -1;
      for (int j = 0; j < 2; ++j)
        if (cached_[j] == sy) slot = j;
      if (slot < 0) {
        // Reuse the slot not holding the other row this destination row needs.
        int other = clip(yofs_[dy] + (1 - k), 0, sh);
        slot = cached_[1] == other ? 0 : (cached_[0] == other ? 1 : k);
        hline(src + static_cast<size_t>(sy) * sstride, rows_[slot].data());
        cached_[slot] = sy;
      }
      S[k] = rows_[slot].data();
    }
    const int b0 = beta_[dy * 2], b1 = beta_[dy * 2 + 1];
    uint8_t *out = dst + static_cast<size_t>(dy) * dstride;
    const int32_t *S0 = S[0], *S1 = S[1];
    // OpenCV's vector form of the vertical pass (VResizeLinearVec_32s8u): 16-bit products,
    // high halves, then a rounding shift by 2. OpenCV 5 runs every element through it (its
    // scalar tail, used by OpenCV 4 for the last few elements of a row, can differ by 1).
    for (int x = 0; x < width; ++x) {
      int v = (((S0[x] >> 4) * b0) >> 16) + (((S1[x] >> 4) * b1) >> 16);
      v = (v + 2) >> 2;
      out[x] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
  }
}

}  // namespace srt
