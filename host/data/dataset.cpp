#include "data/dataset.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include "common/errors.hpp"
#include "data/dataset_cache.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace fs = std::filesystem;

namespace keel {
namespace {

constexpr const char *kCacheVersion = "keel-data-v2";  // v2: Jinja-rendered templates

std::string setting(const toml::table &t, const char *key, const char *def) {
  auto v = t[key].value<std::string>();
  return v ? *v : def;
}

TrainOn train_on_for(const std::string &s, DataFormat f, const std::string &where) {
  if (s == "auto") return f == DataFormat::messages ? TrainOn::assistant
                          : f == DataFormat::prompt_completion ? TrainOn::completion : TrainOn::all;
  if (s == "all") return TrainOn::all;
  if (s == "assistant") {
    if (f == DataFormat::text)
      throw UserError(fmt::format("{}: train_on = \"assistant\" needs conversations, but this source is text; expected "
                                  "\"all\" or \"auto\"", where));
    return TrainOn::assistant;
  }
  if (s == "completion") {
    if (f == DataFormat::text)
      throw UserError(fmt::format("{}: train_on = \"completion\" needs prompt/completion or messages, but this source is "
                                  "text; expected \"all\" or \"auto\"", where));
    return TrainOn::completion;
  }
  throw UserError(fmt::format("{}: train_on = \"{}\", expected auto, assistant, completion or all", where, s));
}

}  // namespace

Dataset load_dataset(const std::string &name, const toml::table &cfg, const Tokenizer &tok, const ChatTemplate &tmpl,
                     int64_t seq_len, const fs::path &cache_dir) {
  const std::string where = fmt::format("[data.{}]", name);
  auto path_v = cfg["path"].value<std::string>();
  if (!path_v || path_v->empty()) throw UserError(fmt::format("{}: no path = \"...\" given", where));
  const fs::path path = *path_v;
  const std::string format_s = setting(cfg, "format", "auto"), train_on_s = setting(cfg, "train_on", "auto"),
                    overflow = setting(cfg, "overflow", "truncate");
  const bool skip_bad = cfg["skip_bad_lines"].value<bool>().value_or(false);
  if (overflow != "truncate" && overflow != "drop")
    throw UserError(fmt::format("{}: overflow = \"{}\", expected truncate or drop", where, overflow));
  if (seq_len < 2) throw UserError(fmt::format("{}: seq_len {} is too short, expected at least 2", where, seq_len));

  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(fmt::format("{}: {}: no such file or not readable", where, path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string contents = ss.str();

  // The cache key covers everything the examples depend on.
  fs::path cache_file;
  if (!cache_dir.empty()) {
    std::string key = fmt::format("{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n", kCacheVersion, tok.fingerprint(), tmpl.fingerprint(),
                                  format_s, train_on_s, overflow, skip_bad, seq_len, path.extension().string());
    XXH3_state_t *st = XXH3_createState();
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, key.data(), key.size());
    XXH3_128bits_update(st, contents.data(), contents.size());
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    cache_file = cache_dir / fmt::format("{}-{:016x}{:016x}.bin", name, h.high64, h.low64);
    if (auto d = read_dataset_cache(cache_file)) {
      d->name = name;
      spdlog::debug("{}: {} examples from the cache {}", where, d->examples.size(), cache_file.string());
      return std::move(*d);
    }
  }

  Dataset d;
  d.name = name;
  std::optional<DataFormat> fmt_fixed;
  if (format_s == "messages") fmt_fixed = DataFormat::messages;
  else if (format_s == "prompt_completion") fmt_fixed = DataFormat::prompt_completion;
  else if (format_s == "text") fmt_fixed = DataFormat::text;
  else if (format_s != "auto")
    throw UserError(fmt::format("{}: format = \"{}\", expected auto, messages, prompt_completion or text", where, format_s));
  const bool txt = path.extension() == ".txt";
  if (txt && fmt_fixed && *fmt_fixed != DataFormat::text)
    throw UserError(fmt::format("{}: {} is a .txt file, which is read as text; expected format = \"text\" or \"auto\"",
                                where, path.string()));

  std::optional<TrainOn> train_on;
  std::string first_bad;
  auto bad = [&](size_t line_no, const std::string &why) {
    std::string msg = fmt::format("{}:{}: {}", path.string(), line_no, why);
    if (!skip_bad) throw UserError(msg);
    if (first_bad.empty()) first_bad = msg;
    ++d.stats.bad_lines;
  };

  size_t line_no = 0, pos = 0;
  while (pos < contents.size()) {
    size_t nl = contents.find('\n', pos);
    if (nl == std::string::npos) nl = contents.size();
    std::string_view line(contents.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank lines are not data
    ++d.stats.lines;

    std::optional<Record> rec;
    std::string why;
    if (txt) {
      if (size_t b = utf8::find_invalid(line); b != std::string_view::npos) why = fmt::format("invalid UTF-8 at byte {}, expected UTF-8 text", b + 1);
      else rec = Record{.format = DataFormat::text, .text = std::string(line)};
    } else {
      rec = parse_jsonl_record(line, fmt_fixed, why);
    }
    if (!rec) {
      bad(line_no, why);
      continue;
    }
    if (!fmt_fixed) fmt_fixed = rec->format;  // the first good line fixes the source's format
    if (!train_on) train_on = train_on_for(train_on_s, rec->format, where);

    BuiltExample b;
    try {
      b = build_example(*rec, *train_on, tok, tmpl);
    } catch (const UserError &e) {  // an unresolved template, a text the tokenizer refuses
      throw UserError(fmt::format("{}:{}: {}", path.string(), line_no, e.what()));
    }
    if (!b.why.empty()) {
      bad(line_no, b.why);
      continue;
    }
    Example &ex = b.example;
    if (static_cast<int64_t>(ex.ids.size()) > seq_len) {
      if (overflow == "drop") {
        ++d.stats.dropped;
        continue;
      }
      ex.ids.resize(seq_len);
      ex.labels.resize(seq_len);
      bool any = false;
      for (int32_t l : ex.labels) any = any || l != kIgnoreLabel;
      if (!any) {  // the trained part was cut off entirely: nothing left to learn from
        ++d.stats.dropped;
        continue;
      }
      ++d.stats.truncated;
    }
    d.stats.tokens += ex.ids.size();
    d.examples.push_back(std::move(ex));
    d.prompts.push_back(std::move(b.prompt));
  }
  d.stats.examples = d.examples.size();
  if (d.stats.bad_lines)
    spdlog::warn("{}: skipped {} bad line(s) of {}; the first: {}", where, d.stats.bad_lines, d.stats.lines, first_bad);
  if (d.examples.empty())
    throw UserError(fmt::format("{}: {} has no usable examples ({} lines, {} bad, {} dropped)", where, path.string(),
                                d.stats.lines, d.stats.bad_lines, d.stats.dropped));
  if (!cache_file.empty()) write_dataset_cache(cache_file, d);
  return d;
}

}  // namespace keel
