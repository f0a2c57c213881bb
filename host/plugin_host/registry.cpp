#include "plugin_host/registry.hpp"

#include <algorithm>
#include <cstdlib>
#include <set>

#include <boost/dll/runtime_symbol_info.hpp>
#include <fmt/format.h>

#include "common/errors.hpp"

namespace keel {
namespace fs = std::filesystem;

std::vector<fs::path> plugin_search_path(const std::vector<fs::path> &cli_dirs) {
  std::vector<fs::path> out(cli_dirs.begin(), cli_dirs.end());
  if (const char *env = std::getenv("KEEL_PLUGIN_PATH")) {
    std::string s(env);
    for (size_t start = 0; start <= s.size();) {
      size_t colon = s.find(':', start);
      std::string part = s.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
      if (!part.empty()) out.emplace_back(part);
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  // The build tree and the install tree share one layout: bin/keel, lib/keel/plugins/.
  fs::path exe = boost::dll::program_location();
  out.push_back(exe.parent_path().parent_path() / "lib" / "keel" / "plugins");
  return out;
}

PluginRegistry::PluginRegistry(std::vector<fs::path> search_path) : path_(std::move(search_path)) {
  std::set<std::string> seen;
  for (const fs::path &dir : path_) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (const auto &e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".so") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path &f : files) {
      Found rec{f};
      try {
        rec.library = &load_plugin_library(f);
        rec.shadowed = !seen.insert(rec.library->name()).second;
      } catch (const UserError &e) {
        rec.error = e.what();
      }
      found_.push_back(std::move(rec));
    }
  }
}

std::vector<std::string> PluginRegistry::names() const {
  std::vector<std::string> out;
  for (const Found &f : found_)
    if (f.library && !f.shadowed) out.push_back(f.library->name());
  std::sort(out.begin(), out.end());
  return out;
}

const PluginLibrary &PluginRegistry::resolve(const std::string &ref, const fs::path &base_dir) const {
  if (ref.find('/') != std::string::npos || fs::path(ref).extension() == ".so") {
    fs::path p(ref);
    if (p.is_relative() && !base_dir.empty()) p = base_dir / p;
    return load_plugin_library(p);
  }
  for (const Found &f : found_)
    if (f.library && f.library->name() == ref) return *f.library;
  std::string known;
  for (const std::string &n : names()) known += (known.empty() ? "" : ", ") + n;
  throw UserError(fmt::format("unknown plugin '{}'. known plugins: {}", ref,
                              known.empty() ? "(none found; see --plugin-dir)" : known));
}

}  // namespace keel
