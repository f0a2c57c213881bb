// keel — the command line (ARCHITECTURE.md §4). Each subcommand is one function below; exit codes:
// 0 success, 2 bad input or configuration (one line on stderr), 1 internal or plugin failure.
#include <cstdio>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "config/pipeline_config.hpp"
#include "logging/log.hpp"
#include "plugin_host/pipeline.hpp"
#include "plugin_host/registry.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace keel {
namespace {

const char *param_type_name(keel_param_type_t t) {
  switch (t) {
    case KEEL_PARAM_BOOL: return "bool";
    case KEEL_PARAM_INT: return "int";
    case KEEL_PARAM_FLOAT: return "float";
    case KEEL_PARAM_STRING: return "string";
    case KEEL_PARAM_STRING_LIST: return "string_list";
    case KEEL_PARAM_ARRAY: return "array";
    case KEEL_PARAM_TABLE: return "table";
    default: return "unknown";
  }
}

json describe(const PluginLibrary &lib) {
  const keel_plugin_descriptor_t &d = *lib.descriptor;
  json params = json::array();
  for (const keel_param_spec_t *p : lib.params()) {
    json j = {{"name", p->name}, {"type", param_type_name(p->type)}, {"description", p->description ? p->description : ""}};
    j["default"] = p->default_value ? json(p->default_value) : json(nullptr);
    if (!(p->min == 0 && p->max == 0)) j["range"] = {p->min, p->max};
    if (p->choices) j["choices"] = p->choices;
    params.push_back(j);
  }
  json hooks = json::array();
  for (uint64_t bit = 1; bit <= KEEL_HOOK_STATE; bit <<= 1)
    if (d.hooks & bit) hooks.push_back(hook_names(bit));
  return {{"id", d.id},
          {"name", d.name},
          {"kind", kind_name(d.kind)},
          {"version", d.version},
          {"abi", fmt::format("{}.{}", lib.entry->abi.major, lib.entry->abi.minor)},
          {"description", d.description},
          {"license", d.license},
          {"vendor", d.vendor},
          {"hooks", hooks},
          {"params", params},
          {"requires_torch", d.requires_torch ? json(d.requires_torch) : json(nullptr)},
          {"path", lib.path.string()}};
}

int cmd_plugins(const std::vector<std::string> &dirs, bool as_json) {
  std::vector<fs::path> cli(dirs.begin(), dirs.end());
  PluginRegistry reg(plugin_search_path(cli));
  if (as_json) {
    json out = json::array();
    for (const auto &f : reg.found())
      if (f.library && !f.shadowed) out.push_back(describe(*f.library));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  int n = 0;
  for (const auto &f : reg.found()) {
    if (!f.library) continue;
    const keel_plugin_descriptor_t &d = *f.library->descriptor;
    std::cout << fmt::format("{:<18} {:<11} {:<8} ABI {}.{}  {:<32} {}{}\n", d.name, kind_name(d.kind),
                             d.version, f.library->entry->abi.major, f.library->entry->abi.minor, d.id,
                             f.path.string(), f.shadowed ? "  (shadowed by an earlier one)" : "");
    for (const keel_param_spec_t *p : f.library->params())
      std::cout << fmt::format("    {} = {}  ({}) {}\n", p->name, p->default_value ? p->default_value : "<required>",
                               expected_text(*p), p->description ? p->description : "");
    ++n;
  }
  for (const auto &f : reg.found())
    if (!f.library) std::cout << fmt::format("{:<18} {}\n", "(unusable)", f.error);
  std::string dirs_text;
  for (const auto &d : reg.search_path()) dirs_text += (dirs_text.empty() ? "" : ":") + d.string();
  std::cout << fmt::format("{} plugin(s) in {}\n", n, dirs_text);
  return 0;
}

int cmd_validate(const std::string &file) {
  const PluginLibrary &lib = load_plugin_library(file);
  const keel_plugin_descriptor_t &d = *lib.descriptor;
  std::cout << fmt::format("ok: {} ({} {}, {}), ABI {}.{}, hooks: {}\n", d.name, kind_name(d.kind), d.version,
                           d.id, lib.entry->abi.major, lib.entry->abi.minor, hook_names(d.hooks));
  return 0;
}

// Writes `text` to `path` atomically: a temporary file, then rename.
void write_file_atomic(const fs::path &path, const std::string &text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
}

int cmd_train(const std::string &file, const std::vector<std::string> &sets, const std::vector<std::string> &dirs,
              bool resume, bool dry_run) {
  PipelineConfig cfg = load_pipeline_config(file, sets);
  std::vector<fs::path> cli(dirs.begin(), dirs.end());
  PluginRegistry reg(plugin_search_path(cli));
  HostServices services;
  services.context = "a dry run (no model is loaded)";
  services.total_steps = *cfg.doc["run"]["steps"].value<int64_t>();
  services.seed = static_cast<uint64_t>(*cfg.doc["run"]["seed"].value<int64_t>());
  services.base_lr = *cfg.doc["optim"]["lr"].value<double>();
  services.run_dir = cfg.run_dir().string();
  PluginPipeline pipeline(cfg, reg, services);

  fs::create_directories(cfg.run_dir());
  logging::add_run_log(cfg.run_dir());
  std::ostringstream resolved;
  resolved << "# resolved by keel: every default filled in\n" << pipeline.resolved_config() << "\n";
  write_file_atomic(cfg.run_dir() / "config.toml", resolved.str());

  if (!dry_run) {
    (void)resume;
    throw UserError("keel train: this build has the plugin host but not the training loop yet; "
                    "use --dry-run to check a pipeline");
  }
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
}  // namespace keel

int main(int argc, char **argv) {
  using namespace keel;
  CLI::App app{"keel: supervised fine-tuning that keeps small models from response collapse"};
  app.require_subcommand(1);
  int verbose = 0;
  app.add_flag("-v,--verbose", verbose, "debug logging (includes the plugin hook trace)");

  std::vector<std::string> plugin_dirs;
  bool as_json = false;
  auto *plugins = app.add_subcommand("plugins", "list every plugin found, or validate one library");
  plugins->add_option("--plugin-dir", plugin_dirs, "extra directory to search (repeatable)");
  plugins->add_flag("--json", as_json, "print the descriptors as a JSON array");
  std::string validate_file;
  auto *validate = plugins->add_subcommand("validate", "load a library's descriptor only; exit 0 if usable, else 2");
  validate->add_option("FILE", validate_file, "the plugin .so")->required();

  std::string pipeline_file;
  std::vector<std::string> sets;
  bool resume = false, dry_run = false;
  auto *train = app.add_subcommand("train", "train with a TOML pipeline");
  train->add_option("PIPELINE", pipeline_file, "the pipeline .toml")->required();
  train->add_option("--set", sets, "override a key: run.steps=200, pipeline.<plugin>.<key>=v (repeatable)");
  train->add_flag("--resume", resume, "continue the latest checkpoint of this run");
  train->add_flag("--dry-run", dry_run, "check the pipeline, create the plugins, print the LR schedule");
  train->add_option("--plugin-dir", plugin_dirs, "extra directory to search for plugins (repeatable)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "keel: %s (see keel %s --help)\n", e.what(),
                 app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name().c_str());
    return 2;
  }
  logging::init(verbose);
  try {
    if (*validate) return cmd_validate(validate_file);
    if (*plugins) return cmd_plugins(plugin_dirs, as_json);
    if (*train) return cmd_train(pipeline_file, sets, plugin_dirs, resume, dry_run);
  } catch (const UserError &e) {
    std::fprintf(stderr, "keel: %s\n", e.what());
    return 2;
  } catch (const PluginError &e) {
    std::fprintf(stderr, "keel: %s\n", e.what());
    return 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "keel: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
