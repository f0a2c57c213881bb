// keel train PIPELINE.toml [--set k=v]... [--resume] [--dry-run]
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "common/errors.hpp"
#include "common/files.hpp"
#include "config/pipeline_config.hpp"
#include "logging/log.hpp"
#include "plugin_host/pipeline.hpp"
#include "plugin_host/registry.hpp"
#include "train/trainer.hpp"

namespace fs = std::filesystem;

namespace keel {
namespace {
// A dry run knows the configured data sources by name (their files are not read).
struct DryRunServices : HostServices {
  std::vector<std::string> names;
  std::vector<keel_source_info_t> sources() override {
    std::vector<keel_source_info_t> out;
    for (const auto &n : names) out.push_back({sizeof(keel_source_info_t), n.c_str(), 0, 0, 0});
    return out;
  }
};

// What a dry run checks, and a real run checks before it loads a model (minutes, for a large one):
// every plugin created with its parameters, and a data plugin wherever there are several sources.
std::unique_ptr<PluginPipeline> check_pipeline(const PipelineConfig &cfg, const PluginRegistry &reg, DryRunServices &services) {
  if (const toml::table *data = cfg.doc["data"].as_table())
    for (auto &&[name, src] : *data) services.names.emplace_back(name.str());
  services.context = "a dry run (no model is loaded)";
  services.total_steps = *cfg.doc["run"]["steps"].value<int64_t>();
  services.seed = static_cast<uint64_t>(*cfg.doc["run"]["seed"].value<int64_t>());
  services.base_lr = *cfg.doc["optim"]["lr"].value<double>();
  services.run_dir = cfg.run_dir().string();
  auto pipeline = std::make_unique<PluginPipeline>(cfg, reg, services);
  if (services.names.size() > 1 && !pipeline->data_plugin())
    throw UserError(fmt::format("{}: {} data sources ([data.{}], ...) but no data plugin to mix them: add one, e.g. "
                                "[[pipeline]] plugin = \"data_mix\" with sources = {{ {} = 0.9, {} = 0.1 }}",
                                cfg.file.string(), services.names.size(), services.names[0], services.names[0],
                                services.names[1]));
  return pipeline;
}

int cmd_train(const std::string &file, const std::vector<std::string> &sets, const std::vector<std::string> &dirs,
              bool resume, bool dry_run, bool no_progress, bool overwrite) {
  PipelineConfig cfg = load_pipeline_config(file, sets);
  std::vector<fs::path> cli(dirs.begin(), dirs.end());
  PluginRegistry reg(plugin_search_path(cli));
  DryRunServices services;
  auto checked = check_pipeline(cfg, reg, services);
  if (!dry_run) {
    checked.reset();
    return run_training(cfg, reg, TrainOptions{resume, !no_progress, overwrite});
  }
  PluginPipeline &pipeline = *checked;

  fs::create_directories(cfg.run_dir());
  logging::add_run_log(cfg.run_dir());
  std::ostringstream resolved;
  resolved << "# resolved by keel: every default filled in\n" << pipeline.resolved_config() << "\n";
  write_file_atomic(cfg.run_dir() / "config.toml", resolved.str());

  std::cout << fmt::format("pipeline {}: {} plugin(s), run directory {}\n", file, pipeline.plugins().size(),
                           cfg.run_dir().string());
  for (size_t i = 0; i < pipeline.plugins().size(); ++i) {
    const PluginInstance &p = *pipeline.plugins()[i];
    std::cout << fmt::format("  {}. {} ({} {}) hooks: {}  [{}]\n", i + 1, p.name, kind_name(p.kind()),
                             p.library->descriptor->version, hook_names(p.library->descriptor->hooks),
                             p.library->path.string());
  }
  pipeline.on_start();
  // The LR the chain gives at a few points of the run, and at the end.
  const int64_t steps = services.total_steps;
  std::cout << fmt::format("lr schedule (base {:g}):\n", services.base_lr);
  for (int k = 0; k <= 10; ++k) {
    int64_t step = std::min<int64_t>(steps - 1, steps * k / 10);
    services.step = step;
    std::cout << fmt::format("  step {:>8}  lr {:.6e}\n", step, pipeline.lr(step, services.base_lr));
    if (step == steps - 1) break;
  }
  pipeline.on_end();
  std::cout << fmt::format("dry run ok; resolved config written to {}\n", (cfg.run_dir() / "config.toml").string());
  return 0;
}

}  // namespace

Command add_train_command(CLI::App &app) {
  struct Opts {
    std::string file;
    std::vector<std::string> sets, dirs;
    bool resume = false, dry_run = false, no_progress = false, overwrite = false;
  };
  auto o = std::make_shared<Opts>();
  auto *train = app.add_subcommand("train", "train with a TOML pipeline");
  train->add_option("PIPELINE", o->file, "the pipeline .toml")->required();
  train->add_option("--set", o->sets, "override a key: run.steps=200, pipeline.<plugin>.<key>=v (repeatable)");
  train->add_flag("--resume", o->resume, "continue the latest checkpoint of this run");
  train->add_flag("--overwrite", o->overwrite, "start over a run that has checkpoints; the old run is moved aside")
      ->excludes("--resume");
  train->add_flag("--dry-run", o->dry_run, "check the pipeline, create the plugins, print the LR schedule");
  train->add_flag("--no-progress", o->no_progress, "plain log lines instead of a progress bar");
  train->add_option("--plugin-dir", o->dirs, "extra directory to search for plugins (repeatable)");
  return {train, [o] { return cmd_train(o->file, o->sets, o->dirs, o->resume, o->dry_run, o->no_progress, o->overwrite); }};
}

}  // namespace keel
