#include "checkpoint/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/errors.hpp"

namespace keel {
namespace fs = std::filesystem;

namespace {

torch::Dtype to_torch(const std::string &d) {
  if (d == "F32") return torch::kFloat;
  if (d == "BF16") return torch::kBFloat16;
  return torch::kHalf;
}

}  // namespace

const char *safetensors_dtype(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat: return "F32";
    case torch::kBFloat16: return "BF16";
    case torch::kHalf: return "F16";
    default: throw UserError(std::string("cannot save dtype ") + c10::toString(dtype) + " to safetensors");
  }
}

SafetensorsFile::SafetensorsFile(const fs::path &path) : path_(path) {
  const std::string f = path.string();
  auto bad = [&](const std::string &why) { return UserError(f + ": " + why); };
  int fd = ::open(f.c_str(), O_RDONLY);
  if (fd < 0) throw bad("cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw bad("cannot stat");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw bad("not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw bad("truncated: shorter than the 8-byte header length");
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw bad("cannot map");
  }
  try {
    SafetensorsHeader h = parse_safetensors_header(static_cast<const uint8_t *>(map_), size_, f);
    data_ = static_cast<const uint8_t *>(map_) + h.data_offset;
    entries_ = std::move(h.entries);
  } catch (...) {
    ::munmap(map_, size_);  // the destructor does not run for a constructor that throws
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

torch::Tensor SafetensorsFile::view(const std::string &name) const {
  const SafetensorsEntry &e = entries_.at(name);
  // from_blob needs a non-const pointer; the mapping is read-only and the tensor is only copied from.
  return torch::from_blob(const_cast<uint8_t *>(data_ + e.begin), e.shape,
                          torch::TensorOptions().dtype(to_torch(e.dtype)));
}

SafetensorsSet::SafetensorsSet(const fs::path &dir) {
  const fs::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  std::vector<fs::path> files;
  if (fs::exists(index)) {
    std::ifstream in(index, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const std::string &fname : parse_safetensors_index(text, index.string())) files.push_back(dir / fname);
  } else if (fs::exists(single)) {
    files.push_back(single);
  } else {
    throw UserError(dir.string() + ": no model.safetensors or model.safetensors.index.json");
  }
  for (const fs::path &f : files) {
    files_.push_back(std::make_unique<SafetensorsFile>(f));
    for (const auto &[name, e] : files_.back()->entries()) {
      if (where_.count(name)) throw UserError(f.string() + ": tensor '" + name + "' also appears in another shard");
      where_[name] = files_.size() - 1;
    }
  }
}

const SafetensorsEntry &SafetensorsSet::entry(const std::string &name) const {
  return files_[where_.at(name)]->entries().at(name);
}
torch::Tensor SafetensorsSet::view(const std::string &name) const { return files_[where_.at(name)]->view(name); }
std::string SafetensorsSet::file_of(const std::string &name) const { return files_[where_.at(name)]->path().string(); }
std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  for (const auto &[n, i] : where_) out.push_back(n);
  return out;
}

void write_safetensors_file(const fs::path &path, const std::vector<std::pair<std::string, torch::Tensor>> &tensors) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  h["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  std::vector<torch::Tensor> cpu;
  for (const auto &[name, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    h[name] = {{"dtype", safetensors_dtype(c.scalar_type())},
               {"shape", std::vector<int64_t>(c.sizes().begin(), c.sizes().end())},
               {"data_offsets", {off, off + nbytes}}};
    off += nbytes;
    cpu.push_back(c);
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // data aligned to 8 bytes, as the reference does
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  uint64_t n = header.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const auto &c : cpu)
    out.write(static_cast<const char *>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
  out.close();  // checked after the flush: a full disk shows here
  if (!out) throw UserError("cannot write " + path.string() + " (disk full?)");
}

void save_safetensors(const fs::path &dir, const std::vector<std::pair<std::string, torch::Tensor>> &tensors,
                      uint64_t max_shard_bytes) {
  std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shards(1);
  uint64_t cur = 0, total = 0;
  for (const auto &nt : tensors) {
    const uint64_t b = static_cast<uint64_t>(nt.second.numel()) * nt.second.element_size();
    if (cur > 0 && cur + b > max_shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(nt);
    cur += b;
    total += b;
  }
  fs::remove(dir / "model.safetensors");
  fs::remove(dir / "model.safetensors.index.json");
  if (shards.size() == 1) {
    write_safetensors_file(dir / "model.safetensors", shards[0]);
    return;
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = nlohmann::ordered_json::object();
  char buf[64];
  for (size_t i = 0; i < shards.size(); ++i) {
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    write_safetensors_file(dir / buf, shards[i]);
    for (const auto &[name, t] : shards[i]) index["weight_map"][name] = buf;
  }
  std::ofstream(dir / "model.safetensors.index.json") << index.dump(2) << "\n";
}

}  // namespace keel
