// ngrams.hpp — exact n-gram ids for the text metrics (distinct_ngrams, self_bleu). Header-only,
// built into each plugin. Units (word ids or token ids) are numbered densely; then each k-gram gets
// a dense id from the pair (id of its first k-1 units, id of its last unit), so every order costs
// one hash lookup per position and equal n-grams get equal ids with no collisions.
#pragma once
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "words.hpp"

namespace keel::text {

using Seq = std::vector<uint64_t>;  // one generation as unit ids

// Gives each distinct word of `texts` a dense id; returns one id sequence per text.
inline std::vector<Seq> word_ids(const std::vector<std::string_view> &texts) {
  std::unordered_map<std::string_view, uint64_t> ids;
  std::vector<Seq> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    for (std::string_view w : split_words(texts[i]))
      out[i].push_back(ids.emplace(w, ids.size()).first->second);
  return out;
}

// N-gram ids order by order: after next(), ids()[i] holds the k-gram ids of sequence i (one per
// start position, empty when the sequence is shorter than k) and distinct() their number.
class NgramOrders {
 public:
  explicit NgramOrders(const std::vector<Seq> &seqs) : seqs_(seqs), ids_(seqs.size()) {}

  void next() {
    ++k_;
    std::unordered_map<uint64_t, uint64_t> intern;
    auto id_of = [&](uint64_t key) { return intern.emplace(key, intern.size()).first->second; };
    for (size_t i = 0; i < seqs_.size(); ++i) {
      const Seq &s = seqs_[i];
      Seq &prev = ids_[i];
      Seq cur;
      if (s.size() >= k_) {
        cur.resize(s.size() - k_ + 1);
        for (size_t p = 0; p < cur.size(); ++p)
          // k = 1: the unit itself; k > 1: the (k-1)-gram at p extended by unit p+k-1. Both
          // parts are dense ids below 2^32 (far more n-grams than fit in memory otherwise).
          cur[p] = id_of(k_ == 1 ? s[p] : (prev[p] << 32) | unigrams_[i][p + k_ - 1]);
      }
      prev = std::move(cur);
    }
    if (k_ == 1) unigrams_ = ids_;  // the dense id of each unit, for the orders above
    distinct_ = intern.size();
  }
  size_t order() const { return k_; }
  const std::vector<Seq> &ids() const { return ids_; }
  uint64_t distinct() const { return distinct_; }

 private:
  const std::vector<Seq> &seqs_;
  std::vector<Seq> ids_;
  std::vector<Seq> unigrams_;
  size_t k_ = 0;
  uint64_t distinct_ = 0;
};

}  // namespace keel::text
