#include "model/transformer.hpp"

#include <cmath>
#include <regex>

#include <ATen/autocast_mode.h>

#include "common/errors.hpp"
#include "model/ops.hpp"

namespace keel {

namespace F = torch::nn::functional;

namespace {

// RoPE inverse frequencies, with Llama 3's long-context rescaling when configured.
torch::Tensor rope_inv_freq(const ModelConfig &c) {
  const int64_t half = c.head_dim / 2;
  auto idx = torch::arange(0, c.head_dim, 2, torch::kInt64).to(torch::kFloat);
  torch::Tensor inv = 1.0 / torch::pow(c.rope_theta, idx / static_cast<double>(c.head_dim));
  if (c.rope_type == "llama3") {
    // transformers' _compute_llama3_parameters
    const double low_wavelen = c.rope_original_max_positions / c.low_freq_factor;
    const double high_wavelen = c.rope_original_max_positions / c.high_freq_factor;
    auto wavelen = 2 * M_PI / inv;
    auto scaled = torch::where(wavelen > low_wavelen, inv / c.rope_factor, inv);
    auto smooth = (c.rope_original_max_positions / wavelen - c.low_freq_factor) /
                  (c.high_freq_factor - c.low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / c.rope_factor + smooth * scaled;
    auto is_medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen);
    inv = torch::where(is_medium, smoothed, scaled);
  }
  TORCH_CHECK(inv.size(0) == half);
  return inv;
}

}  // namespace

Transformer::Transformer(ModelConfig config, torch::Device device, torch::Dtype dtype)
    : cfg_(std::move(config)), device_(device), dtype_(dtype) {
  const auto &c = cfg_;
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  add("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {c.hidden_size});
    add(p + "self_attn.q_proj.weight", {q_dim, c.hidden_size});
    add(p + "self_attn.k_proj.weight", {kv_dim, c.hidden_size});
    add(p + "self_attn.v_proj.weight", {kv_dim, c.hidden_size});
    if (c.qkv_bias) {
      add(p + "self_attn.q_proj.bias", {q_dim});
      add(p + "self_attn.k_proj.bias", {kv_dim});
      add(p + "self_attn.v_proj.bias", {kv_dim});
    }
    add(p + "self_attn.o_proj.weight", {c.hidden_size, q_dim});
    if (c.o_bias) add(p + "self_attn.o_proj.bias", {c.hidden_size});
    if (c.qk_norm) {
      add(p + "self_attn.q_norm.weight", {c.head_dim});
      add(p + "self_attn.k_norm.weight", {c.head_dim});
    }
    add(p + "post_attention_layernorm.weight", {c.hidden_size});
    add(p + "mlp.gate_proj.weight", {c.intermediate_size, c.hidden_size});
    add(p + "mlp.up_proj.weight", {c.intermediate_size, c.hidden_size});
    add(p + "mlp.down_proj.weight", {c.hidden_size, c.intermediate_size});
    if (c.mlp_bias) {
      add(p + "mlp.gate_proj.bias", {c.intermediate_size});
      add(p + "mlp.up_proj.bias", {c.intermediate_size});
      add(p + "mlp.down_proj.bias", {c.hidden_size});
    }
  }
  add("model.norm.weight", {c.hidden_size});
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, c.hidden_size});
  layer_.resize(static_cast<size_t>(c.num_layers));
  for (auto &[name, t] : params_) {
    if (name.rfind("model.layers.", 0) != 0) continue;
    size_t dot = name.find('.', 13);
    size_t l = std::stoul(name.substr(13, dot - 13));
    layer_[l][name.substr(dot + 1)] = t;
  }
  inv_freq_ = rope_inv_freq(c).to(device_);
}

void Transformer::add(const std::string &name, std::vector<int64_t> shape) {
  auto t = torch::zeros(shape, torch::TensorOptions().dtype(dtype_).device(device_));
  index_[name] = params_.size();
  params_.emplace_back(name, t);
}

torch::Tensor &Transformer::parameter(const std::string &name) {
  if (auto it = index_.find(name); it != index_.end()) return params_[it->second].second;
  if (auto it = adapter_index_.find(name); it != adapter_index_.end()) return adapter_params_[it->second].second;
  throw UserError("the model has no parameter '" + name + "'");
}

