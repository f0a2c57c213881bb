// keel train: the training loop (ARCHITECTURE.md §2, issue 5). Everything a technique decides
// lives in the pipeline's plugins; the loop calls their hooks in order and guarantees the rest:
// checkpoints, exact resume, rollback, logs.
#pragma once
#include <string>

#include "config/pipeline_config.hpp"
#include "plugin_host/registry.hpp"

namespace keel {

struct TrainOptions {
  bool resume = false;
  bool progress = true;  // a progress bar when stderr is a terminal
};

// Runs the pipeline; returns the exit code (0, or 1 after a stop for non-finite steps).
int run_training(const PipelineConfig &config, const PluginRegistry &registry, const TrainOptions &options);

}  // namespace keel
