// embedding_noise: when an alarm fires, add Gaussian noise (std 0.01) to the input embedding
// matrix once, through the host's parameter service; seeded by the run seed and the step.
// With tied embeddings the LM head is the same matrix and moves too; tied = "skip" declines.
#include <random>

#include "keel/plugin.hpp"

namespace {

class EmbeddingNoise : public keel::Plugin {
 public:
  EmbeddingNoise(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    std_ = params.get_double("std");
    skip_tied_ = params.get_string("tied") == "skip";
    name_ = params.get_string("parameter");
  }

  void on_alarm(const keel_alarm_t &a) override {
    if (skip_tied_ && host.embeddings_tied()) {
      host.warn("embeddings are tied to the LM head and tied = \"skip\": no noise added");
      return;
    }
    std::vector<float> w;
    auto shape = host.read_parameter(name_, w);
    std::mt19937_64 rng(host.run_info().seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(a.step));
    std::normal_distribution<float> noise(0.0f, static_cast<float>(std_));
    for (float &x : w) x += noise(rng);
    host.write_parameter(name_, w, shape);
    host.warn("added N(0, " + std::to_string(std_) + ") noise to " + name_ + " at step " + std::to_string(a.step) +
              (host.embeddings_tied() ? " (tied: the LM head moved too)" : ""));
  }

 private:
  double std_;
  bool skip_tied_;
  std::string name_;
};

}  // namespace

KEEL_PLUGIN(EmbeddingNoise, keel::Descriptor{
    .id = "org.keel.embedding_noise",
    .name = "embedding_noise",
    .kind = KEEL_KIND_REMEDY,
    .version = "1.0.0",
    .description = "on alarm: add Gaussian noise (std 0.01) to the input embeddings once",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_ALARM,
    .params = {
        {"std", KEEL_PARAM_FLOAT, "0.01", "standard deviation of the noise", 0, 10},
        {"tied", KEEL_PARAM_STRING, "\"apply\"", "with tied embeddings: apply (the LM head moves too) or skip", 0, 0, "apply|skip"},
        {"parameter", KEEL_PARAM_STRING, "\"model.embed_tokens.weight\"", "the parameter to perturb"},
    }})