torch::Tensor Transformer::linear(int64_t l, const std::string &proj, const torch::Tensor &x, bool bias) {
  auto &W = layer_[static_cast<size_t>(l)];
  auto y = F::linear(x, W.at(proj + ".weight"), bias ? W.at(proj + ".bias") : torch::Tensor());
  if (!lora_config_) return y;
  auto &adapters = layer_lora_[static_cast<size_t>(l)];
  auto it = adapters.find(proj);
  if (it == adapters.end()) return y;
  const double p = training ? lora_config_->dropout : 0.0;
  auto in = p > 0 ? torch::dropout(x, p, true) : x;
  const double scale = lora_config_->alpha / static_cast<double>(lora_config_->rank);
  return y + F::linear(F::linear(in, it->second.A), it->second.B) * scale;
}

size_t Transformer::attach_lora(const LoraConfig &config) {
  if (lora_config_) throw UserError("LoRA adapters are attached already (one lora entry per pipeline)");
  if (config.rank < 1) throw UserError("LoRA rank must be at least 1");
  std::regex re;
  try {
    re = std::regex(config.targets, std::regex::ECMAScript);
  } catch (const std::regex_error &e) {
    throw UserError("LoRA targets '" + config.targets + "' is not a regular expression: " + e.what());
  }
  static const char *projections[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                      "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(config.seed);
  layer_lora_.assign(layer_.size(), {});
  torch::NoGradGuard no_grad;
  auto opts = torch::TensorOptions().dtype(dtype_).device(device_);
  for (size_t l = 0; l < layer_.size(); ++l)
    for (const char *proj : projections) {
      const std::string module = "model.layers." + std::to_string(l) + "." + proj;
      if (!std::regex_search(module, re)) continue;
      const auto &w = layer_[l].at(std::string(proj) + ".weight");
      const int64_t out = w.size(0), in = w.size(1);
      // PEFT: kaiming_uniform_(a=sqrt(5)) on A, i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0.
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      LoraAdapter a{at::empty({config.rank, in}, torch::kFloat).uniform_(-bound, bound, gen).to(opts),
                    torch::zeros({out, config.rank}, opts)};
      for (auto [suffix, t] : {std::pair{".lora_A.weight", a.A}, std::pair{".lora_B.weight", a.B}}) {
        adapter_index_[module + suffix] = adapter_params_.size();
        adapter_params_.emplace_back(module + suffix, t);
      }
      layer_lora_[l][proj] = std::move(a);
    }
  if (adapter_params_.empty())
    throw UserError("LoRA targets '" + config.targets + "' match no projection (names look like "
                    "model.layers.0.self_attn.q_proj, model.layers.0.mlp.down_proj)");
  lora_config_ = config;
  return adapter_params_.size() / 2;
}

void Transformer::merge_lora() {
  if (!lora_config_) return;
  torch::NoGradGuard no_grad;
  const double scale = lora_config_->alpha / static_cast<double>(lora_config_->rank);
  for (size_t l = 0; l < layer_lora_.size(); ++l)
    for (auto &[proj, a] : layer_lora_[l]) {
      auto &w = layer_[l].at(proj + ".weight");
      w.add_((a.B.to(torch::kFloat).mm(a.A.to(torch::kFloat)) * scale).to(w.scalar_type()));
    }
  layer_lora_.clear();
  adapter_params_.clear();
  adapter_index_.clear();
  lora_config_.reset();
}

std::vector<std::string> Transformer::lora_modules() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < adapter_params_.size(); i += 2) {
    const std::string &n = adapter_params_[i].first;
    out.push_back(n.substr(0, n.size() - std::string(".lora_A.weight").size()));
  }
  return out;
}

std::vector<int64_t> Transformer::expected_shape(const std::string &name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return {};
  auto s = params_[it->second].second.sizes();
  return {s.begin(), s.end()};
}

void Transformer::init_weights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto &[name, t] : params_) {
    const bool is_norm = name.find("norm.weight") != std::string::npos;
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    torch::Tensor v;
    if (is_norm) v = torch::ones(t.sizes(), torch::kFloat);
    else if (is_bias) v = torch::zeros(t.sizes(), torch::kFloat);
    else v = at::normal(0.0, cfg_.initializer_range, t.sizes(), gen);
    if (name == "model.embed_tokens.weight" && cfg_.pad_token_id && *cfg_.pad_token_id >= 0 &&
        *cfg_.pad_token_id < cfg_.vocab_size)
      v[*cfg_.pad_token_id].zero_();
    t.copy_(v);
  }
}

