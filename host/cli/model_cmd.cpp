// keel init-model, keel generate, keel perplexity: the model on its own, without a pipeline.
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoint/model_folder.hpp"
#include "cli/commands.hpp"
#include "common/errors.hpp"
#include "generate/generate.hpp"
#include "tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace keel {
namespace {

std::vector<int64_t> parse_ids(const json &j, const std::string &where, int64_t vocab) {
  if (!j.is_array()) throw UserError(where + ": \"ids\" must be an array of token ids");
  std::vector<int64_t> ids;
  for (const auto &x : j) {
    if (!x.is_number_integer()) throw UserError(where + ": \"ids\" must hold integers");
    int64_t v = x.get<int64_t>();
    if (v < 0 || v >= vocab) throw UserError(fmt::format("{}: token id {} is outside the vocabulary [0, {})", where, v, vocab));
    ids.push_back(v);
  }
  return ids;
}

struct ModelOpts {
  std::string model, device = "auto", dtype = "fp32";
};

void add_model_opts(CLI::App *c, ModelOpts &o) {
  c->add_option("--model", o.model, "Hugging Face model folder")->required();
  c->add_option("--device", o.device, "cpu | cuda | auto")->capture_default_str();
  c->add_option("--dtype", o.dtype, "fp32 | bf16 | fp16")->capture_default_str();
}

std::unique_ptr<Transformer> open_model(const ModelOpts &o) {
  torch::Device dev = parse_device(o.device);
  return load_model(o.model, dev, parse_dtype(o.dtype, dev));
}

int cmd_init_model(const std::string &config, const std::string &out, uint64_t seed, const std::string &tokenizer) {
  ModelConfig cfg = ModelConfig::load(config);
  std::optional<Tokenizer> tok;
  if (tokenizer == "byte") {
    // 256 byte tokens plus the chat specials: for tiny models trained from scratch.
    tok = Tokenizer::byte_level({"<|endoftext|>", "<|im_start|>", "<|im_end|>"}, "", "<|endoftext|>", "<|endoftext|>");
  } else if (!tokenizer.empty()) {
    tok = Tokenizer::load(tokenizer);
  }
  if (tok) {
    if (static_cast<int64_t>(tok->vocab_size()) > cfg.vocab_size)
      throw UserError(fmt::format("{}: vocab_size {} is smaller than the tokenizer's {} tokens", config, cfg.vocab_size,
                                  tok->vocab_size()));
    if (tok->eos_id) cfg.raw["eos_token_id"] = *tok->eos_id, cfg.eos_token_ids = {*tok->eos_id};
    if (tok->pad_id) cfg.raw["pad_token_id"] = *tok->pad_id, cfg.pad_token_id = *tok->pad_id;
    if (tok->bos_id) cfg.raw["bos_token_id"] = *tok->bos_id, cfg.bos_token_id = *tok->bos_id;
  }
  Transformer model(cfg, torch::kCPU, torch::kFloat);
  model.init_weights(seed);
  save_model(out, model, fs::path(config).parent_path(), torch::kFloat);
  if (tok) tok->save(out);
  std::cout << fmt::format("wrote a randomly initialised {} ({} layers, hidden {}) to {}\n", cfg.architecture,
                           cfg.num_layers, cfg.hidden_size, out);
  return 0;
}

int cmd_generate(const ModelOpts &mo, const std::string &prompt, const std::string &prompt_ids, SamplingSettings s) {
  if (prompt.empty() == prompt_ids.empty()) throw UserError("generate: give --prompt TEXT or --prompt-ids '[...]'");
  auto model = open_model(mo);
  std::vector<std::vector<int64_t>> prompts;
  std::optional<Tokenizer> tok;
  if (!prompt.empty() || fs::exists(fs::path(mo.model) / "tokenizer.json")) tok = Tokenizer::load(mo.model);
  if (!prompt.empty()) {
    auto ids = tok->encode(prompt, true);
    prompts.emplace_back(ids.begin(), ids.end());
  } else {
    // One prompt [1, 2, 3], or a batch [[1, 2], [3, 4, 5]] (left-padded together).
    json j;
    try {
      j = json::parse(prompt_ids);
    } catch (const json::exception &) {
      throw UserError("--prompt-ids: expected a JSON array of token ids, e.g. [1, 2, 3], or an array of them");
    }
    if (j.is_array() && !j.empty() && j[0].is_array())
      for (const auto &p : j) prompts.push_back(parse_ids(p, "--prompt-ids", model->config().vocab_size));
    else
      prompts.push_back(parse_ids(j, "--prompt-ids", model->config().vocab_size));
  }
  for (const auto &p : prompts)
    if (p.empty()) throw UserError("generate: the prompt has no tokens");
  if (s.stop_ids.empty()) s.stop_ids = model->config().eos_token_ids;
  if (tok && tok->eos_id && std::find(s.stop_ids.begin(), s.stop_ids.end(), *tok->eos_id) == s.stop_ids.end())
    s.stop_ids.push_back(*tok->eos_id);
  GenerationTiming timing;
  auto gen = generate(*model, prompts, s, &timing);
  for (const auto &g : gen) {
    json out = {{"tokens", g.tokens}, {"stopped", g.stopped}};
    if (tok) out["text"] = tok->decode(std::vector<int32_t>(g.tokens.begin(), g.tokens.end()), true);
    std::cout << out.dump() << "\n";
  }
  std::cerr << json{{"prefill_seconds", timing.prefill_seconds}, {"decode_seconds", timing.decode_seconds},
                    {"decode_steps", timing.decode_steps}, {"batch", prompts.size()}}.dump() << "\n";
  return 0;
}

int cmd_perplexity(const ModelOpts &mo, const std::string &data, const std::string &dump) {
  auto model = open_model(mo);
  std::ifstream in(data);
  if (!in) throw UserError(data + ": cannot read");
  std::ofstream out;
  if (!dump.empty()) {
    out.open(dump);
    if (!out) throw UserError(dump + ": cannot write");
  }
  torch::NoGradGuard no_grad;
  std::optional<Tokenizer> tok;
  double nll = 0;
  int64_t count = 0, lineno = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", data, lineno);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception &e) {
      throw UserError(where + ": not valid JSON");
    }
    std::vector<int64_t> ids;
    if (j.is_object() && j.contains("ids")) {
      ids = parse_ids(j["ids"], where, model->config().vocab_size);
    } else if (j.is_object() && j.contains("text") && j["text"].is_string()) {
      if (!tok) tok = Tokenizer::load(mo.model);
      auto t = tok->encode(j["text"].get<std::string>(), true);
      ids.assign(t.begin(), t.end());
    } else {
      throw UserError(where + ": expected {\"ids\": [...]} or {\"text\": \"...\"}");
    }
    if (ids.empty()) throw UserError(where + ": empty \"ids\"");
    auto t = torch::tensor(ids, torch::kInt64).to(model->device()).unsqueeze(0);
    auto pos = torch::arange(static_cast<int64_t>(ids.size()), torch::kInt64).to(model->device()).unsqueeze(0);
    auto logp = model->logits(model->hidden(t, pos)).log_softmax(-1)[0];
    std::vector<double> lp;
    for (size_t i = 0; i + 1 < ids.size(); ++i) lp.push_back(logp[static_cast<int64_t>(i)][ids[i + 1]].item<double>());
    for (double v : lp) nll -= v;
    count += static_cast<int64_t>(lp.size());
    if (out.is_open()) out << json{{"tokens", ids}, {"logprobs", lp}}.dump() << "\n";
  }
  const double mean = count ? nll / static_cast<double>(count) : 0.0;
  std::cout << json{{"tokens", count}, {"nll", mean}, {"perplexity", std::exp(mean)}}.dump() << "\n";
  return 0;
}

}  // namespace

