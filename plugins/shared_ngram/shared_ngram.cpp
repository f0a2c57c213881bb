// shared_ngram: the largest share of probe answers that contain one same word n-gram (the document
// frequency of the most common n-gram, over the number of answers). It sees the collapse the other
// metrics miss: a model that answers every prompt in one template with varying slots ("\"the sea\"
// is a noun. It means ...") keeps distinct-n and Self-BLEU unremarkable, since the slots differ, but
// the template's own n-grams ("is a noun", "it means the") are in nearly every answer. Words are
// split on whitespace, lowercased (ASCII) and stripped of the punctuation at their ends, so
// "noun." and "Noun" are one word. Publishes shared_ngram and shared_ngram.answers (how many
// answers hold the n-gram); alarms above alarm_above.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../common/ngrams.hpp"
#include "keel/plugin.hpp"

namespace {

std::string normalize(std::string_view text) {
  std::string out;
  for (std::string_view w : keel::text::split_words(text)) {
    size_t b = 0, e = w.size();
    while (b < e && std::ispunct(static_cast<unsigned char>(w[b]))) ++b;
    while (e > b && std::ispunct(static_cast<unsigned char>(w[e - 1]))) --e;
    if (b == e) continue;  // a word of punctuation only
    if (!out.empty()) out += ' ';
    for (size_t i = b; i < e; ++i) out += static_cast<char>(std::tolower(static_cast<unsigned char>(w[i])));
  }
  return out;
}

class SharedNgram : public keel::Plugin {
 public:
  SharedNgram(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    n_ = static_cast<size_t>(params.get_int("n"));
    alarm_above_ = params.get_double("alarm_above");
  }

  void on_eval(const keel_eval_batch_t &batch) override {
    if (batch.n_samples == 0) {
      host.warn("no generations to measure; nothing published");
      return;
    }
    std::vector<std::string> norm;
    for (uint32_t i = 0; i < batch.n_samples; ++i) norm.push_back(normalize(batch.samples[i]->text ? batch.samples[i]->text : ""));
    std::vector<std::string_view> views(norm.begin(), norm.end());
    const std::vector<keel::text::Seq> seqs = keel::text::word_ids(views);
    keel::text::NgramOrders orders(seqs);
    for (size_t k = 0; k < n_; ++k) orders.next();
    // Document frequency: each answer counts an n-gram once.
    std::unordered_map<uint64_t, uint32_t> df;
    uint32_t top = 0;
    size_t top_answer = 0, top_pos = 0;
    for (size_t i = 0; i < orders.ids().size(); ++i) {
      std::unordered_set<uint64_t> seen;
      const auto &ids = orders.ids()[i];
      for (size_t p = 0; p < ids.size(); ++p) {
        if (!seen.insert(ids[p]).second) continue;
        const uint32_t c = ++df[ids[p]];
        if (c > top) {
          top = c;
          top_answer = i;
          top_pos = p;
        }
      }
    }
    const double value = static_cast<double>(top) / static_cast<double>(batch.n_samples);
    const bool alarm = value > alarm_above_;
    char reason[160] = "";
    if (alarm) {
      std::vector<std::string_view> words = keel::text::split_words(norm[top_answer]);
      std::string gram;
      for (size_t w = top_pos; w < top_pos + n_ && w < words.size(); ++w) gram += (gram.empty() ? "" : " ") + std::string(words[w]);
      std::snprintf(reason, sizeof reason, "'%.60s' is in %u of %u answers (%.4g > alarm_above %.4g)", gram.c_str(), top,
                    batch.n_samples, value, alarm_above_);
    }
    host.publish("shared_ngram.answers", static_cast<double>(top));
    host.publish("shared_ngram", value, alarm, reason);
  }

 private:
  size_t n_ = 3;
  double alarm_above_ = 0.3;
};

}  // namespace

KEEL_PLUGIN(SharedNgram, keel::Descriptor{
    .id = "org.keel.shared_ngram",
    .name = "shared_ngram",
    .kind = KEEL_KIND_METRIC,
    .version = "1.0.0",
    .description = "largest share of probe answers containing one same word n-gram (a template with varying slots); alarm when high",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_EVAL,
    .params = {
        {"n", KEEL_PARAM_INT, "3", "n-gram order (words)", 1, 16},
        {"alarm_above", KEEL_PARAM_FLOAT, "0.3", "alarm when the share is above this (base SmolLM2 0.05, its naive SFT 0.475)", 0, 1},
    }})
