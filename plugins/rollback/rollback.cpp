// rollback: when an alarm fires, restore the last healthy checkpoint (no alarm at its evaluation),
// or with to = "best" the one [run] keep_best keeps; the step counter keeps going forward. After
// max_rollbacks the run stops, with that model restored and exported.
#include <cstring>

#include "keel/plugin.hpp"

namespace {

class Rollback : public keel::Plugin {
 public:
  Rollback(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    max_ = params.get_int("max_rollbacks");
    best_ = params.get_string("to") == "best";
  }

  void on_alarm(const keel_alarm_t &a) override {
    int64_t target = -1;
    for (const auto &c : host.checkpoints())
      if (best_ ? KEEL_HAS_FIELD(&c, keel_checkpoint_info_t, best) && c.best : c.healthy) target = c.step;
    const char *what = best_ ? "best" : "healthy";
    if (target < 0) {
      host.warn(std::string("no ") + what + " checkpoint yet: nothing to roll back to");
      return;
    }
    const std::string why = std::string("alarm ") + a.metric + " at step " + std::to_string(a.step);
    if (best_) host.request_rollback_to(target, why);
    else host.request_rollback(why);
    if (++done_ >= max_)
      host.request_stop("rollback limit (" + std::to_string(max_) + ") reached; the " + what + " model (step " +
                        std::to_string(target) + ") is restored and exported");
  }

  keel::Bytes save_state() override {
    keel::Bytes b(sizeof done_);
    std::memcpy(b.data(), &done_, sizeof done_);
    return b;
  }
  void load_state(const keel::Bytes &b) override {
    if (b.size() != sizeof done_) throw keel::Error("rollback: state of the wrong size");
    std::memcpy(&done_, b.data(), sizeof done_);
  }

 private:
  int64_t max_, done_ = 0;
  bool best_ = false;
};

}  // namespace

KEEL_PLUGIN(Rollback, keel::Descriptor{
    .id = "org.keel.rollback",
    .name = "rollback",
    .kind = KEEL_KIND_REMEDY,
    .version = "1.1.0",
    .description = "on alarm: restore the last healthy (or the best) checkpoint; stop after 3 rollbacks",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_ALARM | KEEL_HOOK_STATE,
    .params = {{"max_rollbacks", KEEL_PARAM_INT, "3", "rollbacks before the run stops", 1, 1e6},
               {"to", KEEL_PARAM_STRING, "\"healthy\"",
                "the checkpoint restored: the last healthy one, or the one [run] keep_best keeps", 0, 0, "healthy|best"}}})
