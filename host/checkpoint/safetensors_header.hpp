// The untrusted part of a safetensors file, checked without libtorch (so it can be fuzzed alone):
// the u64 little-endian header length, the JSON header {name: {dtype, shape, data_offsets}}, and
// model.safetensors.index.json's weight_map.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

struct SafetensorsEntry {
  std::string dtype;  // F32 | BF16 | F16
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // offsets into the data section
};

struct SafetensorsHeader {
  std::map<std::string, SafetensorsEntry> entries;
  uint64_t data_offset = 0;  // where the data section starts in the file
};

// Checks the first `size` bytes of a whole file: every entry has a supported dtype, a shape that
// matches its byte count, offsets inside the data section, and no two entries overlap. Throws
// UserError("<file>: <tensor>: <reason>").
SafetensorsHeader parse_safetensors_header(const uint8_t *bytes, size_t size, const std::string &file);

// The shard file names an index names, each once, in first-seen order. Throws UserError("<file>: ...")
// for bad JSON, no weight_map, or a name that is not a plain file name.
std::vector<std::string> parse_safetensors_index(std::string_view text, const std::string &file);

}  // namespace keel
