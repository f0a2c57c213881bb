// dropout: re-enables dropout during SFT at the model's three sites (embedding output, attention
// probabilities, FFN output) and turns it off again in on_export, so the saved model carries none.
#include "keel/plugin.hpp"

namespace {

class Dropout : public keel::Plugin {
 public:
  Dropout(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {}

  void on_model_ready() override { set(params.get_double("embedding"), params.get_double("attention"), params.get_double("ffn")); }
  void on_export() override { set(0, 0, 0); }

 private:
  void set(double emb, double attn, double ffn) {
    host.set_dropout(KEEL_DROPOUT_EMBEDDING, emb);
    host.set_dropout(KEEL_DROPOUT_ATTENTION, attn);
    host.set_dropout(KEEL_DROPOUT_FFN, ffn);
  }
};

}  // namespace

KEEL_PLUGIN(Dropout, keel::Descriptor{
    .id = "org.keel.dropout",
    .name = "dropout",
    .kind = KEEL_KIND_MODEL_HOOK,
    .version = "1.0.0",
    .description = "dropout on during SFT (embedding 0.1, attention 0.2, FFN 0.1), off for export",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_MODEL_READY | KEEL_HOOK_ON_EXPORT,
    .params = {
        {"embedding", KEEL_PARAM_FLOAT, "0.1", "dropout on the embedding output", 0, 0.99},
        {"attention", KEEL_PARAM_FLOAT, "0.2", "dropout on the attention probabilities", 0, 0.99},
        {"ffn", KEEL_PARAM_FLOAT, "0.1", "dropout on the MLP output", 0, 0.99},
    }})
