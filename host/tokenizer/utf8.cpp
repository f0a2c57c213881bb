#include "tokenizer/utf8.hpp"

#include <unicode/uchar.h>

namespace keel::utf8 {

// Length of the valid sequence at s[i], or 0 when it is invalid (overlong, surrogate, > U+10FFFF,
// truncated). `bad` gets the length of the maximal invalid subpart to skip.
static size_t valid_len(std::string_view s, size_t i, size_t &bad) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  size_t n = s.size();
  unsigned char b = p[i];
  bad = 1;
  if (b < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) len = 2;
  else if (b >= 0xE0 && b <= 0xEF) {
    len = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else return 0;
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= n) return 0;
    unsigned char c = p[i + k];
    if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return 0;
    bad = k + 1;
  }
  return len;
}

size_t find_invalid(std::string_view s) {
  size_t i = 0, bad;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) { ++i; continue; }
    size_t l = valid_len(s, i, bad);
    if (!l) return i;
    i += l;
  }
  return std::string_view::npos;
}

char32_t next(std::string_view s, size_t &i) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t len = seq_len(b);
  if (i + len > s.size()) len = 1;
  char32_t c = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < len; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += len;
  return c;
}

char32_t prev(std::string_view s, size_t end, size_t &start) {
  start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 && end - start < 4) --start;
  size_t j = start;
  return next(s, j);
}

void append(std::string &out, char32_t c) {
  if (c < 0x80) out += static_cast<char>(c);
  else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string lossy(std::string_view s) {
  if (find_invalid(s) == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0, bad;
  while (i < s.size()) {
    size_t l = valid_len(s, i, bad);
    if (l) {
      out.append(s.substr(i, l));
      i += l;
    } else {
      out += "\xEF\xBF\xBD";
      i += bad;
    }
  }
  return out;
}

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  // Rust regex's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation, joiners.
  auto u = static_cast<UChar32>(c);
  int8_t t = u_charType(u);
  return u_hasBinaryProperty(u, UCHAR_ALPHABETIC) || t == U_NON_SPACING_MARK || t == U_COMBINING_SPACING_MARK ||
         t == U_ENCLOSING_MARK || t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION || c == 0x200C || c == 0x200D;
}

std::string_view trim(std::string_view s) {
  size_t b = 0;
  while (b < s.size()) {
    size_t j = b;
    char32_t c = next(s, j);
    if (!is_space(c) && !(c >= 0x1C && c <= 0x1F)) break;
    b = j;
  }
  size_t e = s.size();
  while (e > b) {
    size_t st;
    char32_t c = prev(s, e, st);
    if (!is_space(c) && !(c >= 0x1C && c <= 0x1F)) break;
    e = st;
  }
  return s.substr(b, e - b);
}

}  // namespace keel::utf8
