#include "tokenizer/pretokenizer.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "tokenizer/regex.hpp"
#include "tokenizer/utf8.hpp"

namespace keel {
namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior behavior_from(const std::string &b) {
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  throw UserError(fmt::format("tokenizer.json: Split behavior '{}' is not one of Removed, Isolated, "
                              "MergedWithPrevious, MergedWithNext, Contiguous", b));
}

// Splits each piece around the matches of `re`, as tokenizers' NormalizedString::split does.
void split_by(const Regex &re, Behavior behavior, bool invert, std::vector<Piece> &pieces) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 4);
  struct Part {
    size_t b, e;
    bool match;
  };
  std::vector<Part> parts;
  for (const Piece &p : pieces) {
    std::string_view s = p.text;
    size_t pos = 0, prev = 0, mb, me;
    const bool direct = behavior == Behavior::Isolated && !invert;  // the hot path: every part is a piece
    parts.clear();
    while (pos <= s.size() && re.find(s, pos, mb, me)) {
      if (direct) {
        if (mb > prev) out.push_back(p.sub(prev, mb));
        if (me > mb) out.push_back(p.sub(mb, me));
      } else {
        if (mb > prev) parts.push_back({prev, mb, false});
        parts.push_back({mb, me, true});
      }
      prev = me;
      if (me > mb) pos = me;
      else if (mb >= s.size()) break;
      else pos = mb + utf8::seq_len(static_cast<unsigned char>(s[mb]));  // an empty match advances one char
    }
    if (direct) {
      if (prev < s.size()) out.push_back(p.sub(prev, s.size()));
      continue;
    }
    if (prev < s.size()) parts.push_back({prev, s.size(), false});
    if (invert)
      for (Part &x : parts) x.match = !x.match;
    std::vector<Part> res;
    bool prev_match = false;
    switch (behavior) {
      case Behavior::Isolated: res = parts; break;
      case Behavior::Removed:
        for (const Part &x : parts)
          if (!x.match) res.push_back(x);
        break;
      case Behavior::Contiguous:
        for (const Part &x : parts) {
          if (x.match == prev_match && !res.empty()) res.back().e = x.e;
          else res.push_back(x);
          prev_match = x.match;
        }
        break;
      case Behavior::MergedWithPrevious:
        for (const Part &x : parts) {
          if (x.match && !prev_match && !res.empty()) res.back().e = x.e;
          else res.push_back(x);
          prev_match = x.match;
        }
        break;
      case Behavior::MergedWithNext:
        for (size_t k = parts.size(); k-- > 0;) {
          const Part &x = parts[k];
          if (x.match && !prev_match && !res.empty()) res.back().b = x.b;
          else res.push_back(x);
          prev_match = x.match;
        }
        std::reverse(res.begin(), res.end());
        break;
    }
    for (const Part &x : res)
      if (x.e > x.b) out.push_back(p.sub(x.b, x.e));
  }
  pieces.swap(out);
}

class Split : public PreTokenizer {
 public:
  Split(const nlohmann::json &j) {
    const auto &pat = j.at("pattern");
    if (pat.contains("Regex")) re_ = std::make_unique<Regex>(pat.at("Regex").get<std::string>(), false);
    else if (pat.contains("String")) re_ = std::make_unique<Regex>(pat.at("String").get<std::string>(), true);
    else throw UserError("tokenizer.json: Split pattern must be {\"Regex\": ...} or {\"String\": ...}");
    behavior_ = behavior_from(j.at("behavior").get<std::string>());
    invert_ = j.value("invert", false);
  }
  void split(std::vector<Piece> &pieces, PieceArena &, bool) const override { split_by(*re_, behavior_, invert_, pieces); }

 private:
  std::unique_ptr<Regex> re_;
  Behavior behavior_;
  bool invert_;
};

// Prepends `prefix` to a piece, keeping its offset map: the inserted bytes map to where it starts.
Piece prepend(const Piece &p, std::string_view prefix, PieceArena &arena, bool want_map) {
  std::string &t = arena.texts.emplace_back(prefix);
  t.append(p.text);
  Piece q = p;
  q.text = t;
  if (want_map) {
    std::vector<uint32_t> &m = arena.maps.emplace_back();
    m.reserve(t.size() + 1);
    for (size_t i = 0; i < prefix.size(); ++i) m.push_back(p.at(0));
    for (size_t i = 0; i <= p.text.size(); ++i) m.push_back(p.at(i));
    q.map = m.data();
  }
  return q;
}

