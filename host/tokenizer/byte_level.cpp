#include "tokenizer/byte_level.hpp"

#include <array>
#include <unordered_map>

#include "tokenizer/utf8.hpp"

namespace keel::byte_level {
namespace {

struct Tables {
  std::array<std::string, 256> chars;
  std::unordered_map<char32_t, unsigned char> bytes;
  Tables() {
    // Printable Latin-1 bytes stand for themselves; the rest are shifted to U+0100 and up.
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      utf8::append(chars[b], cp);
      bytes[cp] = static_cast<unsigned char>(b);
    }
  }
};
const Tables &tables() {
  static const Tables t;
  return t;
}

}  // namespace

const std::string &char_of(unsigned char b) { return tables().chars[b]; }

std::optional<std::string> to_bytes(std::string_view token) {
  const Tables &t = tables();
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    auto it = t.bytes.find(utf8::next(token, i));
    if (it == t.bytes.end()) return std::nullopt;
    out += static_cast<char>(it->second);
  }
  return out;
}

std::string from_bytes(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) out += char_of(b);
  return out;
}

}  // namespace keel::byte_level
