// GPT-2's reversible map of the 256 byte values onto printable code points, in which byte-level
// vocabularies (GPT-2, Llama 3, Qwen) write their tokens.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace keel::byte_level {

// The printable character (UTF-8) that stands for byte b.
const std::string &char_of(unsigned char b);
// Raw bytes of a token written with the map; nullopt when a character is not in it.
std::optional<std::string> to_bytes(std::string_view token);
// The token as the map writes it.
std::string from_bytes(std::string_view bytes);

}  // namespace keel::byte_level
