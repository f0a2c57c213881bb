// label_smoothing's CUDA path against its CPU path, on a GPU: the same random chunks (fp32 and bf16,
// both distribute modes, V up to 151,936, ignored labels) through the plugin with device tensors and
// with host tensors. Exit 77 (ctest: skipped) where no GPU is usable.
#include <cuda_runtime.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "plugin_loader.hpp"

namespace {

struct Chunk {
  int64_t n, V;
  std::vector<uint32_t> bits;  // fp32 bits, or bf16 in the low half (stored as uint16 below)
};

bool ok_cuda(cudaError_t e, const char *what) {
  if (e != cudaSuccess) std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
  return e == cudaSuccess;
}

// Runs one chunk on the CPU and on the GPU; returns false on a mismatch or failure.
bool check(const char *plugin, int64_t n, int64_t V, bool bf16, const char *dist, std::mt19937 &rng) {
  lstest::Instance ls(plugin, 0.1, dist);
  std::normal_distribution<float> normal(0.f, 3.f);
  const size_t esize = bf16 ? 2 : 4, bytes = size_t(n * V) * esize;
  std::vector<uint8_t> x(bytes), g_cpu(bytes), g_gpu(bytes);
  for (int64_t i = 0; i < n * V; ++i) {
    const float v = normal(rng);
    if (bf16) {
      const uint16_t b = uint16_t(std::bit_cast<uint32_t>(v) >> 16);
      std::memcpy(&x[i * 2], &b, 2);
    } else {
      std::memcpy(&x[i * 4], &v, 4);
    }
  }
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = rng() % 5 == 0 ? -100 : int64_t(rng() % V);
  const DLDataType dt = bf16 ? DLDataType{kDLBfloat, 16, 1} : DLDataType{kDLFloat, 32, 1};
  int64_t xs[2] = {n, V}, ys[1] = {n};

  DLTensor xv = lstest::view(x.data(), {kDLCPU, 0}, dt, xs, 2), gv = lstest::view(g_cpu.data(), {kDLCPU, 0}, dt, xs, 2);
  DLTensor yv = lstest::view(y.data(), {kDLCPU, 0}, {kDLInt, 64, 1}, ys, 1);
  double cpu_sum = 0, gpu_sum = 0;
  int64_t cpu_count = 0, gpu_count = 0;
  if (ls.loss(xv, yv, gv, cpu_sum, cpu_count) != KEEL_OK) return std::fprintf(stderr, "cpu: %s\n", ls.host.error.c_str()), false;

  void *dx = nullptr, *dg = nullptr, *dy = nullptr;
  if (!ok_cuda(cudaMalloc(&dx, bytes), "cudaMalloc") || !ok_cuda(cudaMalloc(&dg, bytes), "cudaMalloc") ||
      !ok_cuda(cudaMalloc(&dy, n * 8), "cudaMalloc") ||
      !ok_cuda(cudaMemcpy(dx, x.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy") ||
      !ok_cuda(cudaMemcpy(dy, y.data(), n * 8, cudaMemcpyHostToDevice), "cudaMemcpy"))
    return false;
  DLTensor dxv = lstest::view(dx, {kDLCUDA, 0}, dt, xs, 2), dgv = lstest::view(dg, {kDLCUDA, 0}, dt, xs, 2);
  DLTensor dyv = lstest::view(dy, {kDLCUDA, 0}, {kDLInt, 64, 1}, ys, 1);
  if (ls.loss(dxv, dyv, dgv, gpu_sum, gpu_count) != KEEL_OK) return std::fprintf(stderr, "gpu: %s\n", ls.host.error.c_str()), false;
  if (!ok_cuda(cudaMemcpy(g_gpu.data(), dg, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy")) return false;
  cudaFree(dx), cudaFree(dg), cudaFree(dy);

  auto at = [&](const std::vector<uint8_t> &b, int64_t i) {
    if (!bf16) return double(std::bit_cast<float>(*reinterpret_cast<const uint32_t *>(&b[i * 4])));
    uint16_t h;
    std::memcpy(&h, &b[i * 2], 2);
    return double(std::bit_cast<float>(uint32_t(h) << 16));
  };
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < n * V; ++i) {
    diff = std::max(diff, std::abs(at(g_gpu, i) - at(g_cpu, i)));
    scale = std::max(scale, std::abs(at(g_cpu, i)));
  }
  const double loss_rel = std::abs(gpu_sum - cpu_sum) / std::max(1e-30, std::abs(cpu_sum));
  const double grad_rel = diff / scale, grad_tol = bf16 ? 1.0 / 128 : 1e-5;
  const bool pass = gpu_count == cpu_count && loss_rel <= 1e-5 && grad_rel <= grad_tol;
  std::printf("%s n %5lld V %6lld %-4s %-7s loss rel %.2e grad rel %.2e\n", pass ? "ok  " : "FAIL", (long long)n,
              (long long)V, bf16 ? "bf16" : "fp32", dist, loss_rel, grad_rel);
  return pass;
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no usable CUDA device: skipped\n");
    return 77;
  }
  std::mt19937 rng(5);
  bool all = true;
  for (auto [n, V] : {std::pair<int64_t, int64_t>{64, 2}, {40, 1000}, {32, 32000}, {256, 151936}})
    for (bool bf16 : {false, true})
      for (const char *dist : {"uniform", "others"}) all = check(KEEL_LS_PLUGIN, n, V, bf16, dist, rng) && all;
  std::printf(all ? "PASS\n" : "FAIL\n");
  return all ? 0 : 1;
}
