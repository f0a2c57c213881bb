// mode_share: the share of probe generations equal to the most common one, after whitespace
// normalisation (words split on whitespace and joined by one space). 1.0 is the parrot that answers
// every prompt with the same phrase; alarms above alarm_above.
#include <cstdio>
#include <string>
#include <unordered_map>

#include "../common/words.hpp"
#include "keel/plugin.hpp"

namespace {

class ModeShare : public keel::Plugin {
 public:
  ModeShare(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    alarm_above_ = params.get_double("alarm_above");
  }

  void on_eval(const keel_eval_batch_t &batch) override {
    if (batch.n_samples == 0) {
      host.warn("no generations to measure; nothing published");
      return;
    }
    std::unordered_map<std::string, uint32_t> counts;
    uint32_t top = 0;
    for (uint32_t i = 0; i < batch.n_samples; ++i) {
      std::string norm;
      for (std::string_view w : keel::text::split_words(batch.samples[i]->text ? batch.samples[i]->text : "")) {
        if (!norm.empty()) norm += ' ';
        norm += w;
      }
      const uint32_t c = ++counts[norm];
      top = c > top ? c : top;
    }
    const double value = static_cast<double>(top) / static_cast<double>(batch.n_samples);
    const bool alarm = value > alarm_above_;
    char reason[96] = "";
    if (alarm) std::snprintf(reason, sizeof reason, "mode_share %.4g > alarm_above %.4g", value, alarm_above_);
    host.publish("mode_share.distinct", static_cast<double>(counts.size()));
    host.publish("mode_share", value, alarm, reason);
  }

 private:
  double alarm_above_ = 0.5;
};

}  // namespace

KEEL_PLUGIN(ModeShare, keel::Descriptor{
    .id = "org.keel.mode_share",
    .name = "mode_share",
    .kind = KEEL_KIND_METRIC,
    .version = "1.0.0",
    .description = "share of probe generations equal to the most common one; alarm when high",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_EVAL,
    .params = {
        {"alarm_above", KEEL_PARAM_FLOAT, "0.5", "alarm when the mode's share is above this", 0, 1},
    }})
