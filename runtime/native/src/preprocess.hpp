// Camera frame (8-bit BGR or RGB, any size and row pitch) -> the network's input tensor, exactly
// as runtime/preprocess.py does it: fit (stretch / letterbox / crop, OpenCV-exact bilinear),
// colour order, optional host normalization (x * mul + add in float32), NHWC or NCHW, dtype.
#pragma once

#include <cstdint>
#include <vector>

#include "manifest.hpp"
#include "preprocess_kernel.hpp"
#include "resize.hpp"

namespace srt {

struct FrameView {
  const uint8_t *data;
  int width, height;
  size_t stride;
  bool rgb;                      // the frame's channel order is R, G, B
  bool device = false;           // data is CUDA device memory (SRT_MEMORY_CUDA)
  void *stream = nullptr;        // device frames: the caller's cudaStream_t (nullptr: the engine's)
};

// How a frame of one size is fitted to the input: used as it is, or resized to nw x nh and read
// at (x + ox, y + oy) (stretch: the input's size, letterbox: centred with bars, crop: centre cut).
struct FitGeometry {
  bool identity = false;
  int nw = 0, nh = 0, ox = 0, oy = 0;
};

class Preprocessor {
 public:
  Preprocessor(const InputSpec &spec, Resize mode);
  // Writes the tensor (spec's shape, layout and dtype) into `tensor`.
  void run(const FrameView &frame, void *tensor);
  FitGeometry geometry(int frame_width, int frame_height) const;
  // What preprocess_pixel needs for this frame; the resize tables are the host ones (the CUDA
  // path copies them to the device and points the params there).
  PreprocessParams params(const FrameView &frame);
  const InputSpec &spec() const { return spec_; }

 private:
  const uint8_t *fit(const FrameView &frame, size_t *stride);
  InputSpec spec_;
  Resize mode_;
  Resizer resizer_;
  std::vector<uint8_t> fitted_, scratch_;
};

}  // namespace srt
