// keel ablate GRID.toml: a base pipeline and named variants that remove, add or change plugins and
// parameters, each run for every seed as its own `keel train` process (a crash loses one run, not
// the grid), finished runs skipped (resumable), and one report over them all.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <toml++/toml.h>

namespace keel {

struct AblationRun {
  std::string name;                   // <variant>-s<seed>
  std::filesystem::path pipeline;     // the variant's pipeline file, written by plan_ablation
  std::vector<std::string> sets;      // --set arguments for keel train
  std::filesystem::path run_dir;
};

struct AblationPlan {
  std::filesystem::path output_dir;
  std::vector<AblationRun> runs;
};

// Reads the grid, writes each variant's pipeline file into output_dir, returns the runs in order.
// Throws UserError (file:line:col) on a bad grid.
// A non-empty `output_dir` replaces the grid's.
AblationPlan plan_ablation(const std::filesystem::path &grid, const std::vector<std::string> &extra_sets,
                           const std::filesystem::path &output_dir = {});

// True when the run directory holds a finished run (its summary row and final model).
bool run_finished(const std::filesystem::path &run_dir);

}  // namespace keel
