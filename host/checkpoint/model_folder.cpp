#include "checkpoint/model_folder.hpp"

#include <fstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "checkpoint/safetensors.hpp"
#include "common/errors.hpp"

namespace keel {
namespace fs = std::filesystem;

torch::Device parse_device(const std::string &name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available()) throw UserError("device 'cuda' asked for, but no CUDA device is available");
    return torch::kCUDA;
  }
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  throw UserError("device '" + name + "': expected cpu, cuda or auto");
}

torch::Dtype parse_dtype(const std::string &name, torch::Device device) {
  if (name == "fp32" || name == "float32") return torch::kFloat;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp16" || name == "float16") {
    if (!device.is_cuda()) throw UserError("dtype fp16 is only supported on CUDA; use fp32 or bf16 on CPU");
    return torch::kHalf;
  }
  throw UserError("dtype '" + name + "': expected fp32, bf16 or fp16");
}

std::string hf_dtype_name(torch::Dtype dtype) {
  return dtype == torch::kBFloat16 ? "bfloat16" : dtype == torch::kHalf ? "float16" : "float32";
}

std::unique_ptr<Transformer> load_model(const fs::path &dir, torch::Device device, torch::Dtype dtype) {
  ModelConfig cfg = ModelConfig::load(dir / "config.json");
  auto model = std::make_unique<Transformer>(cfg, device, dtype);
  SafetensorsSet st(dir);
  torch::NoGradGuard no_grad;
  for (auto &[name, param] : model->parameters()) {
    if (!st.has(name))
      throw UserError(dir.string() + ": tensor '" + name + "' is missing from the weights");
    const auto &e = st.entry(name);
    if (e.shape != model->expected_shape(name)) {
      std::string got, want;
      for (auto d : e.shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
      for (auto d : model->expected_shape(name)) want += (want.empty() ? "" : ", ") + std::to_string(d);
      throw UserError(st.file_of(name) + ": tensor '" + name + "' has shape [" + got + "], config.json implies [" + want + "]");
    }
    param.copy_(st.view(name));
  }
  for (const std::string &n : st.names())
    if (!model->has_parameter(n) && !(n == "lm_head.weight" && cfg.tie_word_embeddings))
      spdlog::warn("{}: tensor '{}' is not used by a {} model", dir.string(), n, cfg.architecture);
  return model;
}

void save_model(const fs::path &dir, const Transformer &model, const fs::path &source_dir, torch::Dtype save_dtype,
                uint64_t max_shard_bytes) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto &[name, t] : model.parameters()) tensors.emplace_back(name, t.detach().to(save_dtype));
  save_safetensors(dir, tensors, max_shard_bytes);
  std::ofstream(dir / "config.json") << model.config().to_json(hf_dtype_name(save_dtype)).dump(2) << "\n";
  const fs::path gen_src = source_dir / "generation_config.json";
  if (!source_dir.empty() && fs::exists(gen_src) && fs::absolute(source_dir) != fs::absolute(dir)) {
    fs::copy_file(gen_src, dir / "generation_config.json", fs::copy_options::overwrite_existing);
  } else if (!fs::exists(dir / "generation_config.json")) {
    nlohmann::json g = {{"_from_model_config", true}};
    const auto &c = model.config();
    if (c.bos_token_id) g["bos_token_id"] = *c.bos_token_id;
    if (c.pad_token_id) g["pad_token_id"] = *c.pad_token_id;
    if (c.eos_token_ids.size() == 1) g["eos_token_id"] = c.eos_token_ids[0];
    else if (!c.eos_token_ids.empty()) g["eos_token_id"] = c.eos_token_ids;
    std::ofstream(dir / "generation_config.json") << g.dump(2) << "\n";
  }
  if (!source_dir.empty() && fs::absolute(source_dir) != fs::absolute(dir))
    for (const char *f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"})
      if (fs::exists(source_dir / f)) fs::copy_file(source_dir / f, dir / f, fs::copy_options::overwrite_existing);
}

}  // namespace keel
