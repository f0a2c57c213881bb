// staged_lr: a piecewise-constant learning rate, one stage per step range, set outright (the
// incoming LR is ignored), optionally with a linear ramp of `ramp_steps` into each new stage.
#include <cmath>
#include <string>
#include <vector>

#include "keel/plugin.hpp"

namespace {

struct Stage {
  int64_t until;  // first step of the next stage; INT64_MAX for the last
  double lr;
};

class StagedLr : public keel::Plugin {
 public:
  StagedLr(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    const uint64_t n = params.size("stages");
    if (n == 0) throw keel::Error("stages: give at least one stage", KEEL_INVALID_ARGUMENT);
    for (uint64_t i = 0; i < n; ++i) {
      const std::string at = "stages." + std::to_string(i);
      Stage s{INT64_MAX, 0};
      if (!params.has(at + ".lr")) throw keel::Error(at + ": each stage needs lr = <number>", KEEL_INVALID_ARGUMENT);
      s.lr = params.get_double(at + ".lr");
      if (!(s.lr >= 0) || !std::isfinite(s.lr)) throw keel::Error(at + ".lr must be >= 0", KEEL_INVALID_ARGUMENT);
      if (params.has(at + ".until")) {
        s.until = params.get_int(at + ".until");
      } else if (i + 1 < n) {
        throw keel::Error(at + ": every stage but the last needs until = <step>", KEEL_INVALID_ARGUMENT);
      }
      if (!stages_.empty() && s.until <= stages_.back().until)
        throw keel::Error(at + ".until must be greater than the previous stage's", KEEL_INVALID_ARGUMENT);
      if (s.until <= 0) throw keel::Error(at + ".until must be > 0", KEEL_INVALID_ARGUMENT);
      stages_.push_back(s);
    }
    ramp_ = params.get_int("ramp_steps");
  }

  double lr(int64_t step, double /*lr_in*/) override {
    size_t k = 0;
    while (k + 1 < stages_.size() && step >= stages_[k].until) ++k;
    if (k == 0 || ramp_ <= 0) return stages_[k].lr;
    // Linear from the previous stage's LR to this one's over ramp_steps steps.
    const int64_t into = step - stages_[k - 1].until + 1;
    if (into >= ramp_) return stages_[k].lr;
    const double t = static_cast<double>(into) / static_cast<double>(ramp_);
    return stages_[k - 1].lr + (stages_[k].lr - stages_[k - 1].lr) * t;
  }

 private:
  std::vector<Stage> stages_;
  int64_t ramp_ = 0;
};

}  // namespace

KEEL_PLUGIN(StagedLr, keel::Descriptor{
    .id = "org.keel.staged_lr",
    .name = "staged_lr",
    .kind = KEEL_KIND_SCHEDULER,
    .version = "1.0.0",
    .description = "piecewise-constant LR stages (1e-6 -> 3e-6 -> 1e-5 by default), set outright",
    .vendor = "keel",
    .hooks = KEEL_HOOK_LR,
    .params = {
        {"stages", KEEL_PARAM_ARRAY,
         "[{until = 1000, lr = 1e-6}, {until = 2000, lr = 3e-6}, {lr = 1e-5}]",
         "stages in order: {until = <first step of the next stage>, lr = <rate>}; the last has no until"},
        {"ramp_steps", KEEL_PARAM_INT, "0", "steps of linear change into each new stage (0 = jump)", 0, 1e12},
    }})
