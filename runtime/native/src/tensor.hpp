// Tensor values as the families read and write them: float16 <-> float32, class maps of any
// exported dtype -> uint8, logits -> argmax. Shared by every task (src/tasks/): one copy of the
// arithmetic numpy did in the Python runtime.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backend.hpp"
#include "manifest.hpp"

namespace srt {

std::string join_shape(const std::vector<int64_t> &shape);  // "[1, 3, 4]" for messages
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);  // round to nearest even, as numpy's astype(float16)
bool is_float(DType t);           // float16 or float32
// Any float output -> float32 (float16 widened); another dtype: SRT_ERROR_UNSUPPORTED.
void to_float(const void *src, DType t, size_t n, float *dst);
// float32 -> a float input tensor of dtype t.
void from_float(const float *src, size_t n, DType t, void *dst);

// A class map (uint8/int/float) or logits output, decoded into `dst` (H*W bytes).
struct MapOutput {
  const TensorSpec *spec = nullptr;
  bool logits = false;
  int height = 0, width = 0, channels = 0;

  // The class_map output, else the logits one; `where` names the manifest in messages.
  void bind(const TensorSpec *class_map, const TensorSpec *logits_spec, const std::string &where);
  // Batch item `slot`'s map (a batch-N model's output holds N of them, one after another).
  void decode(Backend &backend, size_t slot, uint8_t *dst, std::vector<float> &scratch);

  size_t slot_bytes = 0;  // one batch item of the output

 private:
  std::vector<float> best_;
};

}  // namespace srt
