// freeze: partial fine-tuning. Only the last N decoder layers and/or the parameters matching a
// pattern train; every other parameter is frozen for the whole run (no gradient, no optimizer
// state), through the host's freeze_parameter service.
#include <limits>
#include <regex>

#include "keel/plugin.hpp"

namespace {

class Freeze : public keel::Plugin {
 public:
  Freeze(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    last_ = params.get_int("last_layers");
    pattern_ = params.get_string("train");
    if (last_ == 0 && pattern_.empty())
      throw keel::Error("set last_layers (train the last N layers) or train (a regex of parameters that train)",
                        KEEL_INVALID_ARGUMENT);
    try {
      re_ = std::regex(pattern_.empty() ? "$^" : pattern_, std::regex::ECMAScript);
    } catch (const std::regex_error &e) {
      throw keel::Error("train '" + pattern_ + "' is not a regular expression: " + e.what(), KEEL_INVALID_ARGUMENT);
    }
  }

  void on_model_ready() override {
    const auto names = host.parameter_names();
    int64_t layers = 0;  // the model's decoder layers, from the parameter names
    for (const std::string &n : names)
      if (n.rfind("model.layers.", 0) == 0) layers = std::max<int64_t>(layers, std::stoll(n.substr(13)) + 1);
    if (last_ > layers)
      throw keel::Error("last_layers " + std::to_string(last_) + ": the model has " + std::to_string(layers) + " layers",
                        KEEL_INVALID_ARGUMENT);
    int64_t trained = 0;
    for (const std::string &n : names) {
      const bool in_last = n.rfind("model.layers.", 0) == 0 && std::stoll(n.substr(13)) >= layers - last_;
      if (in_last || std::regex_search(n, re_)) {
        ++trained;
        continue;
      }
      host.freeze_parameter(n, std::numeric_limits<int64_t>::max());
    }
    if (trained == 0) throw keel::Error("nothing would train: last_layers and train match no parameter", KEEL_INVALID_ARGUMENT);
    host.info(std::to_string(trained) + " of " + std::to_string(names.size()) + " parameters train");
  }

 private:
  int64_t last_ = 0;
  std::string pattern_;
  std::regex re_;
};

}  // namespace

KEEL_PLUGIN(Freeze, keel::Descriptor{
    .id = "org.keel.freeze",
    .name = "freeze",
    .kind = KEEL_KIND_MODEL_HOOK,
    .version = "1.0.0",
    .description = "partial fine-tuning: only the last N layers and/or parameters matching a regex train",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_MODEL_READY,
    .params = {
        {"last_layers", KEEL_PARAM_INT, "0", "train the last N decoder layers (0: none by this rule)", 0, 100000},
        {"train", KEEL_PARAM_STRING, "\"\"", "regex of parameter names that train too (e.g. \"norm|lm_head\")"},
    }})
