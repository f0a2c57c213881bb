// self_bleu: the Texygen Self-BLEU. For each probe generation, NLTK's sentence_bleu with every other
// generation as a reference, uniform weights up to max_n, SmoothingFunction().method1; the mean over
// generations. High when generations copy each other (collapse); alarms above alarm_above.
//
// Tokens are whitespace-separated words (Python's str.split()); Texygen used nltk.word_tokenize,
// which splits punctuation off too, so values differ slightly from Texygen's on punctuated text.
//
// The direct computation is O(N^2 L). Here each n-gram is counted once across the set, keeping per
// n-gram the largest and second-largest count in any one generation (and where the largest is); the
// clipping count against "all but generation i" is then the largest, or the second-largest when the
// largest is i's own. So leaving one generation out costs O(its own n-grams). The brevity penalty
// needs the reference length closest to i's, from the other generations' lengths (counted by value).
//
// NLTK's rules, reproduced exactly (nltk/translate/bleu_score.py, 3.x):
//  - p_k = clipped matches / max(1, number of k-grams in the hypothesis); a hypothesis shorter than
//    k has no k-grams, so p_k = 0/1. Weights stay uniform 1/max_n whatever the length.
//  - no unigram match at all (an empty hypothesis among them) gives BLEU 0 outright.
//  - method1: a p_k with numerator 0 becomes 0.1 / denominator.
//  - closest reference length: minimum of (|r - h|, r), so ties go to the shorter reference.
//  - brevity penalty: 1 if h > r, 0 if h = 0, else exp(1 - r/h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "../common/ngrams.hpp"
#include "keel/plugin.hpp"

namespace {

// Per-generation Self-BLEU scores of `seqs` (word-id sequences), by the method above.
std::vector<double> self_bleu_scores(const std::vector<keel::text::Seq> &seqs, size_t max_n) {
  const size_t N = seqs.size();
  std::vector<double> log_sum(N, 0.0);   // sum over k of w * log p_k
  std::vector<bool> zero(N, false);      // no unigram match: BLEU 0
  const double w = 1.0 / static_cast<double>(max_n);

  keel::text::NgramOrders orders(seqs);
  std::vector<std::pair<uint64_t, uint32_t>> own;  // (n-gram id, count) of one generation
  for (size_t k = 1; k <= max_n; ++k) {
    orders.next();
    const auto &ids = orders.ids();
    const uint64_t D = orders.distinct();
    std::vector<uint32_t> max1(D, 0), max2(D, 0);
    std::vector<uint32_t> arg1(D, UINT32_MAX);
    // Pass 1: per generation, the count of each of its n-grams; keep the top two per n-gram.
    std::vector<std::vector<std::pair<uint64_t, uint32_t>>> counts(N);
    for (size_t i = 0; i < N; ++i) {
      std::vector<uint64_t> s = ids[i];
      std::sort(s.begin(), s.end());
      auto &c = counts[i];
      for (size_t p = 0; p < s.size();) {
        size_t q = p;
        while (q < s.size() && s[q] == s[p]) ++q;
        c.emplace_back(s[p], static_cast<uint32_t>(q - p));
        p = q;
      }
      for (auto [g, n] : c) {
        if (n > max1[g]) {
          max2[g] = max1[g];
          max1[g] = n;
          arg1[g] = static_cast<uint32_t>(i);
        } else if (n > max2[g]) {
          max2[g] = n;
        }
      }
    }
    // Pass 2: clipped matches of generation i against all the others.
    for (size_t i = 0; i < N; ++i) {
      uint64_t matches = 0;
      for (auto [g, n] : counts[i]) {
        const uint32_t ref = arg1[g] == i ? max2[g] : max1[g];
        matches += n < ref ? n : ref;
      }
      const uint64_t den = ids[i].empty() ? 1 : ids[i].size();
      if (k == 1 && matches == 0) zero[i] = true;
      const double p = matches == 0 ? 0.1 / static_cast<double>(den)
                                    : static_cast<double>(matches) / static_cast<double>(den);
      log_sum[i] += w * std::log(p);
    }
  }

  // Brevity penalty: the closest length among the other generations.
  std::map<uint64_t, uint64_t> lengths;  // length -> how many generations have it
  for (const auto &s : seqs) ++lengths[s.size()];
  std::vector<double> out(N);
  for (size_t i = 0; i < N; ++i) {
    if (zero[i]) {
      out[i] = 0.0;
      continue;
    }
    const uint64_t h = seqs[i].size();
    uint64_t r;
    auto at = lengths.find(h);
    if (at->second > 1) {
      r = h;  // another generation has the same length
    } else {
      // Nearest other lengths below and above; ties go to the shorter.
      bool has_lo = at != lengths.begin(), has_hi = std::next(at) != lengths.end();
      uint64_t lo = has_lo ? std::prev(at)->first : 0, hi = has_hi ? std::next(at)->first : 0;
      r = !has_hi || (has_lo && h - lo <= hi - h) ? lo : hi;
    }
    const double bp = h > r ? 1.0 : std::exp(1.0 - static_cast<double>(r) / static_cast<double>(h));
    out[i] = bp * std::exp(log_sum[i]);
  }
  return out;
}

class SelfBleu : public keel::Plugin {
 public:
  SelfBleu(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    max_n_ = static_cast<size_t>(params.get_int("max_n"));
    alarm_above_ = params.get_double("alarm_above");
  }

  void on_eval(const keel_eval_batch_t &batch) override {
    if (batch.n_samples < 2) {
      host.warn("Self-BLEU needs at least 2 generations, got " + std::to_string(batch.n_samples) +
                "; nothing published");
      return;
    }
    std::vector<std::string_view> texts;
    for (uint32_t i = 0; i < batch.n_samples; ++i)
      texts.emplace_back(batch.samples[i]->text ? batch.samples[i]->text : "");
    const std::vector<double> scores = self_bleu_scores(keel::text::word_ids(texts), max_n_);
    double sum = 0;
    for (double s : scores) sum += s;
    const double value = sum / static_cast<double>(scores.size());
    const bool alarm = value > alarm_above_;
    char reason[96] = "";
    if (alarm) std::snprintf(reason, sizeof reason, "self_bleu %.4g > alarm_above %.4g", value, alarm_above_);
    host.publish("self_bleu", value, alarm, reason);
  }

 private:
  size_t max_n_ = 3;
  double alarm_above_ = 0.7;
};

}  // namespace

KEEL_PLUGIN(SelfBleu, keel::Descriptor{
    .id = "org.keel.self_bleu",
    .name = "self_bleu",
    .kind = KEEL_KIND_METRIC,
    .version = "1.0.0",
    .description = "Self-BLEU (Texygen, NLTK smoothing 1) of the probe generations; alarm when high",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_EVAL,
    .params = {
        {"max_n", KEEL_PARAM_INT, "3", "highest n-gram order; weights are uniform 1/max_n", 1, 8},
        {"alarm_above", KEEL_PARAM_FLOAT, "0.7", "alarm when Self-BLEU is above this", 0, 1},
    }})
