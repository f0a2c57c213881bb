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

constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MB, as the reference implementation

size_t dtype_size(const std::string &d) {
  if (d == "F32") return 4;
  if (d == "BF16" || d == "F16") return 2;
  return 0;
}

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
  const auto *bytes = static_cast<const uint8_t *>(map_);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > kMaxHeader) throw bad("header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > size_ - 8) throw bad("truncated: header length " + std::to_string(n) + " runs past the end of the file");
  data_ = bytes + 8 + n;
  const uint64_t data_size = size_ - 8 - n;
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(bytes + 8, bytes + 8 + n);
  } catch (const nlohmann::json::parse_error &e) {
    throw bad(std::string("header is not valid JSON: ") + e.what());
  }
  if (!h.is_object()) throw bad("header is not a JSON object");
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<std::string> range_names;
  for (auto &[name, e] : h.items()) {
    if (name == "__metadata__") continue;
    auto tbad = [&](const std::string &why) { return UserError(f + ": tensor '" + name + "': " + why); };
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      throw tbad("entry needs dtype, shape and data_offsets");
    if (!e["dtype"].is_string()) throw tbad("dtype is not a string");
    SafetensorsEntry ent;
    ent.dtype = e["dtype"].get<std::string>();
    const size_t es = dtype_size(ent.dtype);
    if (es == 0) throw tbad("dtype " + ent.dtype + " is not supported (F32, BF16, F16)");
    if (!e["shape"].is_array()) throw tbad("shape is not an array");
    uint64_t count = 1;
    for (const auto &d : e["shape"]) {
      if (!d.is_number_unsigned()) throw tbad("shape has a negative or non-integer dimension");
      uint64_t v = d.get<uint64_t>();
      if (v != 0 && count > UINT64_MAX / v / es) throw tbad("shape is too large");
      count *= v;
      ent.shape.push_back(static_cast<int64_t>(v));
    }
    const auto &o = e["data_offsets"];
    if (!o.is_array() || o.size() != 2 || !o[0].is_number_unsigned() || !o[1].is_number_unsigned())
      throw tbad("data_offsets must be two non-negative integers");
    ent.begin = o[0].get<uint64_t>();
    ent.end = o[1].get<uint64_t>();
    if (ent.begin > ent.end) throw tbad("data_offsets begin after they end");
    if (ent.end > data_size)
      throw tbad("data_offsets [" + std::to_string(ent.begin) + ", " + std::to_string(ent.end) +
                 ") run past the end of the data (" + std::to_string(data_size) + " bytes)");
    if (ent.end - ent.begin != count * es)
      throw tbad("holds " + std::to_string(ent.end - ent.begin) + " bytes but its shape and dtype need " +
                 std::to_string(count * es));
    ranges.emplace_back(ent.begin, ent.end);
    range_names.push_back(name);
    entries_.emplace(name, std::move(ent));
  }
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  for (size_t i = 1; i < order.size(); ++i)
    if (ranges[order[i]].first < ranges[order[i - 1]].second)
      throw bad("tensor '" + range_names[order[i]] + "' overlaps tensor '" + range_names[order[i - 1]] + "'");
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
    std::ifstream in(index);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error &e) {
      throw UserError(index.string() + ": not valid JSON: " + e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw UserError(index.string() + ": no weight_map object");
    for (auto &[name, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw UserError(index.string() + ": weight_map['" + name + "'] is not a file name");
      const std::string fname = file.get<std::string>();
      if (fname.find('/') != std::string::npos) throw UserError(index.string() + ": shard name '" + fname + "' must be a plain file name");
      if (std::find(files.begin(), files.end(), dir / fname) == files.end()) files.push_back(dir / fname);
    }
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
