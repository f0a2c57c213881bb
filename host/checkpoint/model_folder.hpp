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
// naming the file and tensor on any problem.
std::unique_ptr<Transformer> load_model(const std::filesystem::path &dir, torch::Device device, torch::Dtype dtype);

// Writes `model` as an HF folder in `dir` (created): config.json, generation_config.json,
// model.safetensors (or shards above max_shard_bytes), and the tokenizer files of `source_dir`.
void save_model(const std::filesystem::path &dir, const Transformer &model, const std::filesystem::path &source_dir,
                torch::Dtype save_dtype, uint64_t max_shard_bytes = 2ull << 30);

}  // namespace keel
