#include "preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "error.hpp"
#include "pixel.hpp"

namespace srt {

Preprocessor::Preprocessor(const InputSpec &spec, Resize mode) : spec_(spec), mode_(mode) {
  if (spec.dtype != DType::U8 && spec.dtype != DType::F32)
    fail(SRT_ERROR_UNSUPPORTED, std::string("frame input '") + spec.name + "' has dtype " + dtype_name(spec.dtype) +
                                    "; this core feeds uint8 or float32 frames");
  if (!spec.in_graph && spec.dtype != DType::F32)
    fail(SRT_ERROR_UNSUPPORTED, "frame input '" + spec.name + "' is normalized on the host but is not float32");
  fitted_.assign(static_cast<size_t>(spec.height) * spec.width * 3, 0);
}

FitGeometry fit_geometry(int fw, int fh, int W, int H, Resize mode) {
  FitGeometry g;
  if (fw == W && fh == H) {  // as fit_frame: the frame is used as it is
    g.identity = true;
    g.nw = W, g.nh = H;
    return g;
  }
  if (mode == Resize::Stretch) {
    g.nw = W, g.nh = H;
    g.scale_x = W / static_cast<double>(fw), g.scale_y = H / static_cast<double>(fh);
  } else if (mode == Resize::Letterbox) {
    double scale = std::min(W / static_cast<double>(fw), H / static_cast<double>(fh));
    // Python's round(): half to even, which std::nearbyint does in the default rounding mode.
    int nw = std::max(1, static_cast<int>(std::nearbyint(fw * scale)));
    int nh = std::max(1, static_cast<int>(std::nearbyint(fh * scale)));
    g.nw = std::min(nw, W), g.nh = std::min(nh, H);
    g.ox = -((W - g.nw) / 2), g.oy = -((H - g.nh) / 2);
    g.scale_x = g.scale_y = scale;
  } else {  // crop: scale to cover, cut the centre
    double scale = std::max(W / static_cast<double>(fw), H / static_cast<double>(fh));
    g.nw = std::max(W, static_cast<int>(std::nearbyint(fw * scale)));
    g.nh = std::max(H, static_cast<int>(std::nearbyint(fh * scale)));
    g.ox = (g.nw - W) / 2, g.oy = (g.nh - H) / 2;
    g.scale_x = g.scale_y = scale;
  }
  return g;
}

FitGeometry Preprocessor::geometry(int fw, int fh) const {
  return fit_geometry(fw, fh, spec_.width, spec_.height, mode_);
}

PreprocessParams Preprocessor::params(const FrameView &f) {
  PreprocessParams p;
  p.frame = f.data, p.stride = f.stride, p.fw = f.width, p.fh = f.height;
  p.W = spec_.width, p.H = spec_.height;
  p.nchw = spec_.nchw, p.f32 = spec_.dtype == DType::F32, p.norm = p.f32 && !spec_.in_graph;
  const bool swap = spec_.rgb != f.rgb;
  p.src_channel[0] = swap ? 2 : 0, p.src_channel[1] = 1, p.src_channel[2] = swap ? 0 : 2;
  for (int c = 0; c < 3; ++c) p.mul[c] = spec_.mul[c], p.add[c] = spec_.add[c];
  FitGeometry g = geometry(f.width, f.height);
  p.identity = g.identity, p.nw = g.nw, p.nh = g.nh, p.ox = g.ox, p.oy = g.oy;
  if (!g.identity) {
    const ResizeTables &t = resizer_.tables(f.width, f.height, g.nw, g.nh);
    p.area2 = t.area2, p.xmax = t.xmax;
    p.xofs = t.xofs.data(), p.alpha = t.alpha.data(), p.yofs = t.yofs.data(), p.beta = t.beta.data();
  }
  return p;
}

const uint8_t *Preprocessor::fit(const FrameView &f, size_t *stride) {
  const int H = spec_.height, W = spec_.width;
  const size_t pitch = static_cast<size_t>(W) * 3;
  *stride = pitch;
  const FitGeometry g = geometry(f.width, f.height);
  if (g.identity) {
    *stride = f.stride;
    return f.data;
  }
  if (mode_ == Resize::Stretch) {
    resizer_.resize(f.data, f.width, f.height, f.stride, fitted_.data(), W, H, pitch);
    return fitted_.data();
  }
  const int nw = g.nw, nh = g.nh;
  scratch_.resize(static_cast<size_t>(nw) * nh * 3);
  resizer_.resize(f.data, f.width, f.height, f.stride, scratch_.data(), nw, nh, static_cast<size_t>(nw) * 3);
  if (mode_ == Resize::Letterbox) {
    std::fill(fitted_.begin(), fitted_.end(), 0);
    int px = -g.ox, py = -g.oy;
    for (int y = 0; y < nh; ++y)
      std::memcpy(&fitted_[(static_cast<size_t>(py + y) * W + px) * 3], &scratch_[static_cast<size_t>(y) * nw * 3],
                  static_cast<size_t>(nw) * 3);
    return fitted_.data();
  }
  int cx = g.ox, cy = g.oy;
  for (int y = 0; y < H; ++y)
    std::memcpy(&fitted_[static_cast<size_t>(y) * pitch], &scratch_[(static_cast<size_t>(cy + y) * nw + cx) * 3], pitch);
  return fitted_.data();
}

void Preprocessor::run(const FrameView &frame, void *tensor) {
  size_t stride = 0;
  const uint8_t *img = fit(frame, &stride);
  to_tensor(img, stride, frame.rgb, tensor);
}

void Preprocessor::to_tensor(const uint8_t *img, size_t stride, bool rgb, void *tensor) const {
  const int H = spec_.height, W = spec_.width;
  const size_t plane = static_cast<size_t>(H) * W;
  // Engine channel c reads frame channel src[c].
  const bool swap = spec_.rgb != rgb;
  const int src[3] = {swap ? 2 : 0, 1, swap ? 0 : 2};
  if (spec_.dtype == DType::U8 && !spec_.nchw) {  // the default export: uint8 NHWC, cast in the graph
    uint8_t *out = static_cast<uint8_t *>(tensor);
    for (int y = 0; y < H; ++y) {
      const uint8_t *row = img + static_cast<size_t>(y) * stride;
      uint8_t *dst = out + static_cast<size_t>(y) * W * 3;
      if (!swap) {
        std::memcpy(dst, row, static_cast<size_t>(W) * 3);
        continue;
      }
      for (int x = 0; x < W; ++x) dst[3 * x] = row[3 * x + 2], dst[3 * x + 1] = row[3 * x + 1], dst[3 * x + 2] = row[3 * x];
    }
    return;
  }
  if (spec_.dtype == DType::U8) {  // uint8 NCHW: planes
    uint8_t *out = static_cast<uint8_t *>(tensor);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < H; ++y) {
        const uint8_t *row = img + static_cast<size_t>(y) * stride + src[c];
        uint8_t *dst = out + c * plane + static_cast<size_t>(y) * W;
        for (int x = 0; x < W; ++x) dst[x] = row[3 * x];
      }
    return;
  }
  // float32: as numpy, (x * mul) + add in two float32 operations when normalizing on the host
  // (no fused multiply-add: -ffp-contract=off), else the plain value.
  float *out = static_cast<float *>(tensor);
  const bool norm = !spec_.in_graph;
  for (int c = 0; c < 3; ++c) {
    const float mul = norm ? spec_.mul[c] : 1.f, add = norm ? spec_.add[c] : 0.f;
    for (int y = 0; y < H; ++y) {
      const uint8_t *row = img + static_cast<size_t>(y) * stride + src[c];
      if (spec_.nchw) {
        float *dst = out + c * plane + static_cast<size_t>(y) * W;
        if (norm)
          for (int x = 0; x < W; ++x) dst[x] = px::normalize(row[3 * x], mul, add);
        else
          for (int x = 0; x < W; ++x) dst[x] = static_cast<float>(row[3 * x]);
      } else {
        float *dst = out + static_cast<size_t>(y) * W * 3 + c;
        if (norm)
          for (int x = 0; x < W; ++x) dst[3 * x] = px::normalize(row[3 * x], mul, add);
        else
          for (int x = 0; x < W; ++x) dst[3 * x] = static_cast<float>(row[3 * x]);
      }
    }
  }
}

}  // namespace srt
