// The BPE model of tokenizer.json. It works on raw bytes: a byte-level vocabulary is translated back
// to bytes at load, so no text is ever re-encoded while tokenizing. Merges live in an open-addressing
// table keyed by the pair of ids; words are merged with a heap (no quadratic case on long words),
// and each word's result is cached.
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace keel {

// The largest token id keel accepts (16M; real vocabularies have up to a few hundred thousand).
constexpr int32_t kMaxTokenId = 1 << 24;

// A token id read from tokenizer.json: an integer in [0, kMaxTokenId), else UserError naming `what`
// (nlohmann's get<int32_t> would cast 1e51 or -1 without a word).
int32_t token_id(const nlohmann::json &v, std::string_view what);

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const;
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class Bpe {
 public:
  // model: tokenizer.json's "model" (type BPE). byte_level: keys are written with the byte map.
  Bpe(const nlohmann::json &model, bool byte_level);

  // Appends the tokens of one word and, when lens is given, each token's length in bytes of `word`.
  void tokenize(std::string_view word, std::vector<int32_t> &ids, std::vector<uint32_t> *lens) const;

  std::optional<int32_t> find(std::string_view bytes) const;  // raw bytes → id
  const std::string &key(int32_t id) const { return keys_[id]; }  // as tokenizer.json writes it
  size_t size() const { return keys_.size(); }                     // one past the largest id
  bool byte_fallback() const { return byte_fallback_; }

 private:
  struct Merge {
    int32_t rank, id;
  };
  // Open addressing, linear probing, on (left id, right id).
  struct MergeTable {
    std::vector<uint64_t> keys;
    std::vector<Merge> vals;
    uint64_t mask = 0;
    void build(const std::vector<std::pair<uint64_t, Merge>> &items);
    const Merge *get(int32_t a, int32_t b) const;
  };

  void merge_word(std::string_view word, std::vector<int32_t> &ids, std::vector<uint32_t> &lens) const;

  std::vector<std::string> keys_;  // id → key in tokenizer.json
  StringIdMap ids_;                // raw bytes → id
  MergeTable merges_;
  int32_t byte_ids_[256];          // byte-level: id of each single byte (-1 when absent)
  int32_t fallback_ids_[256];      // byte_fallback: id of <0xXX>
  bool byte_level_, byte_fallback_ = false, ignore_merges_ = false, fuse_unk_ = false;
  std::optional<int32_t> unk_;

  // Per-word cache: word → [start, start + n) in the pools. Cleared when it grows past a bound.
  struct Cached {
    uint32_t start, n;
  };
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, Cached, StringHash, std::equal_to<>> cache_;
  mutable std::vector<int32_t> pool_ids_;
  mutable std::vector<uint32_t> pool_lens_;
};

}  // namespace keel
