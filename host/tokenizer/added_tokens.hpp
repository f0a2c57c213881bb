// Added tokens (special or not) are matched in the text before anything else, leftmost-longest as
// tokenizers' AddedVocabulary does, honouring single_word, lstrip and rstrip. Tokens with
// normalized = false are matched in the raw text, the others in the normalized text.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace keel {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

class AddedTokens {
 public:
  explicit AddedTokens(std::vector<AddedToken> tokens);

  struct Match {
    size_t begin, end;  // the span the token replaces (with the whitespace lstrip/rstrip absorb)
    int32_t id;
  };
  // Matches of the tokens whose `normalized` flag equals `normalized`, in order, non-overlapping.
  void find(std::string_view text, bool normalized, std::vector<Match> &out) const;

  const AddedToken *by_id(int32_t id) const;
  const AddedToken *by_content(std::string_view content) const;
  const std::vector<AddedToken> &all() const { return tokens_; }
  bool any(bool normalized) const { return !sets_[normalized].empty; }

 private:
  struct Set {
    bool empty = true;
    std::array<std::vector<size_t>, 256> by_first;  // token indices by first byte, longest first
  };
  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  Set sets_[2];
};

}  // namespace keel
