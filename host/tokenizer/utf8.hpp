// UTF-8 helpers the tokenizer and the data loader share: validation, decoding one code point,
// lossy repair (as Rust's from_utf8_lossy, which HF's decoders use), Unicode whitespace.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace keel::utf8 {

// Byte offset of the first invalid sequence, or npos when `s` is valid UTF-8.
size_t find_invalid(std::string_view s);

// Length in bytes of the sequence starting with lead byte `b` (1 for a stray continuation byte).
inline size_t seq_len(unsigned char b) {
  return b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
}

// Decodes the code point at s[i] (valid UTF-8 assumed) and advances i.
char32_t next(std::string_view s, size_t &i);
// Decodes the code point ending just before s[end] (valid UTF-8 assumed); sets start.
char32_t prev(std::string_view s, size_t end, size_t &start);

void append(std::string &out, char32_t cp);

// Invalid sequences become U+FFFD, one per maximal invalid subpart (Rust's from_utf8_lossy).
std::string lossy(std::string_view s);

// Python's str.isspace / Rust's char::is_whitespace (White_Space property).
bool is_space(char32_t c);
// Rust regex's Unicode \w, which tokenizers uses for added tokens' single_word rule.
bool is_word_char(char32_t c);

// Strips White_Space code points at both ends (Jinja's `trim`, Python's str.strip()).
std::string_view trim(std::string_view s);

}  // namespace keel::utf8
