// words.hpp — whitespace tokenisation shared by the text metrics (distinct_ngrams, self_bleu,
// mode_share). Header-only and built into each plugin (plugins/common has no CMakeLists.txt, so it
// is no plugin itself). It splits exactly where Python's str.split() does, so that the metrics
// agree with the Python references (NLTK's Self-BLEU on `text.split()`) on any UTF-8 input.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace keel::text {

// Length in bytes of the whitespace code point at s[i], or 0 when s[i] does not start one.
// The set is Python's str.isspace(): ASCII \t\n\v\f\r, \x1c-\x1f, space, and the Unicode
// spaces U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
inline size_t space_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
  if (c == 0xc2 && i + 1 < s.size() && (b(i + 1) == 0x85 || b(i + 1) == 0xa0)) return 2;
  if (i + 2 >= s.size()) return 0;
  const unsigned c1 = b(i + 1), c2 = b(i + 2);
  if (c == 0xe1 && c1 == 0x9a && c2 == 0x80) return 3;                 // U+1680
  if (c == 0xe2 && c1 == 0x80 && (c2 <= 0x8a || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf))
    return 3;                                                           // U+2000-200A, 2028, 2029, 202F
  if (c == 0xe2 && c1 == 0x81 && c2 == 0x9f) return 3;                 // U+205F
  if (c == 0xe3 && c1 == 0x80 && c2 == 0x80) return 3;                 // U+3000
  return 0;
}

// The words of `s`: maximal runs of non-whitespace, views into `s`.
inline std::vector<std::string_view> split_words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0, start = std::string_view::npos;
  while (i < s.size()) {
    const size_t w = space_len(s, i);
    if (w) {
      if (start != std::string_view::npos) out.push_back(s.substr(start, i - start));
      start = std::string_view::npos;
      i += w;
    } else {
      if (start == std::string_view::npos) start = i;
      ++i;
    }
  }
  if (start != std::string_view::npos) out.push_back(s.substr(start));
  return out;
}

}  // namespace keel::text
