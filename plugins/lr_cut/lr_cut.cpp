// lr_cut: when an alarm fires, multiply the scheduled LR by `factor` for `duration` steps, then
// return to the schedule. Firing again while a cut is active deepens it, never below min_factor.
#include <algorithm>
#include <cstring>

#include "keel/plugin.hpp"

namespace {

class LrCut : public keel::Plugin {
 public:
  LrCut(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    factor_ = params.get_double("factor");
    duration_ = params.get_int("duration");
    min_factor_ = params.get_double("min_factor");
  }

  void on_alarm(const keel_alarm_t &a) override {
    current_ = a.step < until_ ? std::max(min_factor_, current_ * factor_) : std::max(min_factor_, factor_);
    until_ = a.step + duration_;
    host.warn("LR x" + std::to_string(current_) + " until step " + std::to_string(until_) + " (alarm: " + a.metric + ")");
  }

  double lr(int64_t step, double lr_in) override { return step < until_ ? lr_in * current_ : lr_in; }

  keel::Bytes save_state() override {
    keel::Bytes b(sizeof current_ + sizeof until_);
    std::memcpy(b.data(), &current_, sizeof current_);
    std::memcpy(b.data() + sizeof current_, &until_, sizeof until_);
    return b;
  }
  void load_state(const keel::Bytes &b) override {
    if (b.size() != sizeof current_ + sizeof until_) throw keel::Error("lr_cut: state of the wrong size");
    std::memcpy(&current_, b.data(), sizeof current_);
    std::memcpy(&until_, b.data() + sizeof current_, sizeof until_);
  }

 private:
  double factor_, min_factor_, current_ = 1.0;
  int64_t duration_, until_ = -1;
};

}  // namespace

KEEL_PLUGIN(LrCut, keel::Descriptor{
    .id = "org.keel.lr_cut",
    .name = "lr_cut",
    .kind = KEEL_KIND_REMEDY,
    .version = "1.0.0",
    .description = "on alarm: LR x0.1 for 500 steps on top of the schedule",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_ALARM | KEEL_HOOK_LR | KEEL_HOOK_STATE,
    .params = {
        {"factor", KEEL_PARAM_FLOAT, "0.1", "multiplier applied to the scheduled LR", 0, 1},
        {"duration", KEEL_PARAM_INT, "500", "steps the cut lasts", 1, 1e12},
        {"min_factor", KEEL_PARAM_FLOAT, "0.001", "repeated firings never cut deeper than this", 0, 1},
    }})
