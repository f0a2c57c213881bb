// keel tokenize --tokenizer PATH [--decode] [--special] [--json]
// keel tokenize --tokenizer PATH --dataset FILE [--template NAME] [--train-on X] [--seq-len N] ...
//
// Encodes stdin lines to one JSON array of ids per line (ARCHITECTURE.md §4), decodes arrays back
// to text, or runs a dataset through the same loader training uses and prints each example's ids,
// labels and prompt as a JSON line: the data pipeline, inspectable and testable from the shell.
#include <chrono>
#include <fstream>
#include <cstdio>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "common/errors.hpp"
#include "data/chat_template.hpp"
#include "data/dataset.hpp"
#include "data/record.hpp"
#include "tokenizer/tokenizer.hpp"

using json = nlohmann::json;

namespace keel {
namespace {

struct Opts {
  std::string tokenizer, dataset, tmpl = "auto", format = "auto", train_on = "auto", overflow = "truncate", cache_dir;
  std::string template_kwargs, template_name = "default";
  bool decode = false, special = false, skip_special = false, json_lines = false, skip_bad = false, bench = false;
  bool render = false;
  int64_t seq_len = 1 << 30;
};

void append_ids(std::string &out, const std::vector<int32_t> &ids) {
  out += '[';
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  out += ']';
}

// Reads every line first, then times encoding alone (bench/tokenizer compares it with tokenizers).
int run_bench(const Opts &o, const Tokenizer &tok) {
  std::vector<std::string> texts;
  std::string line;
  size_t bytes = 0;
  while (std::getline(std::cin, line)) {
    texts.push_back(o.json_lines ? json::parse(line).get<std::string>() : line);
    bytes += texts.back().size();
  }
  size_t tokens = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (const std::string &t : texts) tokens += tok.encode(t, o.special).size();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.6f, \"mb_per_s\": %.3f}\n", bytes, tokens, s, bytes / 1e6 / s);
  return 0;
}

int run_encode_decode(const Opts &o, const Tokenizer &tok) {
  if (o.bench) return run_bench(o, tok);
  std::string line, out;
  size_t line_no = 0;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.clear();
    if (o.decode) {
      std::vector<int32_t> ids;
      try {
        ids = json::parse(line).get<std::vector<int32_t>>();
      } catch (const json::exception &) {
        throw UserError(fmt::format("stdin:{}: expected a JSON array of token ids", line_no));
      }
      std::string text = tok.decode(ids, o.skip_special);
      out = o.json_lines ? json(text).dump() : text;
    } else {
      std::string text = line;
      if (o.json_lines) {
        try {
          text = json::parse(line).get<std::string>();
        } catch (const json::exception &) {
          throw UserError(fmt::format("stdin:{}: expected a JSON string (--json)", line_no));
        }
      }
      try {
        append_ids(out, tok.encode(text, o.special));
      } catch (const UserError &e) {
        throw UserError(fmt::format("stdin:{}: {}", line_no, e.what()));
      }
    }
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return 0;
}

ChatTemplate resolve_template(const Opts &o, const Tokenizer &tok) {
  json kwargs;
  if (!o.template_kwargs.empty()) {
    try {
      kwargs = json::parse(o.template_kwargs);
    } catch (const json::exception &) {
      throw UserError(fmt::format("--template-kwargs {}: expected a JSON object", o.template_kwargs));
    }
    if (!kwargs.is_object()) throw UserError(fmt::format("--template-kwargs {}: expected a JSON object", o.template_kwargs));
  }
  return ChatTemplate::resolve(o.tmpl, tok, kwargs, o.template_name);
}

// --render: each conversation rendered as text (add_generation_prompt false), and the prompt
// before its last assistant message (add_generation_prompt true). With --bench, the rendering is
// timed alone (bench/chat_template compares it with transformers).
int run_render(const Opts &o, const Tokenizer &tok, const ChatTemplate &tmpl) {
  std::ifstream in(o.dataset, std::ios::binary);
  if (!in) throw UserError(fmt::format("{}: no such file or not readable", o.dataset));
  std::vector<std::pair<size_t, Record>> records;
  std::string line, why;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto r = parse_jsonl_record(line, DataFormat::messages, why);
    if (!r) throw UserError(fmt::format("{}:{}: {}", o.dataset, n, why));
    records.emplace_back(n, std::move(*r));
  }
  // The conversation's text; with `prompt`, also what comes before its last assistant message.
  // The benchmark times the text alone, as its peer (apply_chat_template) does.
  auto render_one = [&](const std::pair<size_t, Record> &nr, std::string &text, std::string *prompt) {
    const Record &r = nr.second;
    try {
      text = tmpl.render(r.messages, false, r.extras, false).text;
      if (!prompt) return;
      size_t last = r.messages.size();
      for (size_t i = 0; i < r.messages.size(); ++i)
        if (r.messages[i].role == "assistant") last = i;
      std::vector<Message> before(r.messages.begin(), r.messages.begin() + static_cast<std::ptrdiff_t>(last));
      *prompt = tmpl.generation_prompt(before, r.extras);
    } catch (const UserError &e) {
      throw UserError(fmt::format("{}:{}: {}", o.dataset, nr.first, e.what()));
    }
  };
  std::string text, prompt;
  if (o.bench) {
    auto t0 = std::chrono::steady_clock::now();
    size_t bytes = 0;
    for (const auto &r : records) {
      render_one(r, text, nullptr);
      bytes += text.size();
    }
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("{\"conversations\": %zu, \"bytes\": %zu, \"seconds\": %.6f}\n", records.size(), bytes, sec);
    return 0;
  }
  for (const auto &r : records) {
    render_one(r, text, &prompt);
    std::string out = "{\"text\":" + json(text).dump() + ",\"prompt\":" + json(prompt).dump() + "}\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return 0;
}

int run_dataset(const Opts &o, const Tokenizer &tok) {
  ChatTemplate tmpl = resolve_template(o, tok);
  if (o.render) return run_render(o, tok, tmpl);
  toml::table cfg{{"path", o.dataset},           {"format", o.format},     {"train_on", o.train_on},
                  {"skip_bad_lines", o.skip_bad}, {"overflow", o.overflow}};
  Dataset d = load_dataset("cli", cfg, tok, tmpl, o.seq_len, o.cache_dir);
  std::string out;
  for (size_t i = 0; i < d.examples.size(); ++i) {
    out = "{\"ids\":";
    append_ids(out, d.examples[i].ids);
    out += ",\"labels\":";
    append_ids(out, d.examples[i].labels);
    out += ",\"prompt\":" + json(d.prompts[i]).dump() + "}\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  const DatasetStats &s = d.stats;
  std::fprintf(stderr,
               "keel: %s: %llu lines, %llu examples, %llu bad lines skipped, %llu truncated, %llu dropped, %llu tokens%s\n",
               o.dataset.c_str(), (unsigned long long)s.lines, (unsigned long long)s.examples,
               (unsigned long long)s.bad_lines, (unsigned long long)s.truncated, (unsigned long long)s.dropped,
               (unsigned long long)s.tokens, d.from_cache ? " (from the cache)" : "");
  return 0;
}

}  // namespace

Command add_tokenize_command(CLI::App &app) {
  auto o = std::make_shared<Opts>();
  auto *c = app.add_subcommand("tokenize", "stdin lines to JSON arrays of token ids (or back), or a dataset to ids and labels");
  c->add_option("--tokenizer", o->tokenizer, "a tokenizer.json, or a folder with one")->required();
  c->add_flag("--decode", o->decode, "read JSON arrays of ids, print the text");
  c->add_flag("--special", o->special, "add the post-processor's BOS/EOS when encoding");
  c->add_flag("--skip-special", o->skip_special, "leave special tokens out when decoding");
  c->add_flag("--json", o->json_lines, "lines of text are JSON strings (so they can hold newlines)");
  c->add_option("--dataset", o->dataset, "a JSONL (messages, prompt/completion, text) or .txt file: print {ids, labels, prompt} per example");
  c->add_option("--template", o->tmpl, "chat template: auto (the model's own), a .jinja file, chatml, llama3, mistral, plain");
  c->add_option("--template-name", o->template_name, "which of the tokenizer's named chat templates (default: default)");
  c->add_option("--template-kwargs", o->template_kwargs, "extra template variables as a JSON object, e.g. '{\"enable_thinking\": false}'");
  c->add_flag("--render", o->render, "with --dataset: print each conversation rendered as {text, prompt} instead of ids");
  c->add_option("--format", o->format, "dataset format: auto, messages, prompt_completion, text");
  c->add_option("--train-on", o->train_on, "auto, assistant, completion, all");
  c->add_option("--seq-len", o->seq_len, "longest example in tokens")->check(CLI::Range(int64_t{2}, int64_t{1} << 40));
  c->add_option("--overflow", o->overflow, "truncate or drop examples over --seq-len");
  c->add_flag("--skip-bad-lines", o->skip_bad, "skip and count bad lines instead of stopping");
  c->add_flag("--bench", o->bench, "time encoding stdin (or with --render, rendering the dataset); print the figures as JSON");
  c->add_option("--cache-dir", o->cache_dir, "cache the tokenised dataset here");
  return {c, [o] {
            Tokenizer tok = Tokenizer::load(o->tokenizer);
            return o->dataset.empty() ? run_encode_decode(*o, tok) : run_dataset(*o, tok);
          }};
}

}  // namespace keel
