#include "log.hpp"

#include <cstdio>
#include <mutex>

namespace srt {
namespace {

// The hook and its user pointer change together: a reader never pairs one's fn with another's user.
std::mutex &hook_mutex() {
  static std::mutex m;
  return m;
}
srt_log_fn hook_fn = nullptr;
void *hook_user = nullptr;

}  // namespace

#ifdef SWIFTRT_WITH_OPENVINO
void route_openvino_log(bool to_hook) noexcept;  // backend_openvino.cpp
#endif

void log(int32_t severity, const char *message, const char *source) noexcept {
  srt_log_fn fn;
  void *user;
  {
    std::lock_guard<std::mutex> lock(hook_mutex());
    fn = hook_fn, user = hook_user;
  }
  if (!message) message = "";
  if (fn) {
    fn(severity, message, user);
    return;
  }
  if (severity <= SRT_LOG_WARNING) std::fprintf(stderr, "[%s] %s\n", source ? source : "swiftrt", message);
}

void set_log_callback(srt_log_fn fn, void *user) noexcept {
  {
    std::lock_guard<std::mutex> lock(hook_mutex());
    hook_fn = fn, hook_user = user;
  }
#ifdef SWIFTRT_WITH_OPENVINO
  route_openvino_log(fn != nullptr);
#endif
}

bool log_callback_set() noexcept {
  std::lock_guard<std::mutex> lock(hook_mutex());
  return hook_fn != nullptr;
}

}  // namespace srt
