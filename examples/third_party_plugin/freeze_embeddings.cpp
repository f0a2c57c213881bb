// freeze_embeddings: a third-party remedy. When an alarm fires, keep the input embeddings out of
// optimizer updates for `steps` steps: the token representations stop drifting toward the one
// answer the model is collapsing onto, while the rest of the network keeps learning. With tied
// embeddings the LM head is the same matrix and is frozen too. Written against the SDK alone.
#include "keel/plugin.hpp"

namespace {

class FreezeEmbeddings : public keel::Plugin {
 public:
  FreezeEmbeddings(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    steps_ = params.get_int("steps");
    name_ = params.get_string("parameter");
  }

  void on_alarm(const keel_alarm_t &a) override {
    host.freeze_parameter(name_, a.step + steps_);
    host.warn(name_ + " frozen until step " + std::to_string(a.step + steps_) + " (alarm: " + a.metric + ")" +
              (host.embeddings_tied() ? "; tied, so the LM head is frozen too" : ""));
  }

 private:
  int64_t steps_;
  std::string name_;
};

}  // namespace

KEEL_PLUGIN(FreezeEmbeddings, keel::Descriptor{
    .id = "org.example.freeze_embeddings",
    .name = "freeze_embeddings",
    .kind = KEEL_KIND_REMEDY,
    .version = "0.1.0",
    .description = "on alarm: freeze the input embeddings for N steps",
    .license = "MIT",
    .vendor = "example.org",
    .hooks = KEEL_HOOK_ON_ALARM,
    .params = {
        {"steps", KEEL_PARAM_INT, "100", "steps the embeddings stay frozen", 1, 1e12},
        {"parameter", KEEL_PARAM_STRING, "\"model.embed_tokens.weight\"", "the parameter to freeze"},
    }})
