// lora: low-rank adapters (Hu et al. 2021) on the decoder's projections, the base model frozen
// (Biderman et al. 2024: LoRA learns less and forgets less than full fine-tuning). The host owns
// the adapters (attach_lora); this plugin chooses them, which base parameters train beside them,
// and whether the saved model has them merged or is a PEFT adapter folder.
#include <regex>

#include "keel/plugin.hpp"

namespace {

class Lora : public keel::Plugin {
 public:
  Lora(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    extra_ = params.get_string("train_extra");
    merge_ = params.get_string("export") == "merged";
    try {
      extra_re_ = std::regex(extra_.empty() ? "$^" : extra_, std::regex::ECMAScript);
    } catch (const std::regex_error &e) {
      throw keel::Error("train_extra '" + extra_ + "' is not a regular expression: " + e.what(), KEEL_INVALID_ARGUMENT);
    }
    if (!merge_ && !extra_.empty())
      throw keel::Error("train_extra trains base parameters, which a PEFT adapter folder cannot carry: use "
                        "export = \"merged\" or drop train_extra", KEEL_INVALID_ARGUMENT);
  }

  void on_model_ready() override {
    host.attach_lora(params.get_int("rank"), params.get_double("alpha"), params.get_double("dropout"),
                     params.get_string("targets"));
    if (extra_.empty()) return;
    int n = 0;
    for (const std::string &name : host.parameter_names())
      if (name.find(".lora_") == std::string::npos && std::regex_search(name, extra_re_)) {
        host.freeze_parameter(name, 0);  // 0: not frozen, trains beside the adapters
        ++n;
      }
    if (n == 0) throw keel::Error("train_extra '" + extra_ + "' matches no parameter", KEEL_INVALID_ARGUMENT);
    host.info("training " + std::to_string(n) + " base parameters beside the adapters (train_extra)");
  }

  void on_export() override {
    if (merge_) host.merge_lora();
  }

 private:
  std::string extra_;
  std::regex extra_re_;
  bool merge_ = true;
};

}  // namespace

KEEL_PLUGIN(Lora, keel::Descriptor{
    .id = "org.keel.lora",
    .name = "lora",
    .kind = KEEL_KIND_MODEL_HOOK,
    .version = "1.0.0",
    .description = "LoRA adapters on the projections, base frozen; export merged or as a PEFT folder",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_MODEL_READY | KEEL_HOOK_ON_EXPORT,
    .params = {
        {"rank", KEEL_PARAM_INT, "16", "adapter rank r", 1, 4096},
        {"alpha", KEEL_PARAM_FLOAT, "32", "scale numerator: the update is alpha / rank * B A", 1e-6, 1e6},
        {"dropout", KEEL_PARAM_FLOAT, "0.05", "dropout on the adapters' input, training only", 0, 0.99},
        {"targets", KEEL_PARAM_STRING, "\"q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj\"",
         "regex searched in module names (model.layers.N.self_attn.q_proj, ...mlp.down_proj)"},
        {"train_extra", KEEL_PARAM_STRING, "\"\"", "regex of base parameters that train too (e.g. \"norm\"); merged export only"},
        {"export", KEEL_PARAM_STRING, "\"merged\"", "final/: the adapters merged (an HF model) or a PEFT adapter folder",
         0, 0, "merged|peft"},
    }})
