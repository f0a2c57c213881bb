// The pipeline file (ARCHITECTURE.md §3): TOML++ parsing, `--set key=value` overrides, the host's
// own sections checked against a schema (the same keel_param_spec_t mechanism plugins use), and
// the [[pipeline]] entries with where each key came from, for one-line errors.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <toml++/toml.h>

namespace keel {

struct PipelineEntry {
  std::string plugin;     // a plugin name, or a path to a .so
  bool enabled = true;    // `enabled = false` keeps an entry in the file but out of the run
  toml::table params;     // every other key, as written (the host picks remedy keys off later)
  std::string where;      // "file:line:col" of the entry
  std::map<std::string, std::string> key_where;  // "file:line:col" of each key, or "--set"
};

struct PipelineConfig {
  std::filesystem::path file;
  toml::table doc;  // host sections, overrides applied, defaults filled in
  std::vector<PipelineEntry> entries;

  std::string run_name() const;
  std::filesystem::path run_dir() const;  // <run.output_dir>/<run.name>
  // "file:line:col" of a node, or "--set" for a value that came from the command line
  std::string where(const toml::node &node) const;
};

// Reads and checks a pipeline file. Throws UserError with file:line:col on any problem.
PipelineConfig load_pipeline_config(const std::filesystem::path &file,
                                    const std::vector<std::string> &overrides);

// Parses the right side of --set k=v: a TOML value, or else the raw text as a string.
toml::table parse_override_value(const std::string &text);  // {"v": value}

}  // namespace keel
