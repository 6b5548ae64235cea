// Camera frame (8-bit BGR or RGB, any size and row pitch) -> the network's input tensor, exactly
// as the Python engine did it (srt_preprocess gives Python this very code): fit (stretch / letterbox / crop, OpenCV-exact bilinear),
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
// scale_x, scale_y: input pixels per frame pixel (1 when used as it is). What srt_fit reports.
struct FitGeometry {
  bool identity = false;
  int nw = 0, nh = 0, ox = 0, oy = 0;
  double scale_x = 1, scale_y = 1;
};

// The fit of a frame_width x frame_height frame to a width x height input by `mode`: the one
// place this arithmetic lives (the engine, srt_preprocess and srt_fit_geometry all call it).
FitGeometry fit_geometry(int frame_width, int frame_height, int width, int height, Resize mode);

class Preprocessor {
 public:
  Preprocessor(const InputSpec &spec, Resize mode);
  // Writes the tensor (spec's shape, layout and dtype) into `tensor`: to_tensor(fit(frame)).
  void run(const FrameView &frame, void *tensor);
  // The frame fitted to the input's height x width (3 bytes a pixel, the frame's channel order):
  // the frame's own pixels when it has that size already, else this preprocessor's buffer
  // (valid until the next call). *stride: its row pitch.
  const uint8_t *fit(const FrameView &frame, size_t *stride);
  // A fitted image (input height x width, row pitch `stride`, channel order rgb or BGR) -> the
  // tensor: colour order, host normalization, layout, dtype.
  void to_tensor(const uint8_t *fitted, size_t stride, bool rgb, void *tensor) const;
  FitGeometry geometry(int frame_width, int frame_height) const;
  // What preprocess_pixel needs for this frame; the resize tables are the host ones (the CUDA
  // path copies them to the device and points the params there).
  PreprocessParams params(const FrameView &frame);
  const InputSpec &spec() const { return spec_; }

 private:
  InputSpec spec_;
  Resize mode_;
  Resizer resizer_;
  std::vector<uint8_t> fitted_, scratch_;
};

}  // namespace srt
