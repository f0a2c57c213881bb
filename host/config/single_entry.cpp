#include "config/single_entry.hpp"

#include <fmt/format.h>

#include "common/errors.hpp"

namespace keel {

PipelineConfig single_entry_config(const std::string &plugin, const std::vector<std::string> &sets) {
  PipelineConfig cfg;
  cfg.file = std::filesystem::current_path() / "(command line)";  // plugin paths resolve from here
  PipelineEntry e;
  e.plugin = plugin;
  e.where = fmt::format("plugin '{}'", plugin);
  for (const std::string &arg : sets) {
    const auto eq = arg.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UserError(fmt::format("--set {}: expected key=value (e.g. n=2)", arg));
    const std::string key = arg.substr(0, eq);
    toml::table value = parse_override_value(arg.substr(eq + 1));
    // Walk "a.b.c", making tables on the way.
    toml::table *t = &e.params;
    size_t start = 0;
    for (size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
      const std::string part = key.substr(start, dot - start);
      if (part.empty()) throw UserError(fmt::format("--set {}: empty key segment", arg));
      if (!t->contains(part)) t->insert(part, toml::table{});
      t = (*t)[part].as_table();
      if (t == nullptr) throw UserError(fmt::format("--set {}: '{}' is not a table", arg, part));
    }
    const std::string last = key.substr(start);
    if (last.empty()) throw UserError(fmt::format("--set {}: empty key segment", arg));
    t->insert_or_assign(last, *value.get("v"));
    e.key_where[key.substr(0, key.find('.'))] = "--set " + arg;
  }
  cfg.entries.push_back(std::move(e));
  return cfg;
}

}  // namespace keel
