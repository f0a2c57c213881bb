// keel eval PIPELINE.toml --checkpoint DIR: the probe set, generated and measured by every metric
// of the pipeline, printed as JSON ({"step", "metrics", "alarms"}). Remedies do not act.
#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "config/pipeline_config.hpp"
#include "plugin_host/registry.hpp"
#include "train/trainer.hpp"

namespace keel {

Command add_eval_command(CLI::App &app) {
  struct Opts {
    std::string file, checkpoint;
    std::vector<std::string> sets, dirs;
  };
  auto o = std::make_shared<Opts>();
  auto *c = app.add_subcommand("eval", "generate for the probe set and print every metric of the pipeline as JSON");
  c->add_option("PIPELINE", o->file, "the pipeline .toml")->required();
  c->add_option("--checkpoint", o->checkpoint, "an HF model folder: a checkpoint, or a run's final/")->required();
  c->add_option("--set", o->sets, "override a key (repeatable)");
  c->add_option("--plugin-dir", o->dirs, "extra directory to search for plugins (repeatable)");
  return {c, [o] {
            PipelineConfig cfg = load_pipeline_config(o->file, o->sets);
            std::vector<std::filesystem::path> dirs(o->dirs.begin(), o->dirs.end());
            PluginRegistry reg(plugin_search_path(dirs));
            return run_eval(cfg, reg, o->checkpoint);
          }};
}

}  // namespace keel
