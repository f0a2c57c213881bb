// safetensors files: memory-mapped reading with the header treated as untrusted input, and writing
// (single file or shards with model.safetensors.index.json). Format: u64 little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}}, then the data.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "checkpoint/safetensors_header.hpp"

namespace keel {

// One mapped file. Tensors returned by view() borrow the mapping: copy them before it goes away.
class SafetensorsFile {
 public:
  // Maps and checks the file; throws UserError("<file>: <tensor>: <reason>") on anything amiss.
  explicit SafetensorsFile(const std::filesystem::path &path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile &) = delete;
  SafetensorsFile &operator=(const SafetensorsFile &) = delete;

  const std::map<std::string, SafetensorsEntry> &entries() const { return entries_; }
  torch::Tensor view(const std::string &name) const;  // CPU, the file's dtype, no copy
  const std::filesystem::path &path() const { return path_; }

 private:
  std::filesystem::path path_;
  void *map_ = nullptr;
  size_t size_ = 0;
  const uint8_t *data_ = nullptr;  // start of the data section
  std::map<std::string, SafetensorsEntry> entries_;
};

// All the tensors of a model folder: model.safetensors, or the shards an index names.
class SafetensorsSet {
 public:
  explicit SafetensorsSet(const std::filesystem::path &dir);
  bool has(const std::string &name) const { return where_.count(name) > 0; }
  const SafetensorsEntry &entry(const std::string &name) const;
  torch::Tensor view(const std::string &name) const;
  std::vector<std::string> names() const;
  std::string file_of(const std::string &name) const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;
};

// Writes named tensors (any device/dtype; written as they are) into dir: model.safetensors, or,
// when they exceed max_shard_bytes, model-0000i-of-0000n.safetensors plus the index.
void save_safetensors(const std::filesystem::path &dir,
                      const std::vector<std::pair<std::string, torch::Tensor>> &tensors,
                      uint64_t max_shard_bytes = UINT64_MAX);

// Writes one safetensors file (any device/dtype; written as they are).
void write_safetensors_file(const std::filesystem::path &path,
                            const std::vector<std::pair<std::string, torch::Tensor>> &tensors);

const char *safetensors_dtype(torch::Dtype dtype);

}  // namespace keel
