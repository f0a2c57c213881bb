// One decoder-only transformer for the Llama, Qwen2, Qwen3 and Mistral families, written with
// plain libtorch ops so the math reads top to bottom. Parameters carry Hugging Face's names, so a
// checkpoint maps one-to-one.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model/config.hpp"

namespace keel {

// Key/value cache, preallocated for the whole generation; K/V stored at the KV-head count.
struct KVCache {
  torch::Tensor k, v;  // [layers, batch, kv_heads, capacity, head_dim]
  int64_t length = 0;  // positions filled
};

// LoRA (Hu et al. 2021), as PEFT defines it: a frozen linear W plus a trained low-rank update,
// y = x W^T + scale * dropout(x) A^T B^T with A [rank, in], B [out, rank], scale = alpha / rank.
// A starts as PEFT's kaiming-uniform (bound 1/sqrt(in)), B at zero, so training starts at the base.
struct LoraConfig {
  int64_t rank = 16;
  double alpha = 32, dropout = 0;
  std::string targets;  // ECMAScript regex searched in each projection's module name
  uint64_t seed = 0;
};
struct LoraAdapter {
  torch::Tensor A, B;
};

struct Dropout {
  double embedding = 0, attention = 0, ffn = 0;  // probabilities; applied only in training mode
  double neftune_alpha = 0;  // NEFTune embedding noise (training only); 0 = off
};

class Transformer {
 public:
  Transformer(ModelConfig config, torch::Device device, torch::Dtype dtype);

  const ModelConfig &config() const { return cfg_; }
  torch::Device device() const { return device_; }
  torch::Dtype dtype() const { return dtype_; }

  // Parameters in Hugging Face order and naming. With tied embeddings lm_head.weight is absent.
  const std::vector<std::pair<std::string, torch::Tensor>> &parameters() const { return params_; }
  // A parameter or an adapter tensor by name.
  torch::Tensor &parameter(const std::string &name);
  bool has_parameter(const std::string &name) const { return index_.count(name) > 0 || adapter_index_.count(name) > 0; }
  // The shape each parameter must have.
  std::vector<int64_t> expected_shape(const std::string &name) const;

  // HF's normal init (initializer_range), norms at one, biases at zero.
  void init_weights(uint64_t seed);

  // Final hidden states [B, T, hidden]. `positions` [B, T]; `attend` an optional bool mask
  // [B, 1, T, T_keys] (true = may attend), needed for padding; without it attention is causal.
  // With `cache`, keys and values of these positions are appended to it.
  // `lengths` [B] real tokens per sequence, or [B, T] the length of each token's example when
  // several are packed in a row (for NEFTune's scale; default: all of T).
  torch::Tensor hidden(const torch::Tensor &ids, const torch::Tensor &positions,
                       const torch::Tensor &attend = {}, KVCache *cache = nullptr,
                       const torch::Tensor &lengths = {});
  // Logits for hidden states: hidden @ lm_head^T (fp32 result).
  torch::Tensor logits(const torch::Tensor &hidden) const;
  torch::Tensor lm_head_weight() const;

  KVCache make_cache(int64_t batch, int64_t capacity) const;

  // LoRA adapters on every decoder projection whose module name ("model.layers.3.self_attn.q_proj")
  // matches config.targets; returns how many. Throws UserError when none matches or adapters exist.
  size_t attach_lora(const LoraConfig &config);
  // Folds the adapters into their weights (W += scale * B A) and removes them.
  void merge_lora();
  bool has_lora() const { return lora_config_.has_value(); }
  const LoraConfig &lora_config() const { return *lora_config_; }
  // The adapter tensors, named as PEFT names them without its prefix:
  // "model.layers.3.self_attn.q_proj.lora_A.weight" [rank, in] and "...lora_B.weight" [out, rank].
  const std::vector<std::pair<std::string, torch::Tensor>> &adapter_parameters() const { return adapter_params_; }
  // Every parameter, then every adapter tensor: all that can train, one walk for the optimizer,
  // freezing, clipping and the host's parameter list.
  template <class F>
  void for_each_tensor(F &&f) const {
    for (const auto &[name, t] : params_) f(name, t);
    for (const auto &[name, t] : adapter_params_) f(name, t);
  }
  // The module names that carry an adapter, in model order.
  std::vector<std::string> lora_modules() const;

  Dropout dropout;
  bool training = false;
  // Recompute each decoder layer in the backward pass instead of keeping its activations
  // ([run] activation_checkpointing): about one more forward per step, a layer's worth of memory.
  bool activation_checkpointing = false;

 private:
  torch::Tensor attention(int64_t layer, const torch::Tensor &x, const torch::Tensor &cos,
                          const torch::Tensor &sin, const torch::Tensor &attend, KVCache *cache);
  void add(const std::string &name, std::vector<int64_t> shape);
  // Decoder layer `l` on the residual stream x.
  torch::Tensor layer(int64_t l, const torch::Tensor &x, const torch::Tensor &cos, const torch::Tensor &sin,
                      const torch::Tensor &attend, KVCache *cache);
  struct CheckpointedLayer : torch::autograd::Function<CheckpointedLayer> {
    static torch::Tensor forward(torch::autograd::AutogradContext *ctx, const torch::Tensor &x, Transformer *model,
                                 int64_t l, const torch::Tensor &cos, const torch::Tensor &sin, const torch::Tensor *attend);
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                   torch::autograd::variable_list grad_out);
  };
  // F::linear of layer `l`'s projection `proj` ("self_attn.q_proj"), plus its adapter if any.
  torch::Tensor linear(int64_t l, const std::string &proj, const torch::Tensor &x, bool bias);

  ModelConfig cfg_;
  torch::Device device_;
  torch::Dtype dtype_;
  torch::Tensor inv_freq_;  // [head_dim / 2], fp32
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::map<std::string, size_t> index_;
  std::vector<std::map<std::string, torch::Tensor>> layer_;  // per-layer short names, same storage
  std::optional<LoraConfig> lora_config_;
  std::vector<std::map<std::string, LoraAdapter>> layer_lora_;  // per layer, by projection
  std::vector<std::pair<std::string, torch::Tensor>> adapter_params_;
  std::map<std::string, size_t> adapter_index_;
};

}  // namespace keel
