// keel plugins [--plugin-dir D]... [--json] and keel plugins validate FILE.so
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "common/errors.hpp"
#include "plugin_host/params.hpp"
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

}  // namespace

Command add_plugins_command(CLI::App &app) {
  struct Opts {
    std::vector<std::string> dirs;
    bool json = false;
    std::string file;
  };
  auto o = std::make_shared<Opts>();
  auto *plugins = app.add_subcommand("plugins", "list every plugin found, or validate one library");
  plugins->add_option("--plugin-dir", o->dirs, "extra directory to search (repeatable)");
  plugins->add_flag("--json", o->json, "print the descriptors as a JSON array");
  auto *validate = plugins->add_subcommand("validate", "load a library's descriptor only; exit 0 if usable, else 2");
  validate->add_option("FILE", o->file, "the plugin .so")->required();
  return {plugins, [o, validate] { return *validate ? cmd_validate(o->file) : cmd_plugins(o->dirs, o->json); }};
}

}  // namespace keel
