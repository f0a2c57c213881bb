// Checkpoints of a run: runs/<name>/checkpoints/step-NNNNNN/, each an HF model folder plus the
// trainer's state (trainer_state.json, optimizer.pt, rng.pt, plugin_state.bin). Written into a
// temporary folder, fsynced, then renamed, so a crash never leaves a half checkpoint that looks whole;
// manifest.json records every file's size and hash, and loading checks them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace keel {

struct CheckpointRecord {
  int64_t step = 0;     // optimizer steps completed
  bool healthy = true;  // no alarm active at its last evaluation
  std::filesystem::path path;
};

// Complete checkpoints under dir, oldest first (temporary folders are not listed).
std::vector<CheckpointRecord> list_checkpoints(const std::filesystem::path &dir);

// Creates dir/.tmp-step-NNNNNN, lets `fill` write into it, fsyncs every file, renames it to
// dir/step-NNNNNN (replacing one of that name). Returns the final path.
std::filesystem::path write_checkpoint(const std::filesystem::path &dir, int64_t step,
                                       const std::function<void(const std::filesystem::path &)> &fill);

// Checks a checkpoint against its manifest.json (size and XXH3 of every file, written last by
// write_checkpoint); throws UserError naming a missing or damaged file. Older checkpoints without
// a manifest pass.
void verify_checkpoint(const std::filesystem::path &dir);

// Removes all but the newest `keep_last`, the newest healthy one and the one of step `keep_step`.
void prune_checkpoints(const std::filesystem::path &dir, int64_t keep_last, int64_t keep_step = -1);

// Named byte blobs in one file (plugin states).
void write_blobs(const std::filesystem::path &file, const std::vector<std::pair<std::string, std::vector<uint8_t>>> &blobs);
std::vector<std::pair<std::string, std::vector<uint8_t>>> read_blobs(const std::filesystem::path &file);

}  // namespace keel
