// Plugin discovery: every *.so in the search path, in order --plugin-dir, KEEL_PLUGIN_PATH, the
// install/build tree (<dir of keel>/../lib/keel/plugins). The first library of a name wins.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "plugin_host/library.hpp"

namespace keel {

std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::filesystem::path> &cli_dirs);

class PluginRegistry {
 public:
  explicit PluginRegistry(std::vector<std::filesystem::path> search_path);

  struct Found {
    std::filesystem::path path;
    const PluginLibrary *library = nullptr;  // null when it failed to load
    std::string error;
    bool shadowed = false;                   // a library of the same name came earlier
  };
  const std::vector<Found> &found() const { return found_; }
  const std::vector<std::filesystem::path> &search_path() const { return path_; }

  // A plugin by name, or by path when `ref` names a file (contains '/' or ends in .so; relative
  // to `base_dir`). Throws UserError listing the known names.
  const PluginLibrary &resolve(const std::string &ref, const std::filesystem::path &base_dir = {}) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::filesystem::path> path_;
  std::vector<Found> found_;
};

}  // namespace keel
