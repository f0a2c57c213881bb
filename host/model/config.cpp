#include "model/config.hpp"

#include <fstream>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace keel {

namespace {

template <class T>
T get_or(const nlohmann::json &j, const char *key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return it->get<T>();
}

}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json &j, const std::string &where) {
  auto fail = [&](const std::string &field, const std::string &why) {
    return UserError(fmt::format("{}: {}: {}", where, field, why));
  };
  ModelConfig c;
  c.raw = j;
  try {
    if (!j.is_object()) throw fail("config.json", "not a JSON object");
    c.model_type = get_or<std::string>(j, "model_type", "");
    if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
      c.architecture = j["architectures"][0].get<std::string>();
    static const std::pair<const char *, const char *> known[] = {
        {"llama", "LlamaForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}, {"qwen3", "Qwen3ForCausalLM"},
        {"mistral", "MistralForCausalLM"}};
    bool ok = false;
    for (auto [type, arch] : known)
      if (c.model_type == type) {
        ok = true;
        if (c.architecture.empty()) c.architecture = arch;
        if (c.architecture != arch)
          throw fail("architectures", fmt::format("'{}' does not match model_type '{}' (expected {})",
                                                  c.architecture, c.model_type, arch));
      }
    if (!ok)
      throw fail("model_type", fmt::format("'{}' is not supported; keel supports llama, qwen2, qwen3, mistral",
                                           c.model_type));
    auto need = [&](const char *key) -> int64_t {
      if (!j.contains(key) || !j[key].is_number_integer()) throw fail(key, "missing or not an integer");
      int64_t v = j[key].get<int64_t>();
      if (v <= 0) throw fail(key, "must be > 0");
      return v;
    };
    c.vocab_size = need("vocab_size");
    c.hidden_size = need("hidden_size");
    c.intermediate_size = need("intermediate_size");
    c.num_layers = need("num_hidden_layers");
    c.num_heads = need("num_attention_heads");
    c.num_kv_heads = get_or<int64_t>(j, "num_key_value_heads", c.num_heads);
    if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
      throw fail("num_key_value_heads", fmt::format("{} must divide num_attention_heads {}", c.num_kv_heads, c.num_heads));
    c.head_dim = get_or<int64_t>(j, "head_dim", c.hidden_size / c.num_heads);
    if (c.head_dim <= 0 || c.head_dim % 2 != 0) throw fail("head_dim", "must be a positive even number");
    c.max_position_embeddings = get_or<int64_t>(j, "max_position_embeddings", 2048);
    c.rms_norm_eps = get_or<double>(j, "rms_norm_eps", 1e-6);
    c.initializer_range = get_or<double>(j, "initializer_range", 0.02);
    c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false);
    const std::string act = get_or<std::string>(j, "hidden_act", "silu");
    if (act != "silu") throw fail("hidden_act", fmt::format("'{}' is not supported (only silu)", act));
    if (get_or<int64_t>(j, "pretraining_tp", 1) != 1) throw fail("pretraining_tp", "only 1 is supported");

    const bool attention_bias = get_or<bool>(j, "attention_bias", false);
    if (c.model_type == "qwen2") {
      c.qkv_bias = true;
    } else if (c.model_type == "llama" || c.model_type == "qwen3") {
      c.qkv_bias = attention_bias;
      c.o_bias = attention_bias;
    } else if (attention_bias) {
      throw fail("attention_bias", "not supported for mistral");
    }
    c.mlp_bias = get_or<bool>(j, "mlp_bias", false);
    c.qk_norm = c.model_type == "qwen3";

    // RoPE: transformers 5 writes rope_parameters; older files rope_theta + rope_scaling.
    nlohmann::json rope = nlohmann::json::object();
    if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) rope = j["rope_parameters"];
    else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) rope = j["rope_scaling"];
    c.rope_theta = get_or<double>(rope, "rope_theta", get_or<double>(j, "rope_theta", 10000.0));
    std::string rtype = get_or<std::string>(rope, "rope_type", get_or<std::string>(rope, "type", "default"));
    if (rtype == "llama3") {
      c.rope_type = "llama3";
      c.rope_factor = get_or<double>(rope, "factor", 8.0);
      c.low_freq_factor = get_or<double>(rope, "low_freq_factor", 1.0);
      c.high_freq_factor = get_or<double>(rope, "high_freq_factor", 4.0);
      c.rope_original_max_positions = get_or<int64_t>(rope, "original_max_position_embeddings", 8192);
    } else if (rtype != "default") {
      throw fail("rope_scaling", fmt::format("rope type '{}' is not supported (supported: none/default, llama3)", rtype));
    }

    // Sliding windows: refused at run time for sequences longer than the window.
    bool sliding = c.model_type == "mistral" ? true : get_or<bool>(j, "use_sliding_window", false);
    if (j.contains("layer_types") && j["layer_types"].is_array())
      for (const auto &t : j["layer_types"])
        if (t.is_string() && t.get<std::string>() == "sliding_attention") sliding = true;
    if (sliding) c.sliding_window = get_or<int64_t>(j, "sliding_window", 0);

    if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"].get<int64_t>();
    if (j.contains("pad_token_id") && j["pad_token_id"].is_number_integer()) c.pad_token_id = j["pad_token_id"].get<int64_t>();
    if (j.contains("eos_token_id")) {
      const auto &e = j["eos_token_id"];
      if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int64_t>());
      else if (e.is_array())
        for (const auto &x : e) c.eos_token_ids.push_back(x.get<int64_t>());
    }
    c.torch_dtype = get_or<std::string>(j, "torch_dtype", get_or<std::string>(j, "dtype", "float32"));
  } catch (const nlohmann::json::exception &e) {
    throw UserError(fmt::format("{}: a field has the wrong type: {}", where, e.what()));
  }
  return c;
}

ModelConfig ModelConfig::load(const std::filesystem::path &config_json) {
  std::ifstream in(config_json);
  if (!in) throw UserError(fmt::format("{}: cannot read (a model folder needs config.json)", config_json.string()));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception &e) {
    throw UserError(fmt::format("{}: not valid JSON: {}", config_json.string(), e.what()));
  }
  return from_json(j, config_json.string());
}

nlohmann::json ModelConfig::to_json(const std::string &dtype_name) const {
  nlohmann::json j = raw;
  j["torch_dtype"] = dtype_name;
  if (j.contains("dtype")) j["dtype"] = dtype_name;
  for (const char *k : {"attention_dropout", "hidden_dropout", "embd_pdrop", "resid_pdrop", "attn_pdrop"})
    if (j.contains(k)) j[k] = 0.0;
  if (!j.contains("architectures")) j["architectures"] = nlohmann::json::array({architecture});
  return j;
}

}  // namespace keel
