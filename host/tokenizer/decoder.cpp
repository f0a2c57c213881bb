#include "tokenizer/decoder.hpp"

#include <fmt/format.h>

#include "common/errors.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/utf8.hpp"

namespace keel {
namespace {

// Each token's characters back to bytes; a token with a character outside the byte map (an added
// token written in plain text) is kept as it is, as tokenizers does.
class ByteLevelDec : public Decoder {
 public:
  void apply(std::vector<std::string> &tokens) const override {
    std::string all;
    for (const std::string &t : tokens) {
      auto b = byte_level::to_bytes(t);
      all += b ? *b : t;
    }
    tokens.assign(1, utf8::lossy(all));
  }
};

void replace_all(std::string &s, const std::string &from, const std::string &to) {
  if (from.empty()) return;
  for (size_t i = 0; (i = s.find(from, i)) != std::string::npos; i += to.size()) s.replace(i, from.size(), to);
}

class MetaspaceDec : public Decoder {
 public:
  MetaspaceDec(const nlohmann::json &j) {
    repl_ = j.value("replacement", std::string("\xE2\x96\x81"));
    std::string scheme = j.contains("prepend_scheme") ? j["prepend_scheme"].get<std::string>()
                                                      : (j.value("add_prefix_space", true) ? "always" : "never");
    strip_first_ = scheme != "never";
  }
  void apply(std::vector<std::string> &tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      replace_all(tokens[i], repl_, " ");
      if (i == 0 && strip_first_ && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
    }
  }

 private:
  std::string repl_;
  bool strip_first_;
};

class ReplaceDec : public Decoder {
 public:
  ReplaceDec(const nlohmann::json &j) {
    if (!j.at("pattern").contains("String"))
      throw UserError("tokenizer.json: decoder Replace with a Regex pattern is not supported, expected a String pattern");
    from_ = j["pattern"]["String"].get<std::string>();
    to_ = j.at("content").get<std::string>();
  }
  void apply(std::vector<std::string> &tokens) const override {
    for (std::string &t : tokens) replace_all(t, from_, to_);
  }

 private:
  std::string from_, to_;
};

// Runs of <0xXX> tokens become their bytes when those form valid UTF-8; else one U+FFFD per byte.
class ByteFallbackDec : public Decoder {
 public:
  void apply(std::vector<std::string> &tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t nbytes = 0;
    auto flush = [&] {
      if (!nbytes) return;
      if (utf8::find_invalid(bytes) == std::string::npos) out.push_back(bytes);
      else
        for (size_t k = 0; k < nbytes; ++k) out.push_back("\xEF\xBF\xBD");
      bytes.clear();
      nbytes = 0;
    };
    for (std::string &t : tokens) {
      unsigned v;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::sscanf(t.c_str() + 3, "%2x", &v) == 1) {
        bytes += static_cast<char>(v);
        ++nbytes;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDec : public Decoder {
 public:
  void apply(std::vector<std::string> &tokens) const override {
    std::string all;
    for (const std::string &t : tokens) all += t;
    tokens.assign(1, all);
  }
};

class StripDec : public Decoder {
 public:
  StripDec(const nlohmann::json &j) {
    content_ = j.at("content").get<std::string>();
    start_ = j.value("start", 0);
    stop_ = j.value("stop", 0);
  }
  void apply(std::vector<std::string> &tokens) const override {
    for (std::string &t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && t.compare(b, content_.size(), content_) == 0; ++k) b += content_.size();
      for (size_t k = 0; k < stop_ && e >= b + content_.size() && t.compare(e - content_.size(), content_.size(), content_) == 0; ++k)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class SequenceDec : public Decoder {
 public:
  explicit SequenceDec(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void apply(std::vector<std::string> &tokens) const override {
    for (const auto &p : parts_) p->apply(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> Decoder::from_json(const nlohmann::json &j) {
  if (j.is_null()) return nullptr;
  std::string type = j.value("type", "");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDec>();
  if (type == "Metaspace") return std::make_unique<MetaspaceDec>(j);
  if (type == "Replace") return std::make_unique<ReplaceDec>(j);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDec>();
  if (type == "Fuse") return std::make_unique<FuseDec>();
  if (type == "Strip") return std::make_unique<StripDec>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const auto &d : j.at("decoders"))
      if (auto p = from_json(d)) parts.push_back(std::move(p));
    return std::make_unique<SequenceDec>(std::move(parts));
  }
  throw UserError(fmt::format("tokenizer.json: decoder '{}' is not supported (keel supports ByteLevel, Metaspace, "
                              "Replace, ByteFallback, Fuse, Strip, Sequence)",
                              type));
}

}  // namespace keel
