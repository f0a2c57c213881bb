#include "train/checkpoints.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <xxhash.h>

#include "common/errors.hpp"

namespace keel {
namespace fs = std::filesystem;

namespace {

// fsync a file or folder; a failure (EIO, ENOSPC from delayed allocation) is an error.
void fsync_path(const fs::path &p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) throw UserError(fmt::format("cannot open {} to sync it: {}", p.string(), std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw UserError(fmt::format("cannot sync {} to disk: {} (disk full?)", p.string(), std::strerror(err)));
}

// Size and XXH3-64 of a file, read in 8 MB blocks.
std::pair<uint64_t, std::string> size_and_hash(const fs::path &p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw UserError("cannot read " + p.string());
  XXH3_state_t *st = XXH3_createState();
  XXH3_64bits_reset(st);
  std::vector<char> buf(8 << 20);
  uint64_t size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<size_t>(in.gcount());
    XXH3_64bits_update(st, buf.data(), n);
    size += n;
  }
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return {size, fmt::format("{:016x}", h)};
}

constexpr const char *kManifest = "manifest.json";

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%06lld", static_cast<long long>(step));
  return buf;
}

}  // namespace

std::vector<CheckpointRecord> list_checkpoints(const fs::path &dir) {
  std::vector<CheckpointRecord> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto &e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    // A checkpoint being replaced is kept as .old-step-N until its successor is in place: if the
    // successor never arrived (a crash between the renames), it is the checkpoint.
    const bool displaced = n.rfind(".old-step-", 0) == 0 && !fs::exists(dir / n.substr(5));
    if ((n.rfind("step-", 0) != 0 && !displaced) || !fs::exists(e.path() / "trainer_state.json")) continue;
    try {
      std::ifstream in(e.path() / "trainer_state.json");
      auto j = nlohmann::json::parse(in);
      out.push_back({j.at("step").get<int64_t>(), j.value("healthy", true), e.path()});
    } catch (const std::exception &) {
      continue;  // unreadable: not a complete checkpoint
    }
  }
  std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.step < b.step; });
  return out;
}

fs::path write_checkpoint(const fs::path &dir, int64_t step, const std::function<void(const fs::path &)> &fill) {
  fs::create_directories(dir);
  const fs::path tmp = dir / (".tmp-" + step_name(step)), final = dir / step_name(step);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  fill(tmp);
  // The manifest (size and hash of every file) is written last: loading checks it.
  nlohmann::json files = nlohmann::json::object();
  for (const auto &e : fs::directory_iterator(tmp)) {
    fsync_path(e.path());
    auto [size, hash] = size_and_hash(e.path());
    files[e.path().filename().string()] = {{"size", size}, {"xxh3", hash}};
  }
  {
    std::ofstream m(tmp / kManifest);
    m << nlohmann::json{{"files", files}}.dump(1) << "\n";
    m.close();
    if (!m) throw UserError(fmt::format("cannot write {} (disk full?)", (tmp / kManifest).string()));
  }
  fsync_path(tmp / kManifest);
  fsync_path(tmp);
  // Re-saving a step (the one a run resumed from): the old one stays until the new one is in.
  const fs::path old = dir / (".old-" + step_name(step));
  fs::remove_all(old);
  if (fs::exists(final)) fs::rename(final, old);
  fs::rename(tmp, final);
  fsync_path(dir);
  fs::remove_all(old);
  return final;
}

void prune_checkpoints(const fs::path &dir, int64_t keep_last, int64_t keep_step) {
  auto all = list_checkpoints(dir);
  int64_t last_healthy = -1;
  for (const auto &c : all)
    if (c.healthy) last_healthy = c.step;
  const int64_t n = static_cast<int64_t>(all.size());
  for (int64_t i = 0; i < n - keep_last; ++i)
    if (all[i].step != last_healthy && all[i].step != keep_step) fs::remove_all(all[i].path);
  // Temporary folders of interrupted writes.
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(".tmp-", 0) == 0 ||
        (e.path().filename().string().rfind(".old-", 0) == 0 && fs::exists(dir / e.path().filename().string().substr(5))))
      fs::remove_all(e.path());
}

void verify_checkpoint(const fs::path &dir) {
  const fs::path mf = dir / kManifest;
  if (!fs::exists(mf)) return;  // written by a keel before manifests
  nlohmann::json j = nlohmann::json::parse(std::ifstream(mf), nullptr, false);
  if (!j.is_object() || !j.contains("files") || !j["files"].is_object())
    throw UserError(mf.string() + ": not a checkpoint manifest");
  for (auto &[name, want] : j["files"].items()) {
    const fs::path f = dir / name;
    if (!fs::exists(f)) throw UserError(fmt::format("{}: {} is missing (the checkpoint is incomplete)", dir.string(), name));
    auto [size, hash] = size_and_hash(f);
    if (size != want.value("size", uint64_t{0}) || hash != want.value("xxh3", std::string()))
      throw UserError(fmt::format("{}: {} is damaged ({} bytes, hash {}; the manifest says {} bytes, hash {}): move this "
                                  "checkpoint aside to resume from the one before",
                                  dir.string(), name, size, hash, want.value("size", uint64_t{0}),
                                  want.value("xxh3", std::string())));
  }
}

void write_blobs(const fs::path &file, const std::vector<std::pair<std::string, std::vector<uint8_t>>> &blobs) {
  std::ofstream out(file, std::ios::binary);
  auto u64 = [&](uint64_t v) { out.write(reinterpret_cast<const char *>(&v), 8); };
  u64(blobs.size());
  for (const auto &[k, b] : blobs) {
    u64(k.size());
    out.write(k.data(), static_cast<std::streamsize>(k.size()));
    u64(b.size());
    out.write(reinterpret_cast<const char *>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  out.close();  // the flush on close is where a full disk shows
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

std::vector<std::pair<std::string, std::vector<uint8_t>>> read_blobs(const fs::path &file) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  std::ifstream in(file, std::ios::binary);
  if (!in) return out;
  const auto size = fs::file_size(file);
  auto u64 = [&] {
    uint64_t v = 0;
    in.read(reinterpret_cast<char *>(&v), 8);
    if (!in || v > size) throw UserError(file.string() + ": corrupt plugin state");
    return v;
  };
  for (uint64_t n = u64(), i = 0; i < n; ++i) {
    std::string k(u64(), '\0');
    in.read(k.data(), static_cast<std::streamsize>(k.size()));
    std::vector<uint8_t> b(u64());
    in.read(reinterpret_cast<char *>(b.data()), static_cast<std::streamsize>(b.size()));
    if (!in) throw UserError(file.string() + ": corrupt plugin state");
    out.emplace_back(std::move(k), std::move(b));
  }
  return out;
}

}  // namespace keel
