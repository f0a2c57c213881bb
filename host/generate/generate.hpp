// Batched sampling with a preallocated KV cache: left-padded prompts, temperature (0 = greedy),
// top-k, top-p, repetition penalty, stop ids, reproducible with a seed.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "model/transformer.hpp"

namespace keel {

struct SamplingSettings {
  double temperature = 0.7;  // 0 = greedy
  double top_p = 1.0;
  int64_t top_k = 0;         // 0 = off
  double repetition_penalty = 1.0;
  int64_t max_new_tokens = 64;
  std::vector<int64_t> stop_ids;  // generation of a row ends at the first of these (not returned)
  uint64_t seed = 0;
};

struct Generation {
  std::vector<int64_t> tokens;  // the new tokens, without the stop token
  bool stopped = false;         // ended on a stop id (else on max_new_tokens)
};

struct GenerationTiming {
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t decode_steps = 0;  // cached one-token forwards
};

// Generates for every prompt (each non-empty), all in one left-padded batch.
std::vector<Generation> generate(Transformer &model, const std::vector<std::vector<int64_t>> &prompts,
                                 const SamplingSettings &settings, GenerationTiming *timing = nullptr);

// Picks the next token of each row from logits [B, V] (fp32) given the tokens seen so far.
torch::Tensor sample_next(torch::Tensor logits, const std::vector<std::vector<int64_t>> &seen,
                          const SamplingSettings &s, torch::Generator &gen);

}  // namespace keel
