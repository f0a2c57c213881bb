#include "tokenizer/added_tokens.hpp"

#include <algorithm>

#include "tokenizer/utf8.hpp"

namespace keel {

AddedTokens::AddedTokens(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken &t = tokens_[i];
    by_id_[t.id] = i;
    by_content_[t.content] = i;
    if (t.content.empty()) continue;
    Set &s = sets_[t.normalized];
    s.empty = false;
    s.by_first[static_cast<unsigned char>(t.content[0])].push_back(i);
  }
  for (Set &s : sets_)
    for (auto &v : s.by_first)
      std::stable_sort(v.begin(), v.end(), [&](size_t a, size_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
}

void AddedTokens::find(std::string_view s, bool normalized, std::vector<Match> &out) const {
  const Set &set = sets_[normalized];
  if (set.empty) return;
  size_t prev_end = 0;  // where the previous accepted token ended
  size_t i = 0;
  while (i < s.size()) {
    const auto &cands = set.by_first[static_cast<unsigned char>(s[i])];
    const AddedToken *hit = nullptr;
    for (size_t c : cands) {
      const std::string &t = tokens_[c].content;
      if (s.compare(i, t.size(), t) == 0) {
        hit = &tokens_[c];
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t b = i, e = i + hit->content.size();
    i = e;  // matches never overlap, a rejected one included (aho-corasick's iteration)
    if (hit->single_word) {
      size_t st;
      bool word_before = b > 0 && utf8::is_word_char(utf8::prev(s, b, st));
      size_t j = e;
      bool word_after = e < s.size() && utf8::is_word_char(utf8::next(s, j));
      if (word_before || word_after) continue;
    }
    if (hit->lstrip) {
      while (b > prev_end) {
        size_t st;
        if (!utf8::is_space(utf8::prev(s, b, st))) break;
        b = st;
      }
    }
    if (hit->rstrip) {
      while (e < s.size()) {
        size_t j = e;
        if (!utf8::is_space(utf8::next(s, j))) break;
        e = j;
      }
      i = e;
    }
    out.push_back({b, e, hit->id});
    prev_end = e;
  }
}

const AddedToken *AddedTokens::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken *AddedTokens::by_content(std::string_view c) const {
  auto it = by_content_.find(std::string(c));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace keel
