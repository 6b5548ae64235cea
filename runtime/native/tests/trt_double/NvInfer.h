// Test double of TensorRT 10's runtime interfaces, as much as src/backend_tensorrt.cpp uses (the
// named-tensor API: NV_TENSORRT_MAJOR 10). Objects are counted while alive; the test makes any
// step fail as TensorRT would (a null object, false) and checks that a failed open frees all.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda_runtime_api.h"

#define NV_TENSORRT_MAJOR 10
#define NV_TENSORRT_MINOR 3
#define NV_TENSORRT_PATCH 0

namespace nvinfer1 {

enum class DataType : int32_t { kFLOAT = 0, kHALF = 1, kINT8 = 2, kINT32 = 3, kBOOL = 4, kUINT8 = 5, kFP8 = 6,
                                kBF16 = 7, kINT64 = 8, kINT4 = 9 };
enum class TensorIOMode : int32_t { kNONE = 0, kINPUT = 1, kOUTPUT = 2 };

struct Dims {
  static constexpr int32_t MAX_DIMS = 8;
  int32_t nbDims;
  int64_t d[MAX_DIMS];
};

class ILogger {
 public:
  enum class Severity : int32_t { kINTERNAL_ERROR = 0, kERROR = 1, kWARNING = 2, kINFO = 3, kVERBOSE = 4 };
  virtual void log(Severity severity, char const *msg) noexcept = 0;
  virtual ~ILogger() = default;
};

class IExecutionContext {
 public:
  virtual ~IExecutionContext() noexcept;
  bool setTensorAddress(char const *tensorName, void *data) noexcept;
  bool enqueueV3(cudaStream_t stream) noexcept;
};

class ICudaEngine {
 public:
  virtual ~ICudaEngine() noexcept;
  IExecutionContext *createExecutionContext() noexcept;
  int32_t getNbIOTensors() const noexcept;
  char const *getIOTensorName(int32_t index) const noexcept;
  TensorIOMode getTensorIOMode(char const *tensorName) const noexcept;
  Dims getTensorShape(char const *tensorName) const noexcept;
  DataType getTensorDataType(char const *tensorName) const noexcept;
};

class IRuntime {
 public:
  virtual ~IRuntime() noexcept;
  ICudaEngine *deserializeCudaEngine(void const *blob, std::size_t size) noexcept;
};

IRuntime *createInferRuntime(ILogger &logger) noexcept;

}  // namespace nvinfer1

extern "C" int32_t getInferLibVersion() noexcept;
