// The core's one way to say something outside a status: srt_set_log_callback's hook, or stderr.
// TensorRT's ILogger (backend_tensorrt.cpp) and OpenVINO's log callback speak through it too.
#pragma once

#include <cstdint>

#include "swiftrt.h"

namespace srt {

// Sends one message (a C string, no newline needed) to the caller's hook, else warnings and
// errors to stderr as "[swiftrt] message" ("[<source>] ..." when source is given).
void log(int32_t severity, const char *message, const char *source = nullptr) noexcept;

// Installs the hook (fn NULL: the default); tells the backends compiled in.
void set_log_callback(srt_log_fn fn, void *user) noexcept;

// Whether a caller's hook is installed (backends that log through their own default otherwise).
bool log_callback_set() noexcept;

}  // namespace srt
