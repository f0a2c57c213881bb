// rollback: when an alarm fires, restore the last healthy checkpoint (no alarm at its evaluation);
// the step counter keeps going forward. After max_rollbacks the run stops, with the last healthy
// model restored and exported.
#include <cstring>

#include "keel/plugin.hpp"

namespace {

class Rollback : public keel::Plugin {
 public:
  Rollback(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) { max_ = params.get_int("max_rollbacks"); }

  void on_alarm(const keel_alarm_t &a) override {
    int64_t healthy = -1;
    for (const auto &c : host.checkpoints())
      if (c.healthy) healthy = c.step;
    if (healthy < 0) {
      host.warn("no healthy checkpoint yet: nothing to roll back to");
      return;
    }
    const std::string why = std::string("alarm ") + a.metric + " at step " + std::to_string(a.step);
    host.request_rollback(why);
    if (++done_ >= max_)
      host.request_stop("rollback limit (" + std::to_string(max_) + ") reached; the last healthy model (step " +
                        std::to_string(healthy) + ") is restored and exported");
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
};

}  // namespace

KEEL_PLUGIN(Rollback, keel::Descriptor{
    .id = "org.keel.rollback",
    .name = "rollback",
    .kind = KEEL_KIND_REMEDY,
    .version = "1.0.0",
    .description = "on alarm: restore the last healthy checkpoint; stop after 3 rollbacks",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_ALARM | KEEL_HOOK_STATE,
    .params = {{"max_rollbacks", KEEL_PARAM_INT, "3", "rollbacks before the run stops", 1, 1e6}}})
