// Writing a file so that readers never see half of it: a temporary file beside it, then rename.
#pragma once
#include <filesystem>
#include <fstream>
#include <string>

#include "common/errors.hpp"

namespace keel {

inline void write_file_atomic(const std::filesystem::path &path, const std::string &text) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out) throw UserError("cannot write " + tmp.string());
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace keel
