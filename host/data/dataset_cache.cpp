#include "data/dataset_cache.hpp"

#include <cstring>
#include <fstream>

#include <spdlog/spdlog.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace keel {
namespace {

constexpr char kMagic[8] = {'K', 'E', 'E', 'L', 'D', 'S', '0', '1'};

template <class T>
void put(std::ofstream &o, const T &v) {
  o.write(reinterpret_cast<const char *>(&v), sizeof v);
}
template <class T>
bool get(std::ifstream &i, T &v) {
  return static_cast<bool>(i.read(reinterpret_cast<char *>(&v), sizeof v));
}

}  // namespace

std::optional<Dataset> read_dataset_cache(const fs::path &file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) return std::nullopt;
  Dataset d;
  DatasetStats &s = d.stats;
  uint64_t n = 0;
  if (!get(in, s.lines) || !get(in, s.examples) || !get(in, s.bad_lines) || !get(in, s.truncated) || !get(in, s.dropped) ||
      !get(in, s.tokens) || !get(in, n))
    return std::nullopt;
  d.examples.resize(n);
  d.prompts.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t len = 0, plen = 0;
    if (!get(in, len)) return std::nullopt;
    Example &e = d.examples[i];
    e.ids.resize(len);
    e.labels.resize(len);
    in.read(reinterpret_cast<char *>(e.ids.data()), len * sizeof(int32_t));
    in.read(reinterpret_cast<char *>(e.labels.data()), len * sizeof(int32_t));
    if (!get(in, plen)) return std::nullopt;
    d.prompts[i].resize(plen);
    if (!in.read(d.prompts[i].data(), plen)) return std::nullopt;
  }
  d.from_cache = true;
  return d;
}

void write_dataset_cache(const fs::path &file, const Dataset &d) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  fs::path tmp = file;
  tmp += ".tmp" + std::to_string(::getpid());
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    if (!o) {
      spdlog::warn("cannot write the data cache {}: continuing without it", file.string());
      return;
    }
    o.write(kMagic, 8);
    const DatasetStats &s = d.stats;
    put(o, s.lines), put(o, s.examples), put(o, s.bad_lines), put(o, s.truncated), put(o, s.dropped), put(o, s.tokens);
    put(o, static_cast<uint64_t>(d.examples.size()));
    for (size_t i = 0; i < d.examples.size(); ++i) {
      const Example &e = d.examples[i];
      put(o, static_cast<uint32_t>(e.ids.size()));
      o.write(reinterpret_cast<const char *>(e.ids.data()), e.ids.size() * sizeof(int32_t));
      o.write(reinterpret_cast<const char *>(e.labels.data()), e.labels.size() * sizeof(int32_t));
      put(o, static_cast<uint32_t>(d.prompts[i].size()));
      o.write(d.prompts[i].data(), d.prompts[i].size());
    }
    o.flush();
    if (!o) {
      spdlog::warn("cannot write the data cache {}: continuing without it", file.string());
      fs::remove(tmp, ec);
      return;
    }
  }
  fs::rename(tmp, file, ec);
  if (ec) {
    spdlog::warn("cannot write the data cache {} ({}): continuing without it", file.string(), ec.message());
    fs::remove(tmp, ec);
  }
}

}  // namespace keel
