// warmup_cosine: linear warmup over the first warmup_fraction of the run (or warmup_steps), then
// cosine decay to min_lr_ratio at the last step. It scales the incoming LR, so placed after
// staged_lr it shapes the staged peaks; placed first it shapes the base LR.
#include <algorithm>
#include <cmath>

#include "keel/plugin.hpp"

namespace {

class WarmupCosine : public keel::Plugin {
 public:
  WarmupCosine(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    fraction_ = params.get_double("warmup_fraction");
    warmup_steps_ = params.get_int("warmup_steps");
    min_ratio_ = params.get_double("min_lr_ratio");
  }

  double lr(int64_t step, double lr_in) override { return lr_in * factor(step, host.run_info().total_steps); }

  double factor(int64_t step, int64_t total) const {
    const int64_t warmup = warmup_steps_ >= 0 ? warmup_steps_
                                              : static_cast<int64_t>(std::llround(fraction_ * static_cast<double>(total)));
    if (step < warmup) return static_cast<double>(step + 1) / static_cast<double>(warmup);
    const int64_t span = std::max<int64_t>(1, total - 1 - warmup);
    const double progress = std::clamp(static_cast<double>(step - warmup) / static_cast<double>(span), 0.0, 1.0);
    const double pi = 3.14159265358979323846;
    return min_ratio_ + (1.0 - min_ratio_) * 0.5 * (1.0 + std::cos(pi * progress));
  }

 private:
  double fraction_ = 0.3, min_ratio_ = 0.0;
  int64_t warmup_steps_ = -1;
};

}  // namespace

KEEL_PLUGIN(WarmupCosine, keel::Descriptor{
    .id = "org.keel.warmup_cosine",
    .name = "warmup_cosine",
    .kind = KEEL_KIND_SCHEDULER,
    .version = "1.0.0",
    .description = "linear warmup over 30% of the run, then cosine decay; scales the incoming LR",
    .vendor = "keel",
    .hooks = KEEL_HOOK_LR,
    .params = {
        {"warmup_fraction", KEEL_PARAM_FLOAT, "0.3", "share of the run spent warming up", 0, 1},
        {"warmup_steps", KEEL_PARAM_INT, "-1", "warmup length in steps; overrides warmup_fraction when >= 0", -1, 1e12},
        {"min_lr_ratio", KEEL_PARAM_FLOAT, "0.0", "LR at the last step, as a share of the incoming LR", 0, 1},
    }})