torch::Tensor Transformer::attention(int64_t l, const torch::Tensor &x, const torch::Tensor &cos,
                                     const torch::Tensor &sin, const torch::Tensor &attend, KVCache *cache) {
  const auto &c = cfg_;
  auto &W = layer_[static_cast<size_t>(l)];
  const int64_t B = x.size(0), T = x.size(1), D = c.head_dim;
  auto proj = [&](const char *name, bool bias) { return linear(l, name, x, bias); };
  auto q = proj("self_attn.q_proj", c.qkv_bias).view({B, T, c.num_heads, D});
  auto k = proj("self_attn.k_proj", c.qkv_bias).view({B, T, c.num_kv_heads, D});
  auto v = proj("self_attn.v_proj", c.qkv_bias).view({B, T, c.num_kv_heads, D});
  if (c.qk_norm) {
    q = rms_norm(q, W.at("self_attn.q_norm.weight"), c.rms_norm_eps);
    k = rms_norm(k, W.at("self_attn.k_norm.weight"), c.rms_norm_eps);
  }
  q = rope(q, cos, sin);  // [B, heads, T, D]
  k = rope(k, cos, sin);
  v = v.transpose(1, 2);
  if (cache) {
    using torch::indexing::Slice;
    const int64_t start = cache->length, end = start + T;
    TORCH_CHECK(end <= cache->k.size(3), "KV cache overflow");
    cache->k[l].index_put_({Slice(), Slice(), Slice(start, end)}, k);
    cache->v[l].index_put_({Slice(), Slice(), Slice(start, end)}, v);
    k = cache->k[l].index({Slice(), Slice(), Slice(0, end)});
    v = cache->v[l].index({Slice(), Slice(), Slice(0, end)});
  }
  const int64_t groups = c.num_heads / c.num_kv_heads;
  const double p = training ? dropout.attention : 0.0;
  torch::Tensor out;
  if (attend.defined() && groups > 1) {
    // Grouped-query attention without copying K/V per head: the query heads that share a KV head
    // become extra query rows of it (head h uses KV head h / groups), the mask repeated for them.
    auto qg = q.reshape({B, c.num_kv_heads, groups * T, D});
    auto mg = attend.unsqueeze(2).expand({B, 1, groups, T, attend.size(-1)}).reshape({B, 1, groups * T, attend.size(-1)});
    out = at::scaled_dot_product_attention(qg, k, v, mg, p, false).reshape({B, c.num_heads, T, D});
  } else {
    if (groups > 1) {
      k = k.repeat_interleave(groups, 1);
      v = v.repeat_interleave(groups, 1);
    }
    out = attend.defined() ? at::scaled_dot_product_attention(q, k, v, attend, p, false)
                           : at::scaled_dot_product_attention(q, k, v, {}, p, /*is_causal=*/T > 1);
  }
  out = out.transpose(1, 2).reshape({B, T, c.num_heads * D});
  return linear(l, "self_attn.o_proj", out, c.o_bias);
}

torch::Tensor Transformer::hidden(const torch::Tensor &ids, const torch::Tensor &positions,
                                  const torch::Tensor &attend, KVCache *cache, const torch::Tensor &lengths) {
  const auto &c = cfg_;
  const int64_t total = (cache ? cache->length : 0) + ids.size(1);
  if (c.sliding_window > 0 && total > c.sliding_window)
    throw UserError("sequence of " + std::to_string(total) + " tokens is longer than the model's sliding window (" +
                    std::to_string(c.sliding_window) + "), which keel does not implement");
  auto x = F::embedding(ids, params_[index_.at("model.embed_tokens.weight")].second);
  if (training && dropout.neftune_alpha > 0) {
    // NEFTune (Jain et al. 2023): uniform noise scaled by alpha / sqrt(L * d), with L each
    // sequence's real length (transformers uses the padded length, which weakens the noise).
    auto L = lengths.defined() ? lengths.to(x.device()).to(torch::kFloat)
                               : torch::full({x.size(0)}, static_cast<float>(x.size(1)), x.options().dtype(torch::kFloat));
    auto scale = dropout.neftune_alpha / torch::sqrt(L.clamp_min(1) * static_cast<double>(c.hidden_size));
    scale = scale.dim() == 1 ? scale.view({-1, 1, 1}) : scale.unsqueeze(-1);  // per sequence, or per token
    x = x + torch::empty_like(x).uniform_(-1, 1) * scale.to(x.scalar_type());
  }
  if (training && dropout.embedding > 0) x = torch::dropout(x, dropout.embedding, true);
  // cos/sin [B, T, D], computed in fp32 and cast to the residual stream's dtype as transformers does.
  auto freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq_;
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = emb.cos().to(x.scalar_type()), sin = emb.sin().to(x.scalar_type());
  const bool recompute = activation_checkpointing && training && !cache && torch::GradMode::is_enabled();
  // The checkpointed layers' parameters are not inputs of the autograd function: its input must
  // require a gradient, or autograd never calls its backward (frozen embeddings, under LoRA).
  if (recompute && !x.requires_grad()) x = x.detach().requires_grad_(true);
  for (int64_t l = 0; l < c.num_layers; ++l)
    x = recompute ? CheckpointedLayer::apply(x, this, l, cos, sin, &attend) : layer(l, x, cos, sin, attend, cache);
  if (cache) cache->length = total;
  return rms_norm(x, params_[index_.at("model.norm.weight")].second, c.rms_norm_eps);
}

