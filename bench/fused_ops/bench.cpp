// keel's fused CPU kernels (RMSNorm, RoPE, AdamW, gradient clipping) against what they replace, at the training benchmark's model size
// (hidden 256, 4 heads of 64, 8 x 256 tokens, 4.2M parameters), fp32. Each pair runs interleaved,
// 60 rounds, and the medians are compared, so a slow spell on a shared machine hits both.
//
// usage: build/bin/bench_fused_ops
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "model/ops.hpp"
#include "train/optimizer.hpp"

namespace {

double ms(const std::function<void()> &fn) {
  const auto t = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

void compare(const char *what, const std::function<void()> &before, const std::function<void()> &after) {
  std::vector<double> a, b;
  for (int r = 0; r < 60; ++r) a.push_back(ms(before)), b.push_back(ms(after));
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("%-40s %7.2f ms -> %7.2f ms   %.2fx faster\n", what, median(a), median(b), median(a) / median(b));
}

}  // namespace

int main() {
  torch::manual_seed(0);
  std::printf("fp32 CPU, %d threads; median of 60 interleaved rounds\n", at::get_num_threads());
  const int64_t B = 8, T = 256, H = 256, heads = 4, D = 64;

  auto x = torch::randn({B, T, H}).requires_grad_(true);
  auto w = torch::ones({H}).requires_grad_(true);
  auto dy = torch::randn({B, T, H});
  compare("RMSNorm forward + backward", [&] { keel::rms_norm_reference(x, w, 1e-6).backward(dy); },
          [&] { keel::rms_norm(x, w, 1e-6).backward(dy); });

  auto q = torch::randn({B, T, heads, D}).requires_grad_(true);
  auto freqs = torch::arange(T, torch::kFloat).view({1, T, 1}).expand({B, T, 1}) *
               (1.0 / torch::pow(10000.0, torch::arange(0, D, 2, torch::kFloat) / D));
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = emb.cos(), sin = emb.sin();
  auto dq = torch::randn({B, heads, T, D});
  compare("RoPE forward + backward (one of q, k)", [&] { keel::rope_reference(q, cos, sin).backward(dq); },
          [&] { keel::rope(q, cos, sin).backward(dq); });

  // The 4.2M parameters of that model (4 layers, vocab 288, untied head), with gradients.
  std::vector<std::vector<int64_t>> shapes = {{288, H}, {288, H}, {H}};
  for (int l = 0; l < 4; ++l)
    for (auto s : std::vector<std::vector<int64_t>>{{H}, {H, H}, {H, H}, {H, H}, {H, H}, {H}, {4 * H, H}, {4 * H, H}, {H, 4 * H}})
      shapes.push_back(s);
  auto params = [&] {
    std::vector<torch::Tensor> p;
    for (auto &s : shapes) {
      p.push_back(torch::randn(s).requires_grad_(true));
      p.back().mutable_grad() = torch::randn(s);
    }
    return p;
  };
  torch::optim::AdamW plain(params(), torch::optim::AdamWOptions(1e-4));
  keel::FusedAdamW fused(params(), torch::optim::AdamWOptions(1e-4));
  compare("AdamW step (libtorch -> fused)", [&] { plain.step(); }, [&] { fused.step(); });

  auto p1 = params(), p2 = params();
  std::vector<torch::Tensor> g2;
  for (auto &p : p2) g2.push_back(p.grad());
  compare("gradient clipping (libtorch -> foreach)", [&] { torch::nn::utils::clip_grad_norm_(p1, 1.0); },
          [&] { keel::clip_grad_norm(g2, 1.0); });
}
