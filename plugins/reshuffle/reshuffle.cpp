// reshuffle: when an alarm fires, give the data sources a new order from a seed derived from the
// run seed and the step, so a run (rolled back or not) does not replay the same batches. The host
// keeps each source's order and cursor in the checkpoint; this plugin keeps its firing count.
#include <algorithm>
#include <cstring>

#include "keel/plugin.hpp"

namespace {

class Reshuffle : public keel::Plugin {
 public:
  Reshuffle(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) { names_ = params.get_strings("sources"); }

  void on_start() override {
    for (const std::string &n : names_) {
      bool found = false;
      for (const auto &s : host.sources()) found = found || n == s.name;
      if (!found) throw keel::Error("reshuffle: sources names '" + n + "', which is not a [data.*] source", KEEL_INVALID_ARGUMENT);
    }
  }

  void on_alarm(const keel_alarm_t &a) override {
    ++fired_;
    const uint64_t seed = host.run_info().seed * 1000003ull + static_cast<uint64_t>(a.step) * 7919ull + fired_;
    for (const auto &s : host.sources()) {
      const std::string name = s.name;
      if (!names_.empty() && std::find(names_.begin(), names_.end(), name) == names_.end()) continue;
      host.reshuffle_source(name, seed);
      host.warn("reshuffled data." + name + " with seed " + std::to_string(seed));
    }
  }

  keel::Bytes save_state() override {
    keel::Bytes b(sizeof fired_);
    std::memcpy(b.data(), &fired_, sizeof fired_);
    return b;
  }
  void load_state(const keel::Bytes &b) override {
    if (b.size() != sizeof fired_) throw keel::Error("reshuffle: state of the wrong size");
    std::memcpy(&fired_, b.data(), sizeof fired_);
  }

 private:
  std::vector<std::string> names_;
  uint64_t fired_ = 0;
};

}  // namespace

KEEL_PLUGIN(Reshuffle, keel::Descriptor{
    .id = "org.keel.reshuffle",
    .name = "reshuffle",
    .kind = KEEL_KIND_REMEDY,
    .version = "1.0.0",
    .description = "on alarm: a new data order from a step-derived seed",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_ALARM | KEEL_HOOK_ON_START | KEEL_HOOK_STATE,
    .params = {{"sources", KEEL_PARAM_STRING_LIST, "[]", "the [data.*] sources to reshuffle (empty: all)"}}})
