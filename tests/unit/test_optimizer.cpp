// The optimizer step against libtorch's own. FusedAdamW (ATen's fused kernel) against AdamW: same parameters after several steps
// with two groups (decay and none), a parameter without a gradient for a step, an LR change, and
// a save/load of the optimizer state between steps.
#include <doctest/doctest.h>

#include "temp_path.hpp"

#include <filesystem>

#include "train/optimizer.hpp"

using namespace keel;

namespace {

// Parameters a (weight decay) and b (none), each in its own group, as the trainer groups them.
template <class Optimizer>
std::unique_ptr<Optimizer> make(const torch::Tensor &a0, const torch::Tensor &b0, std::vector<torch::Tensor> &p) {
  p = {a0.clone().requires_grad_(true), b0.clone().requires_grad_(true)};
  auto opts = torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1);
  auto nd = opts;
  nd.weight_decay(0.0);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{p[0]}, std::make_unique<torch::optim::AdamWOptions>(opts));
  groups.emplace_back(std::vector<torch::Tensor>{p[1]}, std::make_unique<torch::optim::AdamWOptions>(nd));
  return std::make_unique<Optimizer>(groups, opts);
}

void set_lr(torch::optim::Optimizer &o, double lr) {
  for (auto &g : o.param_groups()) static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr);
}

}  // namespace

TEST_CASE("FusedAdamW follows libtorch's AdamW, skips gradient-less parameters, and round-trips its state") {
  torch::manual_seed(3);
  auto a0 = torch::randn({7, 5}), b0 = torch::randn({5});
  std::vector<torch::Tensor> grads_a, grads_b;
  for (int s = 0; s < 6; ++s) grads_a.push_back(torch::randn({7, 5})), grads_b.push_back(torch::randn({5}));
  std::vector<torch::Tensor> pf, pr;
  auto fused = make<FusedAdamW>(a0, b0, pf);
  auto ref = make<torch::optim::AdamW>(a0, b0, pr);
  const auto path = temp_path("fused-adamw.pt");
  for (int s = 0; s < 6; ++s) {
    for (auto *p : {&pf, &pr}) {
      (*p)[0].mutable_grad() = grads_a[s].clone();
      (*p)[1].mutable_grad() = s == 2 ? torch::Tensor() : grads_b[s].clone();  // no gradient at step 2
    }
    if (s == 4) set_lr(*fused, 3e-3), set_lr(*ref, 3e-3);
    fused->step();
    ref->step();
    if (s == 3) {  // save and load the fused optimizer's state mid-run, as a checkpoint resume does
      torch::save(*fused, path.string());
      torch::load(*fused, path.string());
    }
  }
  std::filesystem::remove(path);
  for (int i = 0; i < 2; ++i) {
    CHECK(!torch::equal(pf[i], i == 0 ? a0 : b0));
    CHECK(torch::allclose(pf[i], pr[i], 1e-6, 1e-7));
  }
}

TEST_CASE("clip_grad_norm equals torch::nn::utils::clip_grad_norm_, and leaves small gradients alone") {
  torch::manual_seed(4);
  for (double max_norm : {0.5, 1e3, 0.0}) {
    std::vector<torch::Tensor> ours, ref;
    for (auto s : std::vector<std::vector<int64_t>>{{4, 3}, {9}, {2, 2, 2}}) {
      auto p = torch::zeros(s, torch::requires_grad());
      p.mutable_grad() = torch::randn(s);
      ref.push_back(p);
      ours.push_back(p.grad().clone());
    }
    const auto before = torch::cat({ours[0].flatten(), ours[1].flatten(), ours[2].flatten()});
    const double n = clip_grad_norm(ours, max_norm);
    const double n_ref = torch::nn::utils::clip_grad_norm_(ref, max_norm > 0 ? max_norm : 1e30);
    CHECK(n == doctest::Approx(n_ref).epsilon(1e-6));
    for (size_t i = 0; i < ours.size(); ++i) CHECK(torch::allclose(ours[i], ref[i].grad(), 1e-6, 1e-7));
    const auto after = torch::cat({ours[0].flatten(), ours[1].flatten(), ours[2].flatten()});
    if (max_norm == 0.5) CHECK(after.norm().item<double>() == doctest::Approx(0.5).epsilon(1e-5));
    else CHECK(torch::equal(after, before));  // no clipping: gradients untouched
  }
}
