#include "resize.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "pixel.hpp"

namespace srt {

namespace {
inline int16_t coef(float w) { return static_cast<int16_t>(std::lrint(w * px::kCoefScale)); }
}  // namespace

const ResizeTables &Resizer::tables(int sw, int sh, int dw, int dh) {
  ResizeTables &t = t_;
  if (sw == t.sw && sh == t.sh && dw == t.dw && dh == t.dh) return t;
  t.sw = sw, t.sh = sh, t.dw = dw, t.dh = dh;
  // As cv::resize computes them: inverse scales first, then their reciprocals.
  double inv_x = static_cast<double>(dw) / sw, inv_y = static_cast<double>(dh) / sh;
  double scale_x = 1.0 / inv_x, scale_y = 1.0 / inv_y;
  int iscale_x = static_cast<int>(std::lrint(scale_x)), iscale_y = static_cast<int>(std::lrint(scale_y));
  t.area2 = std::fabs(scale_x - iscale_x) < DBL_EPSILON && std::fabs(scale_y - iscale_y) < DBL_EPSILON &&
            iscale_x == 2 && iscale_y == 2;
  if (t.area2) return t;
  t.xofs.assign(static_cast<size_t>(dw) * 3, 0);
  t.alpha.assign(static_cast<size_t>(dw) * 2, 0);
  t.xmax = dw;
  for (int dx = 0; dx < dw; ++dx) {
    float fx = static_cast<float>((dx + 0.5) * scale_x - 0.5);
    int sx = static_cast<int>(std::floor(fx));
    fx -= sx;
    if (sx < 0) fx = 0.f, sx = 0;
    if (sx + 1 >= sw) {
      t.xmax = std::min(t.xmax, dx);
      if (sx >= sw - 1) fx = 0.f, sx = sw - 1;
    }
    for (int c = 0; c < 3; ++c) t.xofs[dx * 3 + c] = sx * 3 + c;
    t.alpha[dx * 2] = coef(1.f - fx);
    t.alpha[dx * 2 + 1] = coef(fx);
  }
  t.yofs.assign(dh, 0);
  t.beta.assign(static_cast<size_t>(dh) * 2, 0);
  for (int dy = 0; dy < dh; ++dy) {
    float fy = static_cast<float>((dy + 0.5) * scale_y - 0.5);
    int sy = static_cast<int>(std::floor(fy));
    fy -= sy;
    t.yofs[dy] = sy;
    t.beta[dy * 2] = coef(1.f - fy);
    t.beta[dy * 2 + 1] = coef(fy);
  }
  rows_[0].assign(static_cast<size_t>(dw) * 3, 0);
  rows_[1].assign(static_cast<size_t>(dw) * 3, 0);
  return t;
}

void Resizer::hline(const uint8_t *row, int32_t *out) const {
  const ResizeTables &t = t_;
  for (int dx = 0; dx < t.dw; ++dx) {
    const bool edge = dx >= t.xmax;
    const int a0 = t.alpha[dx * 2], a1 = t.alpha[dx * 2 + 1];
    for (int c = 0; c < 3; ++c) out[dx * 3 + c] = px::hpass(row, t.xofs[dx * 3 + c], a0, a1, edge);
  }
}

void Resizer::resize(const uint8_t *src, int sw, int sh, size_t sstride, uint8_t *dst, int dw, int dh,
                     size_t dstride) {
  const ResizeTables &t = tables(sw, sh, dw, dh);
  if (t.area2) {  // cv::resize turns an exact 2x INTER_LINEAR downscale into a 2x2 box average
    for (int y = 0; y < dh; ++y) {
      const uint8_t *r0 = src + static_cast<size_t>(2 * y) * sstride, *r1 = r0 + sstride;
      uint8_t *out = dst + static_cast<size_t>(y) * dstride;
      for (int x = 0; x < dw; ++x)
        for (int c = 0; c < 3; ++c) out[3 * x + c] = px::box2(r0, r1, 6 * x + c);
    }
    return;
  }
  // The cached rows hold this frame's pixels only: a new frame (even of the same size, e.g. a
  // 2-row frame whose rows 0 and 1 were cached from the previous one) starts with none.
  cached_[0] = cached_[1] = -2;
  const int width = dw * 3;
  for (int dy = 0; dy < dh; ++dy) {
    const int32_t *S[2];
    for (int k = 0; k < 2; ++k) {
      int sy = px::clip(t.yofs[dy] + k, 0, sh);
      int slot = -1;
      for (int j = 0; j < 2; ++j)
        if (cached_[j] == sy) slot = j;
      if (slot < 0) {
        // Reuse the slot not holding the other row this destination row needs.
        int other = px::clip(t.yofs[dy] + (1 - k), 0, sh);
        slot = cached_[1] == other ? 0 : (cached_[0] == other ? 1 : k);
        hline(src + static_cast<size_t>(sy) * sstride, rows_[slot].data());
        cached_[slot] = sy;
      }
      S[k] = rows_[slot].data();
    }
    const int b0 = t.beta[dy * 2], b1 = t.beta[dy * 2 + 1];
    uint8_t *out = dst + static_cast<size_t>(dy) * dstride;
    const int32_t *S0 = S[0], *S1 = S[1];
    for (int x = 0; x < width; ++x) out[x] = px::vpass(S0[x], S1[x], b0, b1);
  }
}

}  // namespace srt
