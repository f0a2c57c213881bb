#include "generate/generate.hpp"

#include <algorithm>
#include <chrono>

#include "common/errors.hpp"

namespace keel {

using torch::indexing::Slice;

torch::Tensor sample_next(torch::Tensor logits, const std::vector<std::vector<int64_t>> &seen,
                          const SamplingSettings &s, torch::Generator &gen) {
  const int64_t B = logits.size(0), V = logits.size(1);
  if (s.repetition_penalty != 1.0) {
    // As transformers: a seen token's logit is divided by the penalty if positive, else multiplied.
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> ids(seen[b]);
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      if (ids.empty()) continue;
      auto idx = torch::tensor(ids, torch::kInt64).to(logits.device());
      auto row = logits[b];
      auto vals = row.index_select(0, idx);
      row.index_copy_(0, idx, torch::where(vals < 0, vals * s.repetition_penalty, vals / s.repetition_penalty));
    }
  }
  if (s.temperature <= 0) return logits.argmax(-1);
  logits = logits / s.temperature;
  if (s.top_k > 0 && s.top_k < V) {
    auto kth = std::get<0>(logits.topk(s.top_k, -1)).index({Slice(), Slice(-1, torch::indexing::None)});
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  if (s.top_p < 1.0) {
    // Keep the smallest set whose mass reaches top_p (transformers' TopPLogitsWarper, which sorts
    // ascending and drops the low tail whose cumulative mass is <= 1 - top_p).
    auto [sorted, order] = logits.sort(-1, /*descending=*/false);
    auto cum = sorted.softmax(-1).cumsum(-1);
    auto drop_sorted = cum <= (1 - s.top_p);
    drop_sorted.index_put_({Slice(), -1}, false);  // always keep the most likely token
    auto drop = drop_sorted.scatter(1, order, drop_sorted);
    logits = logits.masked_fill(drop, -std::numeric_limits<float>::infinity());
  }
  auto probs = logits.softmax(-1);
  return torch::multinomial(probs.to(torch::kCPU), 1, false, gen).squeeze(-1).to(logits.device());
}

std::vector<Generation> generate(Transformer &model, const std::vector<std::vector<int64_t>> &prompts,
                                 const SamplingSettings &s, GenerationTiming *timing) {
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  const auto t_start = clock::now();
  torch::NoGradGuard no_grad;
  const bool was_training = model.training;
  model.training = false;
  const int64_t B = static_cast<int64_t>(prompts.size());
  std::vector<Generation> out(static_cast<size_t>(B));
  if (B == 0) return out;
  int64_t P = 0;
  for (const auto &p : prompts) {
    if (p.empty()) throw UserError("generate: an empty prompt (it needs at least one token)");
    P = std::max<int64_t>(P, static_cast<int64_t>(p.size()));
  }
  const int64_t capacity = P + s.max_new_tokens;
  if (capacity > model.config().max_position_embeddings)
    throw UserError("generate: prompt (" + std::to_string(P) + ") + max_new_tokens (" + std::to_string(s.max_new_tokens) +
                    ") exceeds the model's max_position_embeddings (" +
                    std::to_string(model.config().max_position_embeddings) + ")");
  const auto dev = model.device();
  const int64_t pad = model.config().pad_token_id.value_or(0);

  // Left padding: every prompt ends at column P-1; valid[b, j] marks real tokens.
  auto ids = torch::full({B, P}, pad, torch::kInt64);
  auto valid = torch::zeros({B, capacity}, torch::kBool);
  for (int64_t b = 0; b < B; ++b) {
    const auto &p = prompts[b];
    const int64_t off = P - static_cast<int64_t>(p.size());
    ids.index_put_({b, Slice(off, P)}, torch::tensor(p, torch::kInt64));
    valid.index_put_({b, Slice(off, torch::indexing::None)}, true);
  }
  ids = ids.to(dev);
  valid = valid.to(dev);
  // Positions count real tokens only, so a padded prompt sees the same positions as alone.
  auto pos_all = (valid.to(torch::kInt64).cumsum(1) - 1).clamp_min(0);

  KVCache cache = model.make_cache(B, capacity);
  // Prefill: causal over the prompt block, keys restricted to real tokens; each position may always
  // see itself so no row is fully masked (a fully masked softmax row is NaN).
  auto causal = torch::ones({P, P}, torch::TensorOptions().dtype(torch::kBool).device(dev)).tril();
  auto eye = torch::eye(P, torch::TensorOptions().dtype(torch::kBool).device(dev));
  auto attend = (causal.unsqueeze(0) & valid.index({Slice(), Slice(0, P)}).unsqueeze(1)) | eye.unsqueeze(0);
  auto h = model.hidden(ids, pos_all.index({Slice(), Slice(0, P)}), attend.unsqueeze(1), &cache);
  auto logits = model.logits(h.index({Slice(), -1}));
  const double prefill = since(t_start);
  const auto t_decode = clock::now();
  int64_t steps = 0;

  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(s.seed);
  std::vector<std::vector<int64_t>> seen(prompts.begin(), prompts.end());
  std::vector<bool> done(static_cast<size_t>(B), false);
  for (int64_t t = 0; t < s.max_new_tokens; ++t) {
    auto next = sample_next(logits, seen, s, gen).to(torch::kCPU);
    auto next_a = next.accessor<int64_t, 1>();
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      const int64_t tok = next_a[b];
      if (std::find(s.stop_ids.begin(), s.stop_ids.end(), tok) != s.stop_ids.end()) {
        done[b] = true;
        out[b].stopped = true;
        continue;
      }
      out[b].tokens.push_back(tok);
      seen[b].push_back(tok);
      all_done = false;
    }
    if (all_done || t + 1 == s.max_new_tokens) break;
    // Decode one position for every row (finished rows keep going; their output is discarded).
    const int64_t col = P + t;
    auto attend_k = valid.index({Slice(), Slice(0, col + 1)}).view({B, 1, 1, col + 1});
    h = model.hidden(next.to(dev).view({B, 1}), pos_all.index({Slice(), Slice(col, col + 1)}), attend_k, &cache);
    logits = model.logits(h.index({Slice(), -1}));
    ++steps;
  }
  if (timing) *timing = {prefill, since(t_decode), steps};
  model.training = was_training;
  return out;
}

}  // namespace keel
