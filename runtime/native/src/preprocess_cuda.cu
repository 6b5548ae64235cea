// The device side of DevicePreprocessor (preprocess_cuda.hpp). Compiled by nvcc against the CUDA
// toolkit's headers (make native-check, and the TensorRT build); it has NOT RUN ON A GPU: its
// arithmetic is preprocess_pixel, which tests/test_preprocess_kernel.cpp checks on the CPU.
#include <cuda_runtime_api.h>

#include <cstring>
#include <string>

#include "error.hpp"
#include "preprocess_cuda.hpp"

namespace srt {
namespace {

__global__ void preprocess_kernel(PreprocessParams p, void *tensor) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x < p.W && y < p.H) preprocess_pixel(p, x, y, tensor);
}

void check(cudaError_t status, const char *what) {
  if (status != cudaSuccess) fail(SRT_ERROR_BACKEND, std::string(what) + ": " + cudaGetErrorString(status));
}

size_t align(size_t n) { return (n + 255) & ~static_cast<size_t>(255); }

}  // namespace

void launch_preprocess(const PreprocessParams &p, void *device_tensor, void *stream) {
  const dim3 block(32, 8), grid((p.W + 31) / 32, (p.H + 7) / 8);
  preprocess_kernel<<<grid, block, 0, static_cast<cudaStream_t>(stream)>>>(p, device_tensor);
  check(cudaGetLastError(), "launching the preprocessing kernel");
}

DevicePreprocessor::~DevicePreprocessor() {
  if (tables_) cudaFree(tables_);
  if (staging_) cudaFreeHost(staging_);
}

void DevicePreprocessor::upload(const PreprocessParams &p, void *stream) {
  if (p.identity || p.area2) return;  // no tables needed
  const size_t xofs = sizeof(int) * 3 * p.nw, alpha = sizeof(int16_t) * 2 * p.nw;
  const size_t yofs = sizeof(int) * p.nh, beta = sizeof(int16_t) * 2 * p.nh;
  const size_t bytes = align(xofs) + align(alpha) + align(yofs) + align(beta);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (bytes > tables_bytes_) {
    if (tables_) check(cudaStreamSynchronize(s), "cudaStreamSynchronize");  // the old tables may be in use
    if (tables_) cudaFree(tables_), tables_ = nullptr;
    if (staging_) cudaFreeHost(staging_), staging_ = nullptr;
    tables_bytes_ = 0;
    check(cudaMalloc(&tables_, bytes), "cudaMalloc (resize tables)");
    check(cudaMallocHost(&staging_, bytes), "cudaMallocHost (resize tables)");
    tables_bytes_ = bytes;
  } else {
    check(cudaStreamSynchronize(s), "cudaStreamSynchronize");  // staging_ may still be read
  }
  char *host = static_cast<char *>(staging_), *dev = static_cast<char *>(tables_);
  size_t at = 0;
  auto put = [&](const void *src, size_t n) {
    std::memcpy(host + at, src, n);
    void *where = dev + at;
    at += align(n);
    return where;
  };
  device_.xofs = static_cast<const int *>(put(p.xofs, xofs));
  device_.alpha = static_cast<const int16_t *>(put(p.alpha, alpha));
  device_.yofs = static_cast<const int *>(put(p.yofs, yofs));
  device_.beta = static_cast<const int16_t *>(put(p.beta, beta));
  check(cudaMemcpyAsync(tables_, staging_, at, cudaMemcpyHostToDevice, s), "copying the resize tables");
}

void DevicePreprocessor::run(Preprocessor &host, const FrameView &frame, void *device_tensor, void *stream) {
  PreprocessParams p = host.params(frame);  // host tables; the frame pointer is the device one
  const bool same = frame.width == sw_ && frame.height == sh_ && p.nw == nw_ && p.nh == nh_;
  const int *xofs = device_.xofs;
  const int16_t *alpha = device_.alpha, *beta = device_.beta;
  const int *yofs = device_.yofs;
  if (!same) {
    upload(p, stream);
    sw_ = frame.width, sh_ = frame.height, nw_ = p.nw, nh_ = p.nh;
    xofs = device_.xofs, alpha = device_.alpha, yofs = device_.yofs, beta = device_.beta;
  }
  device_ = p;
  device_.xofs = xofs, device_.alpha = alpha, device_.yofs = yofs, device_.beta = beta;
  launch_preprocess(device_, device_tensor, stream);
}

}  // namespace srt
