#include "tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "error.hpp"

namespace srt {

std::string join_shape(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16; }

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) mant <<= 1, --exp;
      bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = x & 0x7FFFFFu;
  if (((x >> 23) & 0xFF) == 0xFF) return static_cast<uint16_t>(sign | 0x7C00u | (mant ? 0x200u : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;
  return static_cast<uint16_t>(half);
}

// Any float output -> float32 (float16 widened).
void to_float(const void *src, DType t, size_t n, float *dst) {
  if (t == DType::F32) {
    std::memcpy(dst, src, n * 4);
  } else if (t == DType::F16) {
    const uint16_t *s = static_cast<const uint16_t *>(src);
    for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(s[i]);
  } else {
    fail(SRT_ERROR_UNSUPPORTED, std::string("expected a float tensor, got ") + dtype_name(t));
  }
}

// float32 -> a float input tensor of dtype t.
void from_float(const float *src, size_t n, DType t, void *dst) {
  if (t == DType::F32) {
    std::memcpy(dst, src, n * 4);
  } else if (t == DType::F16) {
    uint16_t *d = static_cast<uint16_t *>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = float_to_half(src[i]);
  } else {
    fail(SRT_ERROR_UNSUPPORTED, std::string("expected a float input, got ") + dtype_name(t));
  }
}

namespace {

template <typename T>
inline uint8_t to_u8_int(T v) { return static_cast<uint8_t>(static_cast<int64_t>(v)); }  // numpy astype(uint8) wraps

inline uint8_t to_u8_float(float v) { return std::isfinite(v) ? static_cast<uint8_t>(static_cast<int64_t>(v)) : 0; }

// A class-map output of any of the dtypes exports produce (uint8, int32, int64, float) -> uint8.
void to_class_map(const void *src, DType t, size_t n, uint8_t *dst) {
  switch (t) {
    case DType::U8: std::memcpy(dst, src, n); return;
    case DType::I32: {
      const int32_t *s = static_cast<const int32_t *>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = to_u8_int(s[i]);
      return;
    }
    case DType::I64: {
      const int64_t *s = static_cast<const int64_t *>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = to_u8_int(s[i]);
      return;
    }
    case DType::F32: {
      const float *s = static_cast<const float *>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = to_u8_float(s[i]);
      return;
    }
    case DType::F16: {
      const uint16_t *s = static_cast<const uint16_t *>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = to_u8_float(half_to_float(s[i]));
      return;
    }
  }
}

// Logits (1, C, H, W) -> uint8 argmax over C (the first maximum, as numpy.argmax). scratch and
// best keep their storage from frame to frame: no allocation once the first frame has run.
void argmax(const void *src, DType t, int channels, size_t plane, uint8_t *dst, std::vector<float> &scratch,
            std::vector<float> &best) {
  const float *s;
  if (t == DType::F32) {
    s = static_cast<const float *>(src);
  } else {
    scratch.resize(static_cast<size_t>(channels) * plane);
    to_float(src, t, scratch.size(), scratch.data());
    s = scratch.data();
  }
  // A NaN or Inf logit has no argmax: a class map made around it would be a wrong answer given as
  // a success (a broken FP16/INT8 plan shows up so). All-ones exponent bits: integer ops, vectorized.
  uint32_t non_finite = 0;
  for (size_t i = 0, n = static_cast<size_t>(channels) * plane; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, s + i, 4);
    non_finite |= (bits & 0x7F800000u) == 0x7F800000u;
  }
  if (non_finite) fail(SRT_ERROR_BACKEND, "the model's logits hold NaN or Inf: no class map for this frame");
  best.assign(s, s + plane);
  std::fill(dst, dst + plane, 0);
  for (int c = 1; c < channels; ++c) {
    const float *p = s + static_cast<size_t>(c) * plane;
    for (size_t i = 0; i < plane; ++i)
      if (p[i] > best[i]) best[i] = p[i], dst[i] = static_cast<uint8_t>(c);
  }
}

}  // namespace

void MapOutput::bind(const TensorSpec *class_map, const TensorSpec *logits_spec, const std::string &where) {
  if (class_map) {
    spec = class_map;
    if (spec->shape.size() < 2) fail(SRT_ERROR_MANIFEST, where + ": class_map output must be (1, H, W)");
  } else if (logits_spec) {
    spec = logits_spec, logits = true;
    if (spec->shape.size() != 4) fail(SRT_ERROR_MANIFEST, where + ": logits output must be (1, C, H, W)");
    channels = static_cast<int>(spec->shape[1]);
    if (channels > 256) fail(SRT_ERROR_UNSUPPORTED, where + ": more than 256 classes do not fit a uint8 class map");
  } else {
    fail(SRT_ERROR_MANIFEST, where + ": no output with meaning 'class_map' or 'logits'");
  }
  height = static_cast<int>(spec->shape[spec->shape.size() - 2]);
  width = static_cast<int>(spec->shape.back());
  slot_bytes = spec->count() / static_cast<size_t>(spec->shape[0]) * dtype_size(spec->dtype);
}

void MapOutput::decode(Backend &backend, size_t slot, uint8_t *dst, std::vector<float> &scratch) {
  const void *src = static_cast<const char *>(backend.buffer(spec->name, false)) + slot * slot_bytes;
  size_t plane = static_cast<size_t>(height) * width;
  if (logits) argmax(src, spec->dtype, channels, plane, dst, scratch, best_);
  else to_class_map(src, spec->dtype, plane, dst);
}

}  // namespace srt
