// Pre-tokenizers of tokenizer.json: Split (PCRE2), ByteLevel, Metaspace, Sequence. Each one turns
// a list of pieces into a finer one; the BPE model then sees each piece as one word.
#pragma once
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/piece.hpp"

namespace keel {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their splits. want_map: rewritten pieces must carry offset maps.
  virtual void split(std::vector<Piece> &pieces, PieceArena &arena, bool want_map) const = 0;
  // True when this (or a part of it) is ByteLevel: the vocabulary is then byte-level encoded.
  virtual bool byte_level() const { return false; }

  // null json → nullptr. Throws UserError naming an unsupported component.
  static std::unique_ptr<PreTokenizer> from_json(const nlohmann::json &j);
};

}  // namespace keel
