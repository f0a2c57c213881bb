// A piece of text on its way from the input to the BPE model, with what is needed to map the
// bytes of its tokens back to byte offsets in the encoded input (used for chat-template loss masks).
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

struct Piece {
  std::string_view text;
  // Byte i of `text` comes from input offset begin + i, or map[i] when map is set (text that the
  // normalizer or a pre-tokenizer rewrote; map has text.size() + 1 entries).
  uint32_t begin = 0, end = 0;
  const uint32_t *map = nullptr;

  uint32_t at(size_t i) const { return map ? map[i] : begin + static_cast<uint32_t>(i); }
  // The sub-piece [b, e) of this one.
  Piece sub(size_t b, size_t e) const {
    Piece p = *this;
    p.text = text.substr(b, e - b);
    if (map) p.map = map + b;
    p.begin = at(b);
    p.end = at(e);
    return p;
  }
};

// Owns the texts and maps that rewritten pieces point into, for the length of one encode call.
struct PieceArena {
  std::deque<std::string> texts;
  std::deque<std::vector<uint32_t>> maps;
};

}  // namespace keel
