// cpu_rows.hpp — the label-smoothed cross-entropy of one row of logits and its gradient, on the CPU.
// Every loop is a plain map or a lane-split sum that GCC vectorises at -O3 with the baseline
// instruction set (build with -fno-trapping-math; see ../common/vexp.hpp).
//
// With p = softmax(x), target distribution q and m = max(x), S = sum(exp(x - m)):
//   loss = -sum_j q_j log p_j = logsumexp(x) - sum_j q_j x_j,     grad_j = p_j - q_j
//   uniform: q_j = eps/V + (1-eps)[j=y]   -> loss = lse - (1-eps) x_y - eps mean(x)
//   others:  q_j = eps/(V-1) for j != y, q_y = 1-eps
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

#include "../common/vexp.hpp"

namespace keel::ls {

// Maximum of a row through an order-preserving integer key (a float max reduction only vectorises
// with -ffinite-math-only, which -inf logits rule out). A NaN wins, so it reaches the loss.
inline float row_max(const float *x, int64_t V) {
  int32_t m = INT32_MIN;
  for (int64_t j = 0; j < V; ++j) {
    const int32_t i = std::bit_cast<int32_t>(x[j]);
    const int32_t k = i ^ ((i >> 31) & 0x7FFFFFFF);
    m = k > m ? k : m;
  }
  return std::bit_cast<float>(m ^ ((m >> 31) & 0x7FFFFFFF));
}

// Sum of a row in 16 float lanes per block of 2,048 (vectorised), blocks added in double: relative
// error ~1e-7 even at V = 151,936.
inline double row_sum(const float *x, int64_t V) {
  double total = 0;
  int64_t j = 0;
  for (; j + 2048 <= V; j += 2048) {
    float lane[16] = {};
    for (int64_t b = 0; b < 2048; b += 16)
      for (int l = 0; l < 16; ++l) lane[l] += x[j + b + l];
    double block = 0;
    for (float v : lane) block += v;
    total += block;
  }
  for (; j < V; ++j) total += x[j];
  return total;
}

// Loss of row x (label y in [0, V)) and its gradient into g (fp32, may not alias x).
inline double row_loss(const float *x, float *g, int64_t V, int64_t y, float eps, bool others) {
  const float m = row_max(x, V);
  for (int64_t j = 0; j < V; ++j) g[j] = keel::math::vexp(x[j] - m);
  const double S = row_sum(g, V), X = row_sum(x, V);
  const double c = others ? double(eps) / double(V - 1) : double(eps) / double(V);
  const float inv = static_cast<float>(1.0 / S), cf = static_cast<float>(c);
  for (int64_t j = 0; j < V; ++j) g[j] = g[j] * inv - cf;
  const double on_target = 1.0 - double(eps);
  g[y] = static_cast<float>(double(g[y]) + cf - (others ? on_target : on_target + c));
  const double lse = double(m) + std::log(S);
  if (c == 0) return lse - double(x[y]);  // eps = 0: plain cross-entropy (and no 0 * -inf)
  return lse - on_target * double(x[y]) - (others ? c * (X - double(x[y])) : c * X);
}

// bf16 <-> fp32: bf16 is the upper half of an fp32; rounding to nearest even, NaN kept a NaN.
inline void bf16_to_f32(const uint16_t *in, float *out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = std::bit_cast<float>(static_cast<uint32_t>(in[j]) << 16);
}
inline void f32_to_bf16(const float *in, uint16_t *out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t u = std::bit_cast<uint32_t>(in[j]);
    const uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    out[j] = static_cast<uint16_t>(in[j] != in[j] ? 0x7FC0u : r);
  }
}

}  // namespace keel::ls
