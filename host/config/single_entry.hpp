// A pipeline of one [[pipeline]] entry built from a plugin name and `--set key=value` overrides, for
// commands that run one plugin on its own (keel score) the way `keel train` creates it.
#pragma once
#include <string>
#include <vector>

#include "config/pipeline_config.hpp"

namespace keel {

// `plugin`: a name or a path to a .so (relative to the current directory). `sets`: "key=value" with
// a TOML value (bare words are strings); "a.b=v" sets key b of table parameter a. Throws UserError.
PipelineConfig single_entry_config(const std::string &plugin, const std::vector<std::string> &sets);

}  // namespace keel
