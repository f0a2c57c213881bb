// A temporary path of this test process: <tmp>/keel-tests-<pid>/keel-<name>, the folder removed when
// the process ends. ctest runs every test case as its own process, two at a time, so fixed paths
// let one case read the file another was writing (a flaky Self-BLEU check). The file name itself
// stays fixed: some tests read it back (a run is named after its pipeline file).
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

inline std::filesystem::path temp_path(const std::string &name) {
  struct Folder {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("keel-tests-" + std::to_string(::getpid()));
    Folder() { std::filesystem::create_directories(path); }
    ~Folder() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Folder folder;
  return folder.path / ("keel-" + name);
}
