// SHA-256 of a file: the core checks every artifact against its manifest before loading it.
#pragma once
#include <string>

namespace srt {
// Lower-case hex digest; throws srt::Error(SRT_ERROR_NOT_FOUND) when the file cannot be read.
std::string sha256_file(const std::string &path);
// Lower-case hex digest of bytes in memory.
std::string sha256_bytes(const std::string &bytes);
}  // namespace srt
