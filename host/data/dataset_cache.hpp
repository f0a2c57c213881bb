// The on-disk cache of a tokenised dataset: one binary file per (source contents, tokenizer,
// template, settings, seq_len), written to a temporary name and renamed so a crash never leaves
// a half file that looks whole.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include "data/dataset.hpp"

namespace keel {

std::optional<Dataset> read_dataset_cache(const std::filesystem::path &file);
void write_dataset_cache(const std::filesystem::path &file, const Dataset &d);

}  // namespace keel
