// Hugging Face model folders: config.json + safetensors weights (+ tokenizer and generation
// config files, copied through on save), loaded into and saved from a Transformer.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "model/transformer.hpp"

namespace keel {

// "cpu" | "cuda" | "auto" (cuda when available).
torch::Device parse_device(const std::string &name);
// "fp32" | "bf16" | "fp16" (also HF's "float32", "bfloat16", "float16"); fp16 only on CUDA.
torch::Dtype parse_dtype(const std::string &name, torch::Device device);
std::string hf_dtype_name(torch::Dtype dtype);

// Loads config.json and every expected tensor (present, right shape) from `dir`. Throws UserError
// naming the file and tensor on any problem. A PEFT LoRA folder (adapter_config.json, no
// config.json) loads as its base model (base_model_name_or_path) with the adapters attached.
std::unique_ptr<Transformer> load_model(const std::filesystem::path &dir, torch::Device device, torch::Dtype dtype);

// PEFT's LoRA folder: adapter_config.json + adapter_model.safetensors (tensor names prefixed
// "base_model.model."), loadable by peft.PeftModel.from_pretrained onto the base model. `trained`
// are base parameters that trained beside the adapters (keel's checkpoints only; PEFT has no place
// for them): written to base_trained.safetensors.
void save_peft_folder(const std::filesystem::path &dir, const Transformer &model, const std::filesystem::path &base_dir,
                      const std::vector<std::pair<std::string, torch::Tensor>> &trained = {});
// Copies a PEFT folder's adapters (and base_trained.safetensors, if any) into `model`, whose
// adapters must have the same names and shapes.
void load_peft_tensors(const std::filesystem::path &dir, Transformer &model);
// The LoRA settings of a PEFT adapter_config.json, as keel's LoraConfig.
LoraConfig read_peft_config(const std::filesystem::path &dir);

// Writes `model` as an HF folder in `dir` (created): config.json, generation_config.json,
// model.safetensors (or shards above max_shard_bytes), and the tokenizer files of `source_dir`.
void save_model(const std::filesystem::path &dir, const Transformer &model, const std::filesystem::path &source_dir,
                torch::Dtype save_dtype, uint64_t max_shard_bytes = 2ull << 30);

}  // namespace keel
