// The fused CPU kernels for RMSNorm and RoPE against their ATen compositions (the math transformers
// runs): outputs and every gradient equal to fp32 rounding (<= 1e-5 relative), on contiguous
// inputs and on the strided views a fused q/k/v projection hands them.
#include <doctest/doctest.h>

#include "model/ops.hpp"

using namespace keel;

namespace {

double rel(const torch::Tensor &a, const torch::Tensor &b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

}  // namespace

TEST_CASE("fused RMSNorm equals the ATen composition in output and gradients") {
  torch::manual_seed(0);
  for (auto shape : std::vector<std::vector<int64_t>>{{3, 5, 64}, {2, 7, 3, 40}, {1, 1, 19}}) {
    const int64_t H = shape.back();
    auto x0 = torch::randn(shape) * 3, w0 = 1 + 0.3 * torch::randn({H}), dy = torch::randn(shape);
    auto x1 = x0.clone().requires_grad_(true), w1 = w0.clone().requires_grad_(true);
    auto x2 = x0.clone().requires_grad_(true), w2 = w0.clone().requires_grad_(true);
    auto ref = rms_norm_reference(x1, w1, 1e-6);
    auto out = rms_norm(x2, w2, 1e-6);
    CHECK(out.grad_fn()->name() != ref.grad_fn()->name());  // the fused kernel ran, not the fallback
    ref.backward(dy);
    out.backward(dy);
    CHECK(rel(out, ref) <= 1e-5);
    CHECK(rel(x2.grad(), x1.grad()) <= 1e-5);
    CHECK(rel(w2.grad(), w1.grad()) <= 1e-5);
  }
}

TEST_CASE("fused RoPE equals the ATen composition on a strided q/k/v view, in output and gradient") {
  torch::manual_seed(1);
  const int64_t B = 2, T = 9, H = 3, KV = 1, D = 16;
  auto qkv0 = torch::randn({B, T, (H + 2 * KV) * D});
  auto pos = torch::arange(T, torch::kFloat).unsqueeze(0).expand({B, T}) + torch::tensor({0.0f, 5.0f}).unsqueeze(1);
  auto inv = 1.0 / torch::pow(10000.0, torch::arange(0, D, 2, torch::kFloat) / D);
  auto freqs = pos.unsqueeze(-1) * inv;
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = emb.cos(), sin = emb.sin();
  auto dq = torch::randn({B, H, T, D}), dk = torch::randn({B, KV, T, D});
  torch::Tensor grads[2], outs[2];
  for (int fused = 0; fused < 2; ++fused) {
    auto qkv = qkv0.clone().requires_grad_(true);
    auto parts = qkv.split({H * D, KV * D, KV * D}, -1);
    auto q = parts[0].view({B, T, H, D}), k = parts[1].view({B, T, KV, D});
    CHECK(!q.is_contiguous());
    auto rq = fused ? rope(q, cos, sin) : rope_reference(q, cos, sin);
    auto rk = fused ? rope(k, cos, sin) : rope_reference(k, cos, sin);
    CHECK(rq.sizes() == torch::IntArrayRef{B, H, T, D});
    torch::autograd::backward({rq, rk}, {dq, dk});
    outs[fused] = torch::cat({rq.flatten(), rk.flatten()}).detach();
    grads[fused] = qkv.grad();
  }
  CHECK(rel(outs[1], outs[0]) <= 1e-5);
  CHECK(rel(grads[1], grads[0]) <= 1e-5);
  CHECK(grads[1].narrow(-1, (H + KV) * D, KV * D).abs().max().item<double>() == 0.0);  // v untouched
}
