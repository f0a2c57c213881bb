#include "config/pipeline_config.hpp"

#include <fmt/format.h>

#include "common/errors.hpp"
#include "keel/keel_plugin.h"
#include "plugin_host/params.hpp"

namespace keel {
namespace fs = std::filesystem;

namespace {

keel_param_spec_t spec(const char *name, keel_param_type_t type, const char *def, const char *desc,
                       double min = 0, double max = 0, const char *choices = nullptr) {
  return {sizeof(keel_param_spec_t), name, type, def, min, max, choices, desc};
}

// The host's own sections. Keys a later part of keel reads are declared here, with defaults.
const std::vector<keel_param_spec_t> &run_schema() {
  static const std::vector<keel_param_spec_t> s = {
      spec("name", KEEL_PARAM_STRING, nullptr, "run name: the run directory is <output_dir>/<name>"),
      spec("output_dir", KEEL_PARAM_STRING, "\"runs\"", "where run directories are made"),
      spec("steps", KEEL_PARAM_INT, "1000", "optimizer steps", 1, 1e12),
      spec("batch_size", KEEL_PARAM_INT, "16", "global batch, in sequences", 1, 1e9),
      spec("grad_accum", KEEL_PARAM_INT, "1", "micro-batches per step", 1, 1e6),
      spec("seq_len", KEEL_PARAM_INT, "1024", "maximum sequence length in tokens", 1, 1e9),
      spec("loss_chunk_rows", KEEL_PARAM_INT, "0",
           "tokens per chunk of LM-head logits (0 = auto: about 128 MB of fp32 logits)", 0, 1e9),
      spec("packing", KEEL_PARAM_BOOL, "false",
           "pack several examples per row (own positions, block-diagonal mask) instead of padding"),
      spec("seed", KEEL_PARAM_INT, "1234", "seed of every random choice", 0, 9.2e18),
      spec("activation_checkpointing", KEEL_PARAM_BOOL, "false",
           "recompute each decoder layer in the backward pass: less activation memory, about a third more compute"),
      spec("checkpoint_every", KEEL_PARAM_INT, "500", "steps between checkpoints", 1, 1e12),
      spec("eval_every", KEEL_PARAM_INT, "200", "steps between evaluations", 1, 1e12),
      spec("keep_last", KEEL_PARAM_INT, "3", "checkpoints kept (plus the last healthy one)", 1, 1e6),
      spec("keep_best", KEEL_PARAM_STRING, "\"\"",
           "a metric (e.g. eval_loss.task): the checkpoint where it was best is kept besides the last ones"),
      spec("keep_best_mode", KEEL_PARAM_STRING, "\"min\"", "whether keep_best's metric is best low or high", 0, 0, "min|max"),
      spec("export_best", KEEL_PARAM_BOOL, "false", "final/ is the keep_best checkpoint's model, not the last step's"),
      spec("log_every", KEEL_PARAM_INT, "10", "steps between metrics.jsonl lines", 1, 1e12),
      spec("max_nonfinite", KEEL_PARAM_INT, "5", "non-finite steps in a row before stopping", 1, 1e6),
  };
  return s;
}
const std::vector<keel_param_spec_t> &optim_schema() {
  static const std::vector<keel_param_spec_t> s = {
      spec("lr", KEEL_PARAM_FLOAT, "1e-5", "base learning rate", 0, 10),
      spec("weight_decay", KEEL_PARAM_FLOAT, "0.0", "AdamW decoupled weight decay", 0, 10),
      spec("betas", KEEL_PARAM_ARRAY, "[0.9, 0.999]", "AdamW betas"),
      spec("eps", KEEL_PARAM_FLOAT, "1e-8", "AdamW epsilon", 0, 1),
      spec("grad_clip", KEEL_PARAM_FLOAT, "1.0", "global gradient-norm clip (0 = off)", 0, 1e9),
  };
  return s;
}
const std::vector<keel_param_spec_t> &model_schema() {
  static const std::vector<keel_param_spec_t> s = {
      spec("path", KEEL_PARAM_STRING, "\"\"", "Hugging Face model folder"),
      spec("dtype", KEEL_PARAM_STRING, "\"fp32\"", "training dtype", 0, 0, "fp32|bf16|fp16"),
      spec("device", KEEL_PARAM_STRING, "\"auto\"", "where to train", 0, 0, "cpu|cuda|auto"),
      spec("chat_template", KEEL_PARAM_STRING, "\"auto\"",
           "auto (the model's own template), a .jinja file, or a built-in: chatml, llama3, mistral, plain"),
      spec("chat_template_name", KEEL_PARAM_STRING, "\"default\"",
           "which of the tokenizer's named chat templates, where it has a list"),
      spec("template_kwargs", KEEL_PARAM_TABLE, "{}",
           "extra variables for the chat template, e.g. { enable_thinking = false }"),
  };
  return s;
}
const std::vector<keel_param_spec_t> &data_source_schema() {
  static const std::vector<keel_param_spec_t> s = {
      spec("path", KEEL_PARAM_STRING, nullptr, "JSONL (messages, prompt/completion, text) or .txt"),
      spec("format", KEEL_PARAM_STRING, "\"auto\"", "dataset format", 0, 0,
           "auto|messages|prompt_completion|text"),
      spec("train_on", KEEL_PARAM_STRING, "\"auto\"", "which tokens carry loss", 0, 0,
           "auto|assistant|completion|all"),
      spec("skip_bad_lines", KEEL_PARAM_BOOL, "false", "skip and count malformed lines"),
      spec("overflow", KEEL_PARAM_STRING, "\"truncate\"", "over-long examples", 0, 0, "truncate|drop"),
  };
  return s;
}
const std::vector<keel_param_spec_t> &eval_schema() {
  static const std::vector<keel_param_spec_t> s = {
      spec("prompts", KEEL_PARAM_STRING, "\"\"", "probe prompts JSONL (empty: held-out target prompts)"),
      spec("data", KEEL_PARAM_STRING, "\"\"",
           "held-out examples (any dataset format) whose mean token loss is eval_loss (empty: none)"),
      spec("num_prompts", KEEL_PARAM_INT, "64", "held-out probe prompts when prompts is empty", 1, 1e6),
      spec("max_new_tokens", KEEL_PARAM_INT, "96", "tokens generated per probe", 1, 1e6),
      spec("temperature", KEEL_PARAM_FLOAT, "0.7", "sampling temperature (0 = greedy)", 0, 100),
      spec("top_p", KEEL_PARAM_FLOAT, "0.95", "nucleus sampling mass", 0, 1),
      spec("top_k", KEEL_PARAM_INT, "0", "top-k sampling (0 = off)", 0, 1e9),
      spec("repetition_penalty", KEEL_PARAM_FLOAT, "1.0", "repetition penalty (above 0: 0 would divide by zero)", 1e-6, 100),
      spec("seed", KEEL_PARAM_INT, "0", "sampling seed, fixed so evaluations compare", 0, 9.2e18),
  };
  return s;
}

const std::vector<keel_param_spec_t> &eval_set_schema() {
  static const std::vector<keel_param_spec_t> s = {
      spec("data", KEEL_PARAM_STRING, nullptr, "held-out examples (any dataset format): eval_loss.<name> is their mean token loss"),
  };
  return s;
}

// Data parallelism, used only when a launcher (torchrun) starts several processes.
const std::vector<keel_param_spec_t> &dist_schema() {
  static const std::vector<keel_param_spec_t> s = {
      spec("backend", KEEL_PARAM_STRING, "\"auto\"", "c10d backend: auto (gloo on the CPU, nccl on CUDA), gloo or nccl",
           0, 0, "auto|gloo|nccl"),
      spec("timeout_s", KEEL_PARAM_FLOAT, "600", "seconds a collective may wait for the other ranks before the run fails",
           1, 1e6),
  };
  return s;
}

std::vector<const keel_param_spec_t *> ptrs(const std::vector<keel_param_spec_t> &v) {
  std::vector<const keel_param_spec_t *> out;
  for (const auto &s : v) out.push_back(&s);
  return out;
}

std::string region(const fs::path &file, const toml::source_region &r) {
  if (r.begin.line == 0) return "--set";
  return fmt::format("{}:{}:{}", file.string(), r.begin.line, r.begin.column);
}

// Applies one `--set a.b.c=value` to the document.
void apply_override(toml::table &doc, const std::string &arg) {
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UserError(fmt::format("--set {}: expected key=value (e.g. run.steps=200)", arg));
  std::string key = arg.substr(0, eq);
  toml::table value = parse_override_value(arg.substr(eq + 1));
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const auto &p : parts)
    if (p.empty()) throw UserError(fmt::format("--set {}: empty key segment", arg));

