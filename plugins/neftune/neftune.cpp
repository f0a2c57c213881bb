// neftune: NEFTune noise on the embedding output during training only (Jain et al. 2023):
// uniform(-1, 1) scaled by alpha / sqrt(L * d), L the real (unpadded) tokens of each sequence and
// d the hidden size. The host applies it; off in evaluation and, via on_export, in the saved model.
#include "keel/plugin.hpp"

namespace {

class Neftune : public keel::Plugin {
 public:
  using Plugin::Plugin;
  void on_model_ready() override { host.set_embedding_noise(params.get_double("alpha")); }
  void on_export() override { host.set_embedding_noise(0.0); }
};

}  // namespace

KEEL_PLUGIN(Neftune, keel::Descriptor{
    .id = "org.keel.neftune",
    .name = "neftune",
    .kind = KEEL_KIND_MODEL_HOOK,
    .version = "1.0.0",
    .description = "NEFTune embedding noise in training, scaled by each sequence's real length",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_MODEL_READY | KEEL_HOOK_ON_EXPORT,
    .params = {{"alpha", KEEL_PARAM_FLOAT, "5.0", "noise scale alpha (NEFTune's default 5)", 0, 1000}}})