// GPT-2's pattern, which ByteLevel applies when use_regex is true.
constexpr const char *kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(const nlohmann::json &j) {
    add_prefix_space_ = j.value("add_prefix_space", true);
    if (j.value("use_regex", true)) re_ = std::make_unique<Regex>(kGpt2Pattern, false);
  }
  void split(std::vector<Piece> &pieces, PieceArena &arena, bool want_map) const override {
    if (add_prefix_space_)
      for (Piece &p : pieces)
        if (p.text.empty() || p.text[0] != ' ') p = prepend(p, " ", arena, want_map);
    if (re_) split_by(*re_, Behavior::Isolated, false, pieces);
    // The mapping of bytes to printable characters is implicit: keel's BPE works on raw bytes.
  }
  bool byte_level() const override { return true; }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
};

class Metaspace : public PreTokenizer {
 public:
  Metaspace(const nlohmann::json &j) {
    repl_ = j.value("replacement", std::string("\xE2\x96\x81"));
    if (j.contains("prepend_scheme")) scheme_ = j.at("prepend_scheme").get<std::string>();
    else scheme_ = j.value("add_prefix_space", true) ? "always" : "never";
    if (scheme_ != "always" && scheme_ != "never" && scheme_ != "first")
      throw UserError(fmt::format("tokenizer.json: Metaspace prepend_scheme '{}' is not always, never or first", scheme_));
    split_ = j.value("split", true);
    if (split_) re_ = std::make_unique<Regex>(repl_, true);
  }
  void split(std::vector<Piece> &pieces, PieceArena &arena, bool want_map) const override {
    for (Piece &p : pieces) p = rewrite(p, arena, want_map);
    if (split_) split_by(*re_, Behavior::MergedWithNext, false, pieces);
  }

 private:
  // Spaces become the replacement; the replacement is prepended per prepend_scheme ("first":
  // only to the piece at the very start of the input, as tokenizers checks its original offset).
  Piece rewrite(const Piece &p, PieceArena &arena, bool want_map) const {
    bool at_start = p.at(0) == 0;
    bool pre = (scheme_ == "always" || (scheme_ == "first" && at_start)) && p.text.substr(0, repl_.size()) != repl_;
    // A piece starting with a space gets the replacement from the space itself, not a second one.
    if (pre && !p.text.empty() && p.text[0] == ' ') pre = false;
    std::string &t = arena.texts.emplace_back();
    std::vector<uint32_t> *m = nullptr;
    if (want_map) m = &arena.maps.emplace_back();
    if (pre) {
      t = repl_;
      if (m) m->assign(repl_.size(), p.at(0));
    }
    for (size_t i = 0; i < p.text.size(); ++i) {
      if (p.text[i] == ' ') {
        t += repl_;
        if (m) m->insert(m->end(), repl_.size(), p.at(i));
      } else {
        t += p.text[i];
        if (m) m->push_back(p.at(i));
      }
    }
    Piece q = p;
    q.text = t;
    if (m) {
      m->push_back(p.at(p.text.size()));
      q.map = m->data();
    }
    return q;
  }
  std::string repl_, scheme_;
  bool split_;
  std::unique_ptr<Regex> re_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {
    for (size_t i = 0; i + 1 < parts_.size(); ++i)
      if (parts_[i]->byte_level())
        throw UserError("tokenizer.json: a ByteLevel pre-tokenizer followed by others in a Sequence is not "
                        "supported, expected ByteLevel last");
  }
  void split(std::vector<Piece> &pieces, PieceArena &arena, bool want_map) const override {
    for (const auto &p : parts_) p->split(pieces, arena, want_map);
  }
  bool byte_level() const override { return !parts_.empty() && parts_.back()->byte_level(); }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> PreTokenizer::from_json(const nlohmann::json &j) {
  if (j.is_null()) return nullptr;
  std::string type = j.value("type", "");
  if (type == "Split") return std::make_unique<Split>(j);
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(j);
  if (type == "Metaspace") return std::make_unique<Metaspace>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto &p : j.at("pretokenizers"))
      if (auto q = from_json(p)) parts.push_back(std::move(q));
    return std::make_unique<Sequence>(std::move(parts));
  }
  throw UserError(fmt::format("tokenizer.json: pre-tokenizer '{}' is not supported (keel supports Split, ByteLevel, "
                              "Metaspace, Sequence)",
                              type));
}

}  // namespace keel
