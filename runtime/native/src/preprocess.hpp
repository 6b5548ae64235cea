// Camera frame (8-bit BGR or RGB, any size and row pitch) -> the network's input tensor, exactly
// as runtime/preprocess.py does it: fit (stretch / letterbox / crop, OpenCV-exact bilinear),
// colour order, optional host normalization (x * mul + add in float32), NHWC or NCHW, dtype.
#pragma once

#include <cstdint>
#include <vector>

#include "manifest.hpp"
#include "resize.hpp"

namespace srt {

struct FrameView {
  const uint8_t *data;
  int width, height;
  size_t stride;
  bool rgb;  // the frame's channel order is R, G, B
};

class Preprocessor {
 public:
  Preprocessor(const InputSpec &spec, Resize mode);
  // Writes the tensor (spec's shape, layout and dtype) into `tensor`.
  void run(const FrameView &frame, void *tensor);

 private:
  const uint8_t *fit(const FrameView &frame, size_t *stride);
  InputSpec spec_;
  Resize mode_;
  Resizer resizer_;
  std::vector<uint8_t> fitted_, scratch_;
};

}  // namespace srt
