// Decoders of tokenizer.json: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence.
// Like tokenizers, a decoder maps the list of token strings to a list of strings, then the result
// is joined and any invalid UTF-8 replaced by U+FFFD.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace keel {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void apply(std::vector<std::string> &tokens) const = 0;
  // null json → nullptr (tokens are joined as they are). Throws UserError when unsupported.
  static std::unique_ptr<Decoder> from_json(const nlohmann::json &j);
};

}  // namespace keel
