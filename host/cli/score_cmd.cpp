// keel score --metric NAME [--set k=v]... --input FILE.jsonl [--plugin-dir D]...
// Runs one metric plugin, created the way `keel train` creates it, on the generations of a JSONL file
// ({"text": ...}, optionally "prompt" and "tokens") and prints one JSON object:
// {"metric": NAME, "value": x, "alarm": bool, <side values>..., "samples": n}.
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "common/errors.hpp"
#include "config/single_entry.hpp"
#include "plugin_host/pipeline.hpp"
#include "plugin_host/registry.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;  // "metric" and "value" first in the output

namespace keel {
namespace {

struct Generation {
  std::string prompt, text;
  std::vector<int64_t> tokens;
};

// Reads the input lines; blank lines are skipped. Throws UserError "file:line: reason".
std::vector<Generation> read_generations(const std::string &file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UserError(fmt::format("{}: cannot open the input file", file));
  std::vector<Generation> out;
  std::string line;
  for (size_t no = 1; std::getline(in, line); ++no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto bad = [&](const std::string &why) { return UserError(fmt::format("{}:{}: {}", file, no, why)); };
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception &e) {
      throw bad(fmt::format("not valid JSON ({}); expected {{\"text\": \"...\"}}", e.what()));
    }
    if (!j.is_object()) throw bad("expected a JSON object {\"text\": \"...\"}");
    Generation g;
    auto text = j.find("text");
    if (text == j.end() || !text->is_string()) throw bad("expected a string field \"text\"");
    g.text = text->get<std::string>();
    if (auto p = j.find("prompt"); p != j.end()) {
      if (!p->is_string()) throw bad("\"prompt\" must be a string");
      g.prompt = p->get<std::string>();
    }
    if (auto t = j.find("tokens"); t != j.end()) {
      if (!t->is_array()) throw bad("\"tokens\" must be an array of token ids");
      for (const json &id : *t) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0)
          throw bad("\"tokens\" must hold non-negative integers");
        g.tokens.push_back(id.get<int64_t>());
      }
    }
    out.push_back(std::move(g));
  }
  if (out.empty()) throw UserError(fmt::format("{}: no generations (expected lines like {{\"text\": \"...\"}})", file));
  return out;
}

int cmd_score(const std::string &metric, const std::vector<std::string> &sets, const std::string &input,
              const std::vector<std::string> &dirs) {
  std::vector<fs::path> cli(dirs.begin(), dirs.end());
  PluginRegistry reg(plugin_search_path(cli));
  const PluginLibrary &lib = reg.resolve(metric, fs::current_path());
  if (lib.descriptor->kind != KEEL_KIND_METRIC)
    throw UserError(fmt::format("--metric {}: '{}' is a {} plugin, not a metric", metric, lib.name(),
                                kind_name(lib.descriptor->kind)));
  if (lib.descriptor->flags & KEEL_FLAG_WANTS_EVAL_LOGITS)
    throw UserError(fmt::format("--metric {}: '{}' needs the model's logits, and keel score has generations only "
                                "(no model); use keel eval",
                                metric, lib.name()));
  const std::vector<Generation> gens = read_generations(input);

  PipelineConfig cfg = single_entry_config(metric, sets);
  HostServices services;
  services.context = "keel score (no model: generations come from a file)";
  PluginPipeline pipeline(cfg, reg, services);
  const std::string name = pipeline.plugins().front()->name;

  std::vector<keel_eval_sample_t> samples(gens.size());
  std::vector<const keel_eval_sample_t *> ptrs;
  for (size_t i = 0; i < gens.size(); ++i) {
    samples[i] = {sizeof(keel_eval_sample_t), gens[i].prompt.c_str(), gens[i].text.c_str(), gens[i].tokens.data(),
                  gens[i].tokens.size()};
    ptrs.push_back(&samples[i]);
  }
  keel_eval_batch_t batch{sizeof(keel_eval_batch_t), 0, services.generation.temperature, ptrs.data(),
                          static_cast<uint32_t>(ptrs.size())};
  pipeline.on_start();
  pipeline.on_eval(batch);
  pipeline.on_end();

  auto main_value = services.metrics.find(name);
  if (main_value == services.metrics.end())
    throw UserError(fmt::format("{}: {} published no value for these {} generation(s)", input, name, gens.size()));
  ordered_json out = {{"metric", name}, {"value", main_value->second.value}, {"alarm", main_value->second.alarm}};
  if (!main_value->second.reason.empty()) out["reason"] = main_value->second.reason;
  const std::string prefix = name + ".";
  for (const auto &[key, m] : services.metrics)
    if (key.rfind(prefix, 0) == 0) out[key.substr(prefix.size())] = m.value;
  out["samples"] = gens.size();
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace

Command add_score_command(CLI::App &app) {
  struct Opts {
    std::string metric, input;
    std::vector<std::string> sets, dirs;
  };
  auto o = std::make_shared<Opts>();
  auto *score = app.add_subcommand("score", "run one metric plugin on {\"text\": ...} lines, print JSON");
  score->add_option("--metric", o->metric, "the metric plugin (a name, or a path to its .so)")->required();
  score->add_option("--set", o->sets, "set a parameter of the metric: n=2, alarm_below=0.2 (repeatable)");
  score->add_option("--input", o->input, "JSONL: {\"text\": ...} per line, optionally \"prompt\", \"tokens\"")
      ->required();
  score->add_option("--plugin-dir", o->dirs, "extra directory to search for plugins (repeatable)");
  return {score, [o] { return cmd_score(o->metric, o->sets, o->input, o->dirs); }};
}

}  // namespace keel
