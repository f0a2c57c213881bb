// Logging: spdlog to the console (stderr) and, once a run directory exists, to runs/<name>/keel.log.
#pragma once
#include <filesystem>

#include <spdlog/spdlog.h>

namespace keel::logging {

// Sets up the console logger; `verbosity` 0 = info, 1 = debug (which includes the hook trace).
void init(int verbosity);
// Adds a file sink in the run directory (debug level and up).
void add_run_log(const std::filesystem::path &run_dir);

}  // namespace keel::logging
