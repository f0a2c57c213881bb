// A named data source ([data.<name>]) read into training examples: format detected per source,
// bad lines reported as file:line (or skipped and counted), over-long examples truncated or
// dropped, and the result cached on disk keyed by everything that could change it.
//
//   Dataset d = load_dataset("target", cfg["data"]["target"], tok, tmpl, 1024, "runs/x/cache");
//   d.examples[i].ids / .labels;  d.stats.bad_lines;  d.prompts[i]
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "data/example.hpp"

namespace keel {

struct DatasetStats {
  uint64_t lines = 0;      // non-blank lines (or .txt lines) read
  uint64_t examples = 0;   // examples kept
  uint64_t bad_lines = 0;  // skipped with skip_bad_lines = true
  uint64_t truncated = 0;  // cut to seq_len (overflow = "truncate")
  uint64_t dropped = 0;    // over seq_len with overflow = "drop", or left with no trained token by truncation
  uint64_t tokens = 0;     // tokens in the kept examples
};

struct Dataset {
  std::string name;
  std::vector<Example> examples;
  DatasetStats stats;
  // For each example, its prompt as the model sees it at generation time (template applied up to
  // the assistant header); "" for text examples.
  std::vector<std::string> prompts;
  bool from_cache = false;
};

// source_cfg: a resolved [data.<name>] table (path, format, train_on, skip_bad_lines, overflow;
// absent keys take their defaults). A relative path is taken from the working directory.
// cache_dir: where the tokenised data is cached ("" = no cache). Throws UserError ("file:line: why").
Dataset load_dataset(const std::string &name, const toml::table &source_cfg, const Tokenizer &tok,
                     const ChatTemplate &tmpl, int64_t seq_len, const std::filesystem::path &cache_dir);

}  // namespace keel
