// label_smoothing.so, loaded through the ABI, against libtorch: cross_entropy(label_smoothing = eps,
// reduction = sum, ignore_index = -100) for "uniform", and the same loss written out by hand in torch
// for "others"; loss and gradient within 1e-5 relative (fp32), bf16 within its rounding. Only torch,
// doctest, dlfcn and keel_plugin.h are included (torch's fmt must not meet keel's).
#include <torch/torch.h>
#undef CHECK  // c10's glog-style CHECK; doctest's is meant below
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>

#include "plugin_loader.hpp"

namespace F = torch::nn::functional;

namespace {

const char *kPlugin = KEEL_LS_PLUGIN;
double worst_loss = 0, worst_grad = 0;

// Loss sum and d(sum)/d(logits) in double, by torch.
std::pair<double, torch::Tensor> reference(const torch::Tensor &logits, const torch::Tensor &labels, double eps,
                                           bool others) {
  torch::Tensor x = logits.to(torch::kFloat64).detach().requires_grad_(true);
  torch::Tensor loss;
  if (!others) {
    loss = F::cross_entropy(x, labels,
                            F::CrossEntropyFuncOptions().label_smoothing(eps).reduction(torch::kSum).ignore_index(-100));
  } else {
    const int64_t V = x.size(1);
    torch::Tensor keep = labels.ne(-100);
    torch::Tensor q = torch::full_like(x, eps / double(V - 1));
    q.scatter_(1, labels.clamp_min(0).unsqueeze(1), 1.0 - eps);
    loss = (-(q * torch::log_softmax(x, 1)).sum(1) * keep.to(torch::kFloat64)).sum();
  }
  loss.backward();
  return {loss.item<double>(), x.grad()};
}

struct Result {
  keel_status_t status;
  double sum = 0;
  int64_t count = 0;
  torch::Tensor grad;
  std::string error;
};

Result run(lstest::Instance &ls, const torch::Tensor &logits, const torch::Tensor &labels) {
  torch::Tensor x = logits.contiguous(), y = labels.contiguous();
  torch::Tensor g = torch::full_like(x, 7.0);  // garbage: every element must be written
  int64_t xs[2] = {x.size(0), x.size(1)}, ys[1] = {y.size(0)};
  const DLDataType dt = x.scalar_type() == torch::kBFloat16 ? DLDataType{kDLBfloat, 16, 1} : DLDataType{kDLFloat, 32, 1};
  DLTensor xv = lstest::view(x.data_ptr(), {kDLCPU, 0}, dt, xs, 2);
  DLTensor yv = lstest::view(y.data_ptr(), {kDLCPU, 0}, {kDLInt, 64, 1}, ys, 1);
  DLTensor gv = lstest::view(g.data_ptr(), {kDLCPU, 0}, dt, xs, 2);
  Result r;
  r.status = ls.loss(xv, yv, gv, r.sum, r.count);
  r.grad = g;
  r.error = ls.host.error;
  return r;
}

// Random logits (scale 3) and labels with about a fifth ignored.
std::pair<torch::Tensor, torch::Tensor> random_chunk(int64_t n, int64_t V) {
  torch::Tensor x = torch::randn({n, V}) * 3.0;
  torch::Tensor y = torch::randint(0, V, {n}, torch::kLong);
  y.masked_fill_(torch::rand({n}) < 0.2, -100);
  y[0] = V - 1;  // the last token as a label at least once
  return {x, y};
}

void compare(double eps, const std::string &dist, int64_t n, int64_t V, bool bf16) {
  CAPTURE(eps);
  CAPTURE(dist);
  CAPTURE(n);
  CAPTURE(V);
  CAPTURE(bf16);
  lstest::Instance ls(kPlugin, eps, dist);
  auto [x, y] = random_chunk(n, V);
  if (bf16) x = x.to(torch::kBFloat16);
  Result r = run(ls, x, y);
  REQUIRE_MESSAGE(r.status == KEEL_OK, r.error);
  auto [want, want_grad] = reference(x, y, eps, dist == "others");
  CHECK(r.count == y.ne(-100).sum().item<int64_t>());
  const double loss_rel = std::abs(r.sum - want) / std::max(1e-30, std::abs(want));
  const double grad_rel = (r.grad.to(torch::kFloat64) - want_grad).abs().max().item<double>() /
                          want_grad.abs().max().item<double>();
  CHECK(loss_rel <= 1e-5);
  // fp32: 1e-5 relative to the gradient's scale; bf16 output: within its rounding (8 bits).
  CHECK(grad_rel <= (bf16 ? 1.0 / 256 : 1e-5));
  // Rows of ignored labels get exact zeros.
  CHECK(r.grad.index({y.eq(-100)}).abs().sum().item<double>() == 0.0);
  worst_loss = std::max(worst_loss, loss_rel);
  if (!bf16) worst_grad = std::max(worst_grad, grad_rel);
}

}  // namespace

