// distinct_ngrams: distinct-n, the number of unique n-grams over the number of n-grams, pooled over
// every probe generation of an evaluation (n-grams never span two generations). A collapsing model
// repeats itself across prompts, so the ratio falls. Units are whitespace-separated words (the usual
// definition) or the model's token ids. Publishes distinct_<n> as the main value and distinct_1,
// distinct_2 (and distinct_<n>) as side values; alarms when the main value is below alarm_below.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "../common/ngrams.hpp"
#include "keel/plugin.hpp"

namespace {

class DistinctNgrams : public keel::Plugin {
 public:
  DistinctNgrams(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    n_ = static_cast<size_t>(params.get_int("n"));
    tokens_ = params.get_string("units") == "tokens";
    alarm_below_ = params.get_double("alarm_below");
  }

  void on_eval(const keel_eval_batch_t &batch) override {
    if (batch.n_samples == 0) {
      host.warn("no generations to measure; nothing published");
      return;
    }
    std::vector<keel::text::Seq> seqs;
    if (tokens_) {
      for (uint32_t i = 0; i < batch.n_samples; ++i) {
        const keel_eval_sample_t &s = *batch.samples[i];
        seqs.emplace_back(s.tokens, s.tokens + s.n_tokens);
      }
    } else {
      std::vector<std::string_view> texts;
      for (uint32_t i = 0; i < batch.n_samples; ++i)
        texts.emplace_back(batch.samples[i]->text ? batch.samples[i]->text : "");
      seqs = keel::text::word_ids(texts);
    }
    // distinct-k for k = 1 .. max(n, 2): one pass per order.
    keel::text::NgramOrders orders(seqs);
    std::vector<double> ratio;
    for (size_t k = 1; k <= std::max<size_t>(n_, 2); ++k) {
      orders.next();
      uint64_t total = 0;
      for (const auto &ids : orders.ids()) total += ids.size();
      // No k-gram at all (every generation shorter than k) counts as no diversity.
      ratio.push_back(total ? static_cast<double>(orders.distinct()) / static_cast<double>(total) : 0.0);
    }
    const double value = ratio[n_ - 1];
    host.publish("distinct_ngrams.distinct_1", ratio[0]);
    host.publish("distinct_ngrams.distinct_2", ratio[1]);
    if (n_ > 2) host.publish("distinct_ngrams.distinct_" + std::to_string(n_), value);
    const bool alarm = value < alarm_below_;
    char reason[96] = "";
    if (alarm) std::snprintf(reason, sizeof reason, "distinct_%zu %.4g < alarm_below %.4g", n_, value, alarm_below_);
    host.publish("distinct_ngrams", value, alarm, reason);
  }

 private:
  size_t n_ = 3;
  bool tokens_ = false;
  double alarm_below_ = 0.3;
};

}  // namespace

KEEL_PLUGIN(DistinctNgrams, keel::Descriptor{
    .id = "org.keel.distinct_ngrams",
    .name = "distinct_ngrams",
    .kind = KEEL_KIND_METRIC,
    .version = "1.0.0",
    .description = "unique n-grams / all n-grams over the probe generations (distinct-n); alarm when low",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_EVAL,
    .params = {
        {"n", KEEL_PARAM_INT, "3", "n-gram order of the main value", 1, 16},
        {"units", KEEL_PARAM_STRING, "\"words\"", "words (whitespace split) or tokens (model token ids)", 0, 0,
         "words|tokens"},
        {"alarm_below", KEEL_PARAM_FLOAT, "0.3", "alarm when distinct-n is below this", 0, 1},
    }})
