#include "checkpoint/model_folder.hpp"

#include <fstream>
#include <set>

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
  if (!fs::exists(dir / "config.json") && fs::exists(dir / "adapter_config.json")) {
    std::ifstream in(dir / "adapter_config.json");
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_object() || !j.value("base_model_name_or_path", nlohmann::json()).is_string())
      throw UserError((dir / "adapter_config.json").string() + ": no base_model_name_or_path string");
    const fs::path base = j["base_model_name_or_path"].get<std::string>();
    if (!fs::exists(base / "config.json"))
      throw UserError((dir / "adapter_config.json").string() + ": base_model_name_or_path '" + base.string() +
                      "' is not a model folder here (keel loads no model from a hub)");
    auto model = load_model(base, device, dtype);
    model->attach_lora(read_peft_config(dir));
    load_peft_tensors(dir, *model);
    return model;
  }
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

namespace {

const std::string kPeftPrefix = "base_model.model.";

void copy_tokenizer_files(const fs::path &source_dir, const fs::path &dir) {
  if (!source_dir.empty() && fs::absolute(source_dir) != fs::absolute(dir))
    for (const char *f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"})
      if (fs::exists(source_dir / f)) fs::copy_file(source_dir / f, dir / f, fs::copy_options::overwrite_existing);
}

}  // namespace

LoraConfig read_peft_config(const fs::path &dir) {
  const fs::path file = dir / "adapter_config.json";
  std::ifstream in(file);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_object()) throw UserError(file.string() + ": not a JSON object");
  if (j.value("peft_type", "") != "LORA") throw UserError(file.string() + ": peft_type is not LORA");
  for (const char *unsupported : {"use_rslora", "use_dora"})
    if (j.value(unsupported, false)) throw UserError(file.string() + ": " + unsupported + " is not supported by keel");
  for (const char *unsupported : {"layers_to_transform", "rank_pattern", "alpha_pattern", "modules_to_save"})
    if (j.contains(unsupported) && !j[unsupported].is_null() && !j[unsupported].empty())
      throw UserError(file.string() + ": " + unsupported + " is not supported by keel");
  LoraConfig c;
  c.rank = j.value("r", int64_t{8});
  c.alpha = j.value("lora_alpha", 8.0);
  c.dropout = j.value("lora_dropout", 0.0);
  const auto &t = j.value("target_modules", nlohmann::json());
  if (t.is_string()) {
    c.targets = "^(?:" + t.get<std::string>() + ")$";  // PEFT: a string is matched whole
  } else if (t.is_array() && !t.empty()) {
    std::string alt;  // PEFT: a list matches module names that end in one of its entries
    for (const auto &m : t) alt += (alt.empty() ? "" : "|") + m.get<std::string>();
    c.targets = "\\.(?:" + alt + ")$";
  } else {
    throw UserError(file.string() + ": target_modules must be a string or a non-empty list");
  }
  return c;
}

void save_peft_folder(const fs::path &dir, const Transformer &model, const fs::path &base_dir,
                      const std::vector<std::pair<std::string, torch::Tensor>> &trained) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto &[name, t] : model.adapter_parameters()) tensors.emplace_back(kPeftPrefix + name, t.detach().to(torch::kFloat));
  write_safetensors_file(dir / "adapter_model.safetensors", tensors);
  if (!trained.empty()) write_safetensors_file(dir / "base_trained.safetensors", trained);
  // target_modules: the projection names when every layer has them (PEFT's list form), else the
  // exact module names as one regex (PEFT matches a string whole).
  const auto modules = model.lora_modules();
  std::set<std::string> shorts;
  for (const auto &m : modules) shorts.insert(m.substr(m.rfind('.') + 1));
  nlohmann::json targets;
  if (modules.size() == shorts.size() * static_cast<size_t>(model.config().num_layers)) {
    targets = std::vector<std::string>(shorts.begin(), shorts.end());
  } else {
    std::string re;
    for (const auto &m : modules) {
      re += re.empty() ? "" : "|";
      for (char ch : m) re += ch == '.' ? std::string("\\.") : std::string(1, ch);
    }
    targets = re;
  }
  const LoraConfig &c = model.lora_config();
  nlohmann::ordered_json j = {{"peft_type", "LORA"},
                              {"task_type", "CAUSAL_LM"},
                              {"base_model_name_or_path", fs::absolute(base_dir).lexically_normal().string()},
                              {"r", c.rank},
                              {"lora_alpha", c.alpha},
                              {"lora_dropout", c.dropout},
                              {"target_modules", targets},
                              {"bias", "none"},
                              {"fan_in_fan_out", false},
                              {"use_rslora", false},
                              {"use_dora", false},
                              {"inference_mode", true},
                              {"init_lora_weights", true},
                              {"modules_to_save", nullptr}};
  std::ofstream(dir / "adapter_config.json") << j.dump(2) << "\n";
  copy_tokenizer_files(base_dir, dir);
}

void load_peft_tensors(const fs::path &dir, Transformer &model) {
  SafetensorsFile f(dir / "adapter_model.safetensors");
  std::set<std::string> seen;
  torch::NoGradGuard no_grad;
  for (const auto &[name, e] : f.entries()) {
    const std::string n = name.rfind(kPeftPrefix, 0) == 0 ? name.substr(kPeftPrefix.size()) : name;
    if (!model.has_parameter(n) || n.find(".lora_") == std::string::npos)
      throw UserError(f.path().string() + ": tensor '" + name + "' is not an adapter of this pipeline's LoRA (rank, "
                      "targets) on this model");
    auto &t = model.parameter(n);
    if (e.shape != std::vector<int64_t>(t.sizes().begin(), t.sizes().end()))
      throw UserError(f.path().string() + ": tensor '" + name + "' has another shape than this pipeline's adapter (rank?)");
    t.copy_(f.view(name));
    seen.insert(n);
  }
  for (const auto &[n, t] : model.adapter_parameters())
    if (!seen.count(n)) throw UserError(f.path().string() + ": adapter '" + n + "' is missing");
  if (fs::exists(dir / "base_trained.safetensors")) {
    SafetensorsFile b(dir / "base_trained.safetensors");
    for (const auto &[name, e] : b.entries()) {
      if (!model.has_parameter(name)) throw UserError(b.path().string() + ": the model has no parameter '" + name + "'");
      model.parameter(name).copy_(b.view(name));
    }
  }
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
  copy_tokenizer_files(source_dir, dir);
}

}  // namespace keel