Command add_init_model_command(CLI::App &app) {
  struct Opts {
    std::string config, out;
    uint64_t seed = 0;
    std::string tokenizer;
  };
  auto o = std::make_shared<Opts>();
  auto *c = app.add_subcommand("init-model", "write a randomly initialised HF model folder");
  c->add_option("--config", o->config, "config.json of the model shape")->required();
  c->add_option("--out", o->out, "output folder")->required();
  c->add_option("--seed", o->seed, "initialisation seed")->capture_default_str();
  c->add_option("--tokenizer", o->tokenizer,
                 "tokenizer to ship with it: a tokenizer.json or folder, or 'byte' for a byte-level one "
                 "(default: the one beside config.json, if any)");
  return {c, [o] { return cmd_init_model(o->config, o->out, o->seed, o->tokenizer); }};
}

Command add_generate_command(CLI::App &app) {
  struct Opts {
    ModelOpts model;
    std::string prompt, prompt_ids;
    SamplingSettings s;
  };
  auto o = std::make_shared<Opts>();
  auto *c = app.add_subcommand("generate", "sample a continuation with a KV cache");
  add_model_opts(c, o->model);
  c->add_option("--prompt", o->prompt, "the prompt text (encoded with the model's tokenizer, BOS/EOS as it adds them)");
  c->add_option("--prompt-ids", o->prompt_ids, "the prompt as a JSON array of token ids, or an array of such arrays (a batch)");
  c->add_option("--max-new-tokens", o->s.max_new_tokens, "tokens to generate")->capture_default_str();
  c->add_option("--temperature", o->s.temperature, "0 = greedy")->capture_default_str();
  c->add_option("--top-p", o->s.top_p, "nucleus mass")->capture_default_str();
  c->add_option("--top-k", o->s.top_k, "0 = off")->capture_default_str();
  c->add_option("--repetition-penalty", o->s.repetition_penalty, "1 = off")->capture_default_str();
  c->add_option("--seed", o->s.seed, "sampling seed")->capture_default_str();
  return {c, [o] { return cmd_generate(o->model, o->prompt, o->prompt_ids, o->s); }};
}

Command add_perplexity_command(CLI::App &app) {
  struct Opts {
    ModelOpts model;
    std::string data, dump;
  };
  auto o = std::make_shared<Opts>();
  auto *c = app.add_subcommand("perplexity", "teacher-forced NLL over JSONL lines");
  add_model_opts(c, o->model);
  c->add_option("--data", o->data, "JSONL: {\"ids\": [...]} or {\"text\": \"...\"} per line")->required();
  c->add_option("--dump", o->dump, "write {\"tokens\", \"logprobs\"} per line; logprobs[i] = log p(tokens[i+1] | tokens[..i])");
  return {c, [o] { return cmd_perplexity(o->model, o->data, o->dump); }};
}

}  // namespace keel
