// Bilinear resize of 8-bit, 3-channel images, bit-exact with OpenCV's cv::resize(INTER_LINEAR).
// Why bit-exact: the Python runtime fits frames with cv2.resize; the native core must feed the
// network the same pixels, or the two runtimes disagree at class borders.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace srt {

// The coefficients of one (source size -> destination size) resize, as cv::resize computes them.
// The host resizer and the CUDA kernel (preprocess_kernel.hpp) read the same tables.
struct ResizeTables {
  int sw = -1, sh = -1, dw = -1, dh = -1;
  bool area2 = false;          // exact 2x downscale: OpenCV switches to its INTER_AREA fast path
  int xmax = 0;                // first destination column whose right neighbour is out of the image
  std::vector<int> xofs;       // per destination element (x*3+c): source element index
  std::vector<int16_t> alpha;  // per destination column: two fixed-point weights (sum 2048)
  std::vector<int> yofs;       // per destination row: upper source row (may be -1)
  std::vector<int16_t> beta;   // per destination row: two fixed-point weights
};

class Resizer {
 public:
  // src: sh rows of sw*3 bytes (row pitch sstride); dst: dh rows of dw*3 bytes (pitch dstride).
  void resize(const uint8_t *src, int sw, int sh, size_t sstride, uint8_t *dst, int dw, int dh, size_t dstride);
  // The tables for this geometry (computed when it changes, kept otherwise).
  const ResizeTables &tables(int sw, int sh, int dw, int dh);

 private:
  void hline(const uint8_t *row, int32_t *out) const;

  ResizeTables t_;
  std::vector<int32_t> rows_[2];
  int cached_[2] = {-2, -2};  // source rows in rows_: valid within one resize() call only
};

}  // namespace srt
