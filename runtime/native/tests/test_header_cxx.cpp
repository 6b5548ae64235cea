// swiftrt.h from C++: the header compiles as C++ and the ABI links (no engine needed).
#include "swiftrt.h"

#include <cstdio>
#include <cstring>

int main() {
  srt_engine *engine = nullptr;
  srt_status s = srt_engine_open("/nonexistent/engine.onnx", nullptr, &engine);
  if (s != SRT_ERROR_NOT_FOUND || engine != nullptr || std::strlen(srt_last_error()) == 0) {
    std::fprintf(stderr, "unexpected: %s: %s\n", srt_status_string(s), srt_last_error());
    return 1;
  }
  struct srt_engine_info info;
  srt_frame frame;
  if (srt_engine_info_init(&info) != SRT_OK || info.struct_size != sizeof info) return 1;
  if (srt_frame_init(&frame) != SRT_OK || frame.struct_size != sizeof frame) return 1;
  if (srt_engine_info(nullptr, &info) != SRT_ERROR_INVALID_ARGUMENT) return 1;
  std::printf("%s\n", srt_version());
  return srt_abi_version() == SRT_ABI_VERSION ? 0 : 1;
}