  toml::table *t = &doc;
  size_t i = 0;
  if (parts[0] == "pipeline") {
    // pipeline.<plugin name or index>.<key>
    if (parts.size() != 3)
      throw UserError(fmt::format("--set {}: expected pipeline.<plugin>.<key>=value", arg));
    toml::array *arr = doc["pipeline"].as_array();
    toml::table *match = nullptr;
    int found = 0;
    for (size_t k = 0; arr && k < arr->size(); ++k) {
      toml::table *e = arr->get(k)->as_table();
      if (!e) continue;
      auto name = (*e)["plugin"].value<std::string>();
      if ((name && *name == parts[1]) || parts[1] == std::to_string(k)) {
        match = e;
        ++found;
      }
    }
    if (found == 0)
      throw UserError(fmt::format("--set {}: no [[pipeline]] entry uses plugin '{}'", arg, parts[1]));
    if (found > 1)
      throw UserError(fmt::format(
          "--set {}: plugin '{}' appears {} times; name the entry by index (pipeline.N.key)", arg,
          parts[1], found));
    t = match;
    i = 2;
  }
  for (; i + 1 < parts.size(); ++i) {
    toml::node *n = t->get(parts[i]);
    if (n == nullptr) {
      t->insert(parts[i], toml::table{});
      n = t->get(parts[i]);
    }
    t = n->as_table();
    if (t == nullptr)
      throw UserError(fmt::format("--set {}: '{}' is not a table", arg, parts[i]));
  }
  t->insert_or_assign(parts.back(), *value.get("v"));
}

// Checks one host section against its schema and fills its defaults in place.
void check_section(toml::table &doc, const std::string &name, const std::vector<keel_param_spec_t> &schema,
                   const fs::path &file, const std::string &label) {
  toml::node *n = doc.get(name);
  toml::table empty;
  const toml::table *given = n ? n->as_table() : &empty;
  if (n && !given) throw UserError(fmt::format("{}: [{}] must be a table", region(file, n->source()), name));
  auto where = [&](const std::string &key) {
    const toml::node *k = key.empty() ? nullptr : given->get(key);
    return k ? region(file, k->source()) : (n ? region(file, n->source()) : file.string());
  };
  toml::table resolved = resolve_params(label, ptrs(schema), *given, where);
  doc.insert_or_assign(name, std::move(resolved));
}

}  // namespace