TEST_CASE("uniform (PyTorch's label_smoothing) and others, fp32, V from 2 to 151,936") {
  torch::manual_seed(11);
  const std::pair<int64_t, int64_t> shapes[] = {{64, 2}, {50, 3}, {33, 17}, {40, 1000}, {40, 32000}, {24, 151936}};
  for (auto [n, V] : shapes)
    for (double eps : {0.1, 0.0, 0.3})
      for (const char *dist : {"uniform", "others"}) compare(eps, dist, n, V, false);
  std::printf("label_smoothing vs libtorch (fp32): max relative error loss %.3e, gradient %.3e\n", worst_loss,
              worst_grad);
}

TEST_CASE("bf16 logits and gradient") {
  torch::manual_seed(12);
  for (auto [n, V] : {std::pair<int64_t, int64_t>{16, 5}, {20, 4096}, {8, 151936}})
    for (const char *dist : {"uniform", "others"}) compare(0.1, dist, n, V, true);
}

TEST_CASE("a -inf logit gets probability 0, and the loss follows torch") {
  lstest::Instance ls(kPlugin, 0.0, "uniform");  // no smoothing: the -inf term stays out of the loss
  torch::Tensor x = torch::randn({4, 50});
  x.index_put_({torch::indexing::Slice(), 7}, -INFINITY);
  torch::Tensor y = torch::tensor({1, 2, -100, 49}, torch::kLong);
  Result r = run(ls, x, y);
  REQUIRE(r.status == KEEL_OK);
  auto [want, want_grad] = reference(x, y, 0.0, false);
  CHECK(r.sum == doctest::Approx(want).epsilon(1e-6));
  CHECK((r.grad.to(torch::kFloat64) - want_grad).abs().max().item<double>() < 1e-6);
}

TEST_CASE("bad input is refused with a reason") {
  lstest::Instance ls(kPlugin, 0.1, "uniform");
  torch::Tensor x = torch::randn({3, 10});
  Result r = run(ls, x, torch::tensor({1, 10, 2}, torch::kLong));
  CHECK(r.status == KEEL_INVALID_ARGUMENT);
  CHECK(r.error == "labels[1] = 10 is outside [0, 10) and not -100 (ignore)");
  r = run(ls, x, torch::tensor({1, 2}, torch::kLong));
  CHECK(r.error.find("labels must be int64 [n] with n = logits' rows (3)") != std::string::npos);
  lstest::Instance others(kPlugin, 0.1, "others");
  r = run(others, torch::randn({2, 1}), torch::tensor({0, 0}, torch::kLong));
  CHECK(r.error == "distribute = \"others\" needs a vocabulary of at least 2");
  // A CUDA tensor without a usable GPU: a clear error, never a crash. (Only where no GPU is.)
  if (!std::filesystem::exists("/dev/nvidia0")) {
    float dummy[4];
    int64_t xs[2] = {2, 2}, ys[1] = {2};
    int64_t labels[2] = {0, 1};
    DLTensor xv = lstest::view(dummy, {kDLCUDA, 0}, {kDLFloat, 32, 1}, xs, 2);
    DLTensor gv = xv;
    DLTensor yv = lstest::view(labels, {kDLCPU, 0}, {kDLInt, 64, 1}, ys, 1);
    double sum = 0;
    int64_t count = 0;
    CHECK(ls.loss(xv, yv, gv, sum, count) != KEEL_OK);
    std::printf("CUDA tensor without a GPU: %s\n", ls.host.error.c_str());
    CHECK(ls.host.error.find("CUDA") != std::string::npos);
  }
}
