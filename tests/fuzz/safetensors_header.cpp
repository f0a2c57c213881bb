// The safetensors header (a whole file's bytes) and model.safetensors.index.json (the same bytes
// as index text): refused with UserError or accepted with every entry inside the data.
#include "checkpoint/safetensors_header.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  keel::fuzz::expect_user_error_or_success([&] {
    const keel::SafetensorsHeader h = keel::parse_safetensors_header(data, size, "fuzz.safetensors");
    for (const auto &[name, e] : h.entries)
      if (e.begin > e.end || h.data_offset + e.end > size) std::abort();  // accepted but out of bounds
  });
  keel::fuzz::expect_user_error_or_success(
      [&] { keel::parse_safetensors_index(keel::fuzz::as_text(data, size), "fuzz.index.json"); });
  return 0;
}
