#include "ablate/ablate.hpp"

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/errors.hpp"
#include "common/files.hpp"

namespace fs = std::filesystem;

namespace keel {
namespace {

std::string where(const fs::path &file, const toml::node &n) {
  const auto &b = n.source().begin;
  return fmt::format("{}:{}:{}", file.string(), b.line, b.column);
}

void check_keys(const fs::path &file, const toml::table &t, const std::set<std::string> &allowed, const char *what) {
  for (const auto &[k, v] : t)
    if (!allowed.count(std::string(k.str())))
      throw UserError(fmt::format("{}: unknown key '{}' in {} (expected one of: {})", where(file, v), k.str(), what,
                                  fmt::join(allowed, ", ")));
}

std::vector<std::string> strings(const fs::path &file, const toml::table &t, const char *key) {
  std::vector<std::string> out;
  const toml::node *n = t.get(key);
  if (!n) return out;
  const toml::array *a = n->as_array();
  if (!a) throw UserError(fmt::format("{}: '{}' must be an array of strings", where(file, *n), key));
  for (const auto &e : *a) {
    if (!e.is_string()) throw UserError(fmt::format("{}: '{}' must be an array of strings", where(file, e), key));
    out.push_back(*e.value<std::string>());
  }
  return out;
}

toml::table parse(const fs::path &file) {
  try {
    return toml::parse_file(file.string());
  } catch (const toml::parse_error &e) {
    const auto &b = e.source().begin;
    throw UserError(fmt::format("{}:{}:{}: {}", file.string(), b.line, b.column, e.description()));
  }
}

}  // namespace

AblationPlan plan_ablation(const fs::path &grid_file, const std::vector<std::string> &extra_sets,
                           const fs::path &output_dir) {
  if (!fs::exists(grid_file)) throw UserError(fmt::format("{}: no such file", grid_file.string()));
  const toml::table grid = parse(grid_file);
  check_keys(grid_file, grid, {"grid", "variant"}, "the ablation grid");
  const toml::table *g = grid["grid"].as_table();
  if (!g) throw UserError(fmt::format("{}: missing [grid] (base, output_dir, seeds, set)", grid_file.string()));
  check_keys(grid_file, *g, {"base", "output_dir", "seeds", "set"}, "[grid]");
  const std::string base = (*g)["base"].value_or(std::string());
  AblationPlan plan;
  plan.output_dir = !output_dir.empty() ? output_dir : fs::path((*g)["output_dir"].value_or(std::string("runs/ablation")));
  std::vector<int64_t> seeds;
  if (const toml::node *s = g->get("seeds")) {
    const toml::array *a = s->as_array();
    if (!a || a->empty()) throw UserError(fmt::format("{}: seeds must be a non-empty array of integers", where(grid_file, *s)));
    for (const auto &e : *a) {
      if (!e.is_integer() || *e.value<int64_t>() < 0)
        throw UserError(fmt::format("{}: seeds must be non-negative integers", where(grid_file, e)));
      seeds.push_back(*e.value<int64_t>());
    }
  } else {
    seeds.push_back(1234);
  }
  std::vector<std::string> grid_sets = strings(grid_file, *g, "set");
  grid_sets.insert(grid_sets.end(), extra_sets.begin(), extra_sets.end());

  const toml::array *variants = grid["variant"].as_array();
  if (!variants || variants->empty())
    throw UserError(fmt::format("{}: no [[variant]] entries (each needs a name)", grid_file.string()));
  fs::create_directories(plan.output_dir);
  std::set<std::string> names;
  static const std::regex good_name("[A-Za-z0-9_][A-Za-z0-9_.]*(-[A-Za-z0-9_.]+)*");  // never ".." or ".x"
  for (const auto &vn : *variants) {
    const toml::table *v = vn.as_table();
    if (!v) throw UserError(fmt::format("{}: a [[variant]] must be a table", where(grid_file, vn)));
    check_keys(grid_file, *v, {"name", "base", "remove", "add", "set"}, "[[variant]]");
    const std::string name = (*v)["name"].value_or(std::string());
    if (!std::regex_match(name, good_name))
      throw UserError(fmt::format("{}: a variant needs a name of letters, digits, '_', '.' or '-', not starting with '.'", where(grid_file, vn)));
    if (!names.insert(name).second)
      throw UserError(fmt::format("{}: variant '{}' is named twice", where(grid_file, vn), name));
    const fs::path base_file = (*v)["base"].value_or(base);
    if (base_file.empty())
      throw UserError(fmt::format("{}: variant '{}' has no base pipeline (set [grid] base or its own base)",
                                  where(grid_file, vn), name));
    if (!fs::exists(base_file))
      throw UserError(fmt::format("{}: variant '{}': base pipeline {} not found", where(grid_file, vn), name,
                                  base_file.string()));
    toml::table doc = parse(base_file);

    // remove: every entry of those plugins; a name the base does not use is a mistake, not a no-op.
    toml::array *pipeline = doc["pipeline"].as_array();
    for (const std::string &gone : strings(grid_file, *v, "remove")) {
      size_t removed = 0;
      if (pipeline)
        for (size_t i = pipeline->size(); i-- > 0;)
          if (const toml::table *e = (*pipeline)[i].as_table(); e && (*e)["plugin"].value_or(std::string()) == gone) {
            pipeline->erase(pipeline->begin() + static_cast<long>(i));
            ++removed;
          }
      if (!removed)
        throw UserError(fmt::format("{}: variant '{}' removes '{}', which {} does not use", where(grid_file, *v->get("remove")),
                                    name, gone, base_file.string()));
    }
    // add: entries appended to the pipeline, in order.
    if (const toml::node *add = v->get("add")) {
      const toml::array *a = add->as_array();
      if (!a) throw UserError(fmt::format("{}: 'add' must be an array of pipeline entries", where(grid_file, *add)));
      if (!pipeline) {
        doc.insert_or_assign("pipeline", toml::array{});
        pipeline = doc["pipeline"].as_array();
      }
      for (const auto &e : *a) {
        const toml::table *t = e.as_table();
        if (!t || !t->contains("plugin"))
          throw UserError(fmt::format("{}: each 'add' entry is a table with a plugin, e.g. {{ plugin = \"dropout\" }}",
                                      where(grid_file, e)));
        pipeline->push_back(*t);
      }
    }
    const fs::path written = plan.output_dir / (name + ".toml");
    std::ostringstream text;
    text << "# written by keel ablate from " << grid_file.string() << " (variant " << name << ", base "
         << base_file.string() << "): edit the grid, not this file\n"
         << toml::toml_formatter(doc, toml::toml_formatter::default_flags | toml::format_flags::relaxed_float_precision)
         << "\n";
    write_file_atomic(written, text.str());
    std::vector<std::string> sets = grid_sets;
    for (const auto &s : strings(grid_file, *v, "set")) sets.push_back(s);
    for (int64_t seed : seeds) {
      AblationRun r;
      r.name = fmt::format("{}-s{}", name, seed);
      r.pipeline = written;
      r.sets = sets;
      r.sets.push_back(fmt::format("run.seed={}", seed));
      r.sets.push_back("run.name=" + r.name);
      r.sets.push_back("run.output_dir=" + plan.output_dir.string());
      r.run_dir = plan.output_dir / r.name;
      plan.runs.push_back(std::move(r));
    }
  }
  return plan;
}

bool run_finished(const fs::path &run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  if (!in || !fs::exists(run_dir / "final" / "config.json") || !fs::exists(run_dir / "config.toml")) return false;
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  nlohmann::json row = nlohmann::json::parse(last, nullptr, false);
  if (row.is_discarded() || !row.contains("summary")) return false;
  try {
    toml::table cfg = toml::parse_file((run_dir / "config.toml").string());
    return row.value("steps", int64_t{-1}) >= cfg["run"]["steps"].value_or(int64_t{0});
  } catch (const toml::parse_error &) {
    return false;
  }
}

}  // namespace keel
