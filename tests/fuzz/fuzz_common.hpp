// What the fuzz targets share: the real files they read beside the fuzzed input (KEEL_SHARED_DATA,
// set by CMakeLists.txt) and the rule every target checks: a hostile input may be refused with
// keel's own error types, never crash, hang, leak or throw anything else.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "common/errors.hpp"

namespace keel::fuzz {

inline std::string shared_data(const std::string &rel) {
  const char *env = std::getenv("KEEL_SHARED_DATA");
  return std::string(env ? env : KEEL_SHARED_DATA) + "/" + rel;
}

inline std::string_view as_text(const uint8_t *data, size_t size) {
  return {reinterpret_cast<const char *>(data), size};
}

// Anything but UserError (keel's "bad input" answer) escaping a parser is a finding.
template <class F>
void expect_user_error_or_success(F &&f) {
  try {
    f();
  } catch (const UserError &) {
  }
}

}  // namespace keel::fuzz
