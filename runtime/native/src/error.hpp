// The one exception type inside the core: a status number and one line of text.
// api.cpp turns it into the status returned through the C ABI and srt_last_error().
#pragma once

#include <stdexcept>
#include <string>

#include "swiftrt.h"

namespace srt {

class Error : public std::runtime_error {
 public:
  Error(srt_status status, const std::string &message) : std::runtime_error(message), status(status) {}
  srt_status status;
};

[[noreturn]] inline void fail(srt_status status, const std::string &message) { throw Error(status, message); }

}  // namespace srt