toml::table parse_override_value(const std::string &text) {
  try {
    return toml::parse("v = " + text);
  } catch (const toml::parse_error &) {
    toml::table t;
    t.insert("v", text);  // bare words are strings: --set run.name=my-run
    return t;
  }
}

// Names become file and folder names (run folders, cache files): one path component of letters,
// digits, '_', '-' and '.', not starting with '.', so that none writes outside output_dir.
static void check_name(const toml::node &node, const char *what, const fs::path &file, const toml::node *place = nullptr) {
  const std::string name = node.value<std::string>().value_or("");
  bool ok = !name.empty() && name[0] != '.';
  for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
  if (!ok)
    throw UserError(fmt::format("{}: {} '{}' is not allowed: use letters, digits, '_', '-' and '.', not starting with "
                                "'.' (it names a folder or file under output_dir)",
                                region(file, (place ? *place : node).source()), what, name));
}

std::string PipelineConfig::run_name() const { return *doc["run"]["name"].value<std::string>(); }

fs::path PipelineConfig::run_dir() const {
  return fs::path(*doc["run"]["output_dir"].value<std::string>()) / run_name();
}

std::string PipelineConfig::where(const toml::node &node) const { return region(file, node.source()); }

PipelineConfig load_pipeline_config(const fs::path &file, const std::vector<std::string> &overrides) {
  PipelineConfig cfg;
  cfg.file = file;
  if (!fs::exists(file)) throw UserError(fmt::format("{}: no such pipeline file", file.string()));
  try {
    cfg.doc = toml::parse_file(file.string());
  } catch (const toml::parse_error &e) {
    throw UserError(fmt::format("{}:{}:{}: malformed TOML: {}", file.string(), e.source().begin.line,
                                e.source().begin.column, e.description()));
  }
  for (const std::string &o : overrides) apply_override(cfg.doc, o);

  // Top level: known sections only.
  static const std::vector<std::string> sections = {"run", "optim", "model", "data", "eval", "dist", "pipeline"};
  for (auto &&[key, node] : cfg.doc) {
    if (std::find(sections.begin(), sections.end(), key.str()) == sections.end())
      throw UserError(fmt::format("{}: unknown section '{}'; expected one of [run], [optim], [model], "
                                  "[data.<name>], [eval], [dist], [[pipeline]]",
                                  region(file, node.source()), key.str()));
    if (key.str() != "pipeline" && !node.is_table())  // `run = 3`, or `--set run=x`
      throw UserError(fmt::format("{}: '{}' must be a table ([{}] with its keys), not a {}", cfg.where(node),
                                  key.str(), key.str(),
                                  node.is_array() ? "array" : node.is_string() ? "string" : node.is_boolean() ? "boolean" : "number"));
  }
  if (!cfg.doc["run"]["name"]) {  // the default run name is the file's stem
    if (!cfg.doc.get("run")) cfg.doc.insert("run", toml::table{});
    cfg.doc["run"].as_table()->insert("name", file.stem().string());
  }
  check_name(*cfg.doc["run"]["name"].node(), "[run] name", file);  // before the section is resolved: its place
  check_section(cfg.doc, "run", run_schema(), file, "[run]");
  check_section(cfg.doc, "optim", optim_schema(), file, "[optim]");
  check_section(cfg.doc, "model", model_schema(), file, "[model]");
  check_section(cfg.doc, "dist", dist_schema(), file, "[dist]");
  // [eval.NAME] tables are named held-out sets (eval_loss.NAME); the other keys are [eval]'s own.
  toml::table eval_sets;
  if (toml::table *ev = cfg.doc["eval"].as_table()) {
    std::vector<std::string> names;
    for (auto &&[name, node] : *ev)
      if (node.is_table()) {
        check_name(toml::value<std::string>(std::string(name.str())), "an [eval.<name>] set's name", file, &node);
        names.emplace_back(name.str());
      }
    for (const std::string &name : names) {  // checked where they stand (file positions), then set aside
      check_section(*ev, name, eval_set_schema(), file, fmt::format("[eval.{}]", name));
      eval_sets.insert(name, *ev->get(name));
      ev->erase(name);
    }
  }
  check_section(cfg.doc, "eval", eval_schema(), file, "[eval]");
  for (auto &&[name, set] : eval_sets) cfg.doc["eval"].as_table()->insert(name, set);
  if (const toml::array *b = cfg.doc["optim"]["betas"].as_array();
      b->size() != 2 || !b->get(0)->is_number() || !b->get(1)->is_number())
    throw UserError(fmt::format("{}: [optim] betas: expected two numbers, e.g. [0.9, 0.999]",
                                region(file, b->source())));
  if (toml::node *data = cfg.doc.get("data")) {
    toml::table *sources = data->as_table();
    if (!sources) throw UserError(fmt::format("{}: data must hold [data.<name>] tables", region(file, data->source())));
    for (auto &&[name, src] : *sources) {
      if (!src.is_table())
        throw UserError(fmt::format("{}: data.{} must be a table ([data.{}] with path = ...)",
                                    region(file, src.source()), name.str(), name.str()));
      check_section(*sources, std::string(name.str()), data_source_schema(), file,
                    fmt::format("[data.{}]", name.str()));
      check_name(toml::value<std::string>(std::string(name.str())), "a [data.<name>] source's name", file, &src);
    }
  }

  if (toml::node *p = cfg.doc.get("pipeline")) {
    toml::array *arr = p->as_array();
    if (!arr) throw UserError(fmt::format("{}: pipeline must be an array of tables ([[pipeline]])", region(file, p->source())));
    for (toml::node &n : *arr) {
      toml::table *t = n.as_table();
      if (!t) throw UserError(fmt::format("{}: each [[pipeline]] entry must be a table", region(file, n.source())));
      PipelineEntry e;
      e.where = region(file, t->source());
      auto plugin = (*t)["plugin"].value<std::string>();
      if (!plugin || plugin->empty())
        throw UserError(fmt::format("{}: [[pipeline]] entry has no plugin = \"<name>\"", e.where));
      e.plugin = *plugin;
      if (toml::node *en = t->get("enabled")) {
        if (!en->is_boolean())
          throw UserError(fmt::format("{}: {}: enabled: expected true or false", region(file, en->source()), e.plugin));
        e.enabled = *en->value<bool>();
      }
      for (auto &&[k, v] : *t)
        if (k.str() != "plugin" && k.str() != "enabled") {
          e.params.insert(k.str(), v);
          e.key_where[std::string(k.str())] = region(file, v.source());
        }
      cfg.entries.push_back(std::move(e));
    }
  }
  return cfg;
}

}  // namespace keel
