// inverse_sqrt: the "Noam" schedule (Vaswani et al. 2017) — linear warmup, then the LR falls as
// 1/sqrt(step). Not one of keel's own plugins: it shows a third party extending keel with the SDK
// alone (keel/plugin.hpp), loaded by name from --plugin-dir.
#include <algorithm>
#include <cmath>

#include "keel/plugin.hpp"

namespace {

class InverseSqrt : public keel::Plugin {
 public:
  InverseSqrt(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    warmup_ = params.get_int("warmup_steps");
  }

  // Scales the incoming LR: up linearly to 1 at the end of warmup, then sqrt(warmup / step).
  double lr(int64_t step, double lr_in) override {
    const double s = static_cast<double>(step + 1), w = static_cast<double>(warmup_);
    return lr_in * std::min(s / w, std::sqrt(w / s));
  }

 private:
  int64_t warmup_ = 100;
};

}  // namespace

KEEL_PLUGIN(InverseSqrt, keel::Descriptor{
    .id = "org.example.inverse_sqrt",
    .name = "inverse_sqrt",
    .kind = KEEL_KIND_SCHEDULER,
    .version = "0.1.0",
    .description = "linear warmup, then LR proportional to 1/sqrt(step)",
    .license = "MIT",
    .vendor = "example.org",
    .hooks = KEEL_HOOK_LR,
    .params = {{"warmup_steps", KEEL_PARAM_INT, "100", "steps of linear warmup", 1, 1e12}}})
