// A compiled PCRE2 pattern (UTF + UCP, JIT when available) for the Split pre-tokenizer and the
// byte-level regex. The Onig patterns HF ships (\p{L}, \p{N}, look-ahead, (?i:...)) compile
// unchanged under PCRE2 with these options.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

struct pcre2_real_code_8;

namespace keel {

class Regex {
 public:
  // literal = the pattern is a plain string (HF's {"String": ...} pattern). Throws UserError.
  Regex(const std::string &pattern, bool literal);
  ~Regex();
  Regex(const Regex &) = delete;
  Regex &operator=(const Regex &) = delete;

  // Finds the next match in subject at or after `start`; false when none.
  bool find(std::string_view subject, size_t start, size_t &match_begin, size_t &match_end) const;

 private:
  pcre2_real_code_8 *code_ = nullptr;
  bool jit_ = false;
};

}  // namespace keel
