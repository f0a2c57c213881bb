// The model's shape, read from a Hugging Face config.json. Every field that changes the math is
// either supported or a clear error; nothing is silently ignored.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace keel {

struct ModelConfig {
  std::string architecture;  // LlamaForCausalLM | Qwen2ForCausalLM | Qwen3ForCausalLM | MistralForCausalLM
  std::string model_type;    // llama | qwen2 | qwen3 | mistral
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_layers = 0;
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0, max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6, rope_theta = 10000.0, initializer_range = 0.02;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2: always; Llama/Qwen3: attention_bias (o_proj too for Llama)
  bool o_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;   // Qwen3: per-head RMSNorm on q and k
  // rope_scaling / rope_parameters of type llama3 (type "" = none)
  std::string rope_type;
  double rope_factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int64_t rope_original_max_positions = 8192;
  // attention windows: sequences longer than this are refused (0 = none)
  int64_t sliding_window = 0;
  std::optional<int64_t> bos_token_id, pad_token_id;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";
  nlohmann::json raw;  // the file as read; saved back with only dtype and dropout normalised

  // Throws UserError("<where>: <field>: <reason>").
  static ModelConfig from_json(const nlohmann::json &j, const std::string &where);
  static ModelConfig load(const std::filesystem::path &config_json);
  // config.json for saving: the original keys, torch_dtype set, dropout fields zeroed.
  nlohmann::json to_json(const std::string &dtype_name) const;
};

}  // namespace keel
