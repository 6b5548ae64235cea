#include "preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "error.hpp"

namespace srt {

Preprocessor::Preprocessor(const InputSpec &spec, Resize mode) : spec_(spec), mode_(mode) {
  if (spec.dtype != DType::U8 && spec.dtype != DType::F32)
    fail(SRT_ERROR_UNSUPPORTED, std::string("frame input '") + spec.name + "' has dtype " + dtype_name(spec.dtype) +
                                    "; this core feeds uint8 or float32 frames");
  if (!spec.in_graph && spec.dtype != DType::F32)
    fail(SRT_ERROR_UNSUPPORTED, "frame input '" + spec.name + "' is normalized on the host but is not float32");
  fitted_.assign(static_cast<size_t>(spec.height) * spec.width * 3, 0);
}

const uint8_t *Preprocessor::fit(const FrameView &f, size_t *stride) {
  const int H = spec_.height, W = spec_.width;
  const size_t pitch = static_cast<size_t>(W) * 3;
  *stride = pitch;
  if (f.width == W && f.height == H) {  // as fit_frame: the frame is used as it is
    *stride = f.stride;
    return f.data;
  }
  if (mode_ == Resize::Stretch) {
    resizer_.resize(f.data, f.width, f.height, f.stride, fitted_.data(), W, H, pitch);
    return fitted_.data();
  }
  if (mode_ == Resize::Letterbox) {
    double scale = std::min(W / static_cast<double>(f.width), H / static_cast<double>(f.height));
    // Python's round(): half to even, which std::nearbyint does in the default rounding mode.
    int nw = std::max(1, static_cast<int>(std::nearbyint(f.width * scale)));
    int nh = std::max(1, static_cast<int>(std::nearbyint(f.height * scale)));
    nw = std::min(nw, W), nh = std::min(nh, H);
    scratch_.resize(static_cast<size_t>(nw) * nh * 3);
    resizer_.resize(f.data, f.width, f.height, f.stride, scratch_.data(), nw, nh, static_cast<size_t>(nw) * 3);
    std::fill(fitted_.begin(), fitted_.end(), 0);
    int px = (W - nw) / 2, py = (H - nh) / 2;
    for (int y = 0; y < nh; ++y)
      std::memcpy(&fitted_[(static_cast<size_t>(py + y) * W + px) * 3], &scratch_[static_cast<size_t>(y) * nw * 3],
                  static_cast<size_t>(nw) * 3);
    return fitted_.data();
  }
  // crop: scale to cover, cut the centre
  double scale = std::max(W / static_cast<double>(f.width), H / static_cast<double>(f.height));
  int nw = std::max(W, static_cast<int>(std::nearbyint(f.width * scale)));
  int nh = std::max(H, static_cast<int>(std::nearbyint(f.height * scale)));
  scratch_.resize(static_cast<size_t>(nw) * nh * 3);
  resizer_.resize(f.data, f.width, f.height, f.stride, scratch_.data(), nw, nh, static_cast<size_t>(nw) * 3);
  int cx = (nw - W) / 2, cy = (nh - H) / 2;
  for (int y = 0; y < H; ++y)
    std::memcpy(&fitted_[static_cast<size_t>(y) * pitch], &scratch_[(static_cast<size_t>(cy + y) * nw + cx) * 3], pitch);
  return fitted_.data();
}

void Preprocessor::run(const FrameView &frame, void *tensor) {
  size_t stride = 0;
  const uint8_t *img = fit(frame, &stride);
  const int H = spec_.height, W = spec_.width;
  const size_t plane = static_cast<size_t>(H) * W;
  // Engine channel c reads frame channel src[c].
  const bool swap = spec_.rgb != frame.rgb;
  const int src[3] = {swap ? 2 : 0, 1, swap ? 0 : 2};
  if (spec_.dtype == DType::U8) {
    uint8_t *out = static_cast<uint8_t *>(tensor);
    for (int y = 0; y < H; ++y) {
      const uint8_t *row = img + static_cast<size_t>(y) * stride;
      for (int x = 0; x < W; ++x) {
        const uint8_t *p = row + 3 * x;
        for (int c = 0; c < 3; ++c) {
          size_t i = spec_.nchw ? c * plane + static_cast<size_t>(y) * W + x : (static_cast<size_t>(y) * W + x) * 3 + c;
          out[i] = p[src[c]];
        }
      }
    }
    return;
  }
  float *out = static_cast<float *>(tensor);
  const bool norm = !spec_.in_graph;
  for (int y = 0; y < H; ++y) {
    const uint8_t *row = img + static_cast<size_t>(y) * stride;
    for (int x = 0; x < W; ++x) {
      const uint8_t *p = row + 3 * x;
      for (int c = 0; c < 3; ++c) {
        float v = static_cast<float>(p[src[c]]);
        if (norm) {
          // Two float32 operations, as numpy does them (no fused multiply-add: -ffp-contract=off).
          float m = v * spec_.mul[c];
          v = m + spec_.add[c];
        }
        size_t i = spec_.nchw ? c * plane + static_cast<size_t>(y) * W + x : (static_cast<size_t>(y) * W + x) * 3 + c;
        out[i] = v;
      }
    }
  }
}

}  // namespace srt
