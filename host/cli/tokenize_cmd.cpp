// keel tokenize --tokenizer PATH [--decode] [--special] [--json]
// keel tokenize --tokenizer PATH --dataset FILE [--template NAME] [--train-on X] [--seq-len N] ...
//
// Encodes stdin lines to one JSON array of ids per line (ARCHITECTURE.md §4), decodes arrays back
// to text, or runs a dataset through the same loader training uses and prints each example's ids,
// labels and prompt as a JSON line: the data pipeline, inspectable and testable from the shell.
#include <chrono>
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
#include "tokenizer/tokenizer.hpp"

using json = nlohmann::json;

namespace keel {
namespace {

struct Opts {
  std::string tokenizer, dataset, tmpl = "auto", format = "auto", train_on = "auto", overflow = "truncate", cache_dir;
  bool decode = false, special = false, skip_special = false, json_lines = false, skip_bad = false, bench = false;
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

int run_dataset(const Opts &o, const Tokenizer &tok) {
  ChatTemplate tmpl = ChatTemplate::resolve(o.tmpl, tok);
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
  c->add_option("--template", o->tmpl, "chat template: auto, chatml, llama3, mistral, plain");
  c->add_option("--format", o->format, "dataset format: auto, messages, prompt_completion, text");
  c->add_option("--train-on", o->train_on, "auto, assistant, completion, all");
  c->add_option("--seq-len", o->seq_len, "longest example in tokens")->check(CLI::Range(int64_t{2}, int64_t{1} << 40));
  c->add_option("--overflow", o->overflow, "truncate or drop examples over --seq-len");
  c->add_flag("--skip-bad-lines", o->skip_bad, "skip and count bad lines instead of stopping");
  c->add_flag("--bench", o->bench, "time encoding stdin (read whole first); print bytes, tokens, seconds, MB/s as JSON");
  c->add_option("--cache-dir", o->cache_dir, "cache the tokenised dataset here");
  return {c, [o] {
            Tokenizer tok = Tokenizer::load(o->tokenizer);
            return o->dataset.empty() ? run_encode_decode(*o, tok) : run_dataset(*o, tok);
          }};
}

}  // namespace keel
