// temperature: when an alarm fires, raise the evaluation generation temperature by `step`, up to
// `max`. This changes the measurement, not the model: metrics.jsonl records the temperature of
// every evaluation, so the curves stay honest.
#include <algorithm>

#include "keel/plugin.hpp"

namespace {

class Temperature : public keel::Plugin {
 public:
  Temperature(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    step_ = params.get_double("step");
    max_ = params.get_double("max");
  }

  void on_alarm(const keel_alarm_t &a) override {
    keel_generation_settings_t g = host.generation();
    const double before = g.temperature;
    g.temperature = std::min(max_, g.temperature + step_);
    host.set_generation(g);
    host.warn("evaluation temperature " + std::to_string(before) + " -> " + std::to_string(g.temperature) +
              " (alarm: " + a.metric + "; this changes the measurement, not the model)");
  }

 private:
  double step_, max_;
};

}  // namespace

KEEL_PLUGIN(Temperature, keel::Descriptor{
    .id = "org.keel.temperature",
    .name = "temperature",
    .kind = KEEL_KIND_REMEDY,
    .version = "1.0.0",
    .description = "on alarm: raise the evaluation temperature by 0.2, up to 1.2",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_ALARM,
    .params = {
        {"step", KEEL_PARAM_FLOAT, "0.2", "temperature added per firing", 0, 10},
        {"max", KEEL_PARAM_FLOAT, "1.2", "the highest temperature it sets", 0, 100},
    }})
