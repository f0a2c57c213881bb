// Normalizers of tokenizer.json: NFC, NFD, NFKC, NFKD (through ICU), Prepend, Replace (string
// patterns) and Sequence. Anything else is refused at load, naming the component.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace keel {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Returns true and writes `out` when the text changes; false (out untouched) when it does not,
  // so the common case costs no copy. When `map` is given and the text changes, it gets, for each
  // byte of `out` and one past its end, the offset in `in` it comes from (for token offsets).
  virtual bool apply(std::string_view in, std::string &out, std::vector<uint32_t> *map = nullptr) const = 0;

  // null json → nullptr (no normalizer). Throws UserError for an unsupported component.
  static std::unique_ptr<Normalizer> from_json(const nlohmann::json &j);
};

}  // namespace keel