torch::Tensor Transformer::layer(int64_t l, const torch::Tensor &x_in, const torch::Tensor &cos, const torch::Tensor &sin,
                                 const torch::Tensor &attend, KVCache *cache) {
  const auto &c = cfg_;
  auto &W = layer_[static_cast<size_t>(l)];
  auto x = x_in + attention(l, rms_norm(x_in, W.at("input_layernorm.weight"), c.rms_norm_eps), cos, sin, attend, cache);
  auto h = rms_norm(x, W.at("post_attention_layernorm.weight"), c.rms_norm_eps);
  auto mlp = linear(l, "mlp.down_proj",
                    F::silu(linear(l, "mlp.gate_proj", h, c.mlp_bias)) * linear(l, "mlp.up_proj", h, c.mlp_bias),
                    c.mlp_bias);
  if (training && dropout.ffn > 0) mlp = torch::dropout(mlp, dropout.ffn, true);
  return x + mlp;
}

// Activation checkpointing (PyTorch's reentrant checkpoint, per decoder layer): the forward keeps
// only the layer's input; the backward runs the layer again with the random state and autocast
// setting of the first pass (so dropout draws the same masks), then backpropagates through it,
// which accumulates the parameters' gradients and gives the input's.
torch::Tensor Transformer::CheckpointedLayer::forward(torch::autograd::AutogradContext *ctx, const torch::Tensor &x,
                                                      Transformer *model, int64_t l, const torch::Tensor &cos,
                                                      const torch::Tensor &sin, const torch::Tensor *attend) {
  at::Generator gen = at::globalContext().defaultGenerator(x.device());
  ctx->saved_data["rng"] = gen.get_state();
  ctx->saved_data["model"] = reinterpret_cast<int64_t>(model);
  ctx->saved_data["layer"] = l;
  ctx->saved_data["cos"] = cos;
  ctx->saved_data["sin"] = sin;
  ctx->saved_data["attend"] = *attend;  // by pointer: an undefined tensor cannot be an autograd input
  ctx->saved_data["autocast"] = x.is_cuda() && at::autocast::is_autocast_enabled(at::kCUDA);
  ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(at::autocast::get_autocast_dtype(at::kCUDA));
  ctx->save_for_backward({x});
  return model->layer(l, x, cos, sin, *attend, nullptr);
}

torch::autograd::variable_list Transformer::CheckpointedLayer::backward(torch::autograd::AutogradContext *ctx,
                                                                        torch::autograd::variable_list grad_out) {
  auto *model = reinterpret_cast<Transformer *>(ctx->saved_data["model"].toInt());
  auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
  at::Generator gen = at::globalContext().defaultGenerator(x.device());
  const torch::Tensor now = gen.get_state();
  gen.set_state(ctx->saved_data["rng"].toTensor());
  const bool autocast = ctx->saved_data["autocast"].toBool();
  torch::Tensor y;
  {
    torch::AutoGradMode grad(true);
    if (autocast) {
      at::autocast::set_autocast_enabled(at::kCUDA, true);
      at::autocast::set_autocast_dtype(at::kCUDA, static_cast<at::ScalarType>(ctx->saved_data["autocast_dtype"].toInt()));
    }
    y = model->layer(ctx->saved_data["layer"].toInt(), x, ctx->saved_data["cos"].toTensor(),
                     ctx->saved_data["sin"].toTensor(), ctx->saved_data["attend"].toTensor(), nullptr);
    if (autocast) {
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      at::autocast::clear_cache();
    }
  }
  gen.set_state(now);
  torch::autograd::backward({y}, {grad_out[0]});
  return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
}

torch::Tensor Transformer::lm_head_weight() const {
  return params_[index_.at(cfg_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight")].second;
}

torch::Tensor Transformer::logits(const torch::Tensor &hidden) const {
  return F::linear(hidden, lm_head_weight()).to(torch::kFloat);
}

KVCache Transformer::make_cache(int64_t batch, int64_t capacity) const {
  auto opts = torch::TensorOptions().dtype(dtype_).device(device_);
  KVCache kv;
  kv.k = torch::zeros({cfg_.num_layers, batch, cfg_.num_kv_heads, capacity, cfg_.head_dim}, opts);
  kv.v = torch::zeros_like(kv.k);
  return kv;
}

}  // namespace keel
