#include "logging/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace keel::logging {

void init(int verbosity) {
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_level(verbosity > 0 ? spdlog::level::debug : spdlog::level::info);
  console->set_pattern("%^[%l]%$ %v");
  auto logger = std::make_shared<spdlog::logger>("keel", console);
  logger->set_level(spdlog::level::debug);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void add_run_log(const std::filesystem::path &run_dir) {
  auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>((run_dir / "keel.log").string());
  file->set_level(spdlog::level::debug);
  file->set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] %v");
  spdlog::default_logger()->sinks().push_back(file);
}

}  // namespace keel::logging
