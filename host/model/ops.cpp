#include "model/ops.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace keel {

namespace {

bool cpu_fp32(const torch::Tensor &t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat; }

// Sum of a[i] * b[i] in 16 independent lanes, so the compiler vectorises it without -ffast-math.
float dot(const float *a, const float *b, int64_t n) {
  float lane[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; ++k) lane[k] += a[i + k] * b[i + k];
  float s = 0;
  for (float v : lane) s += v;
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Rows per parallel task: enough work (about 32k floats) to be worth a thread.
int64_t grain(int64_t row) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, row)); }

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// y = w * x * r with r = 1 / sqrt(mean(x^2) + eps) per row. Saves x, w and r.
struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static torch::Tensor forward(AutogradContext *ctx, const torch::Tensor &x, const torch::Tensor &w, double eps) {
    auto xc = x.contiguous(), wc = w.contiguous();
    const int64_t H = xc.size(-1), N = xc.numel() / H;
    auto y = torch::empty_like(xc);
    auto r = torch::empty({N}, xc.options());
    const float *px = xc.data_ptr<float>(), *pw = wc.data_ptr<float>();
    float *py = y.data_ptr<float>(), *pr = r.data_ptr<float>();
    const float e = static_cast<float>(eps), inv_h = 1.0f / static_cast<float>(H);
    at::parallel_for(0, N, grain(H), [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const float *xi = px + n * H;
        float *yi = py + n * H;
        const float rr = 1.0f / std::sqrt(dot(xi, xi, H) * inv_h + e);
        pr[n] = rr;
        for (int64_t i = 0; i < H; ++i) yi[i] = pw[i] * (xi[i] * rr);
      }
    });
    ctx->save_for_backward({xc, wc, r});
    return y;
  }

  // With g = dy * w: dx = r * g - x * r^3 * mean(g * x); dw = sum over rows of dy * x * r.
  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &r = saved[2];
    auto dy = grads[0].contiguous();
    const int64_t H = x.size(-1), N = x.numel() / H;
    auto dx = torch::empty_like(x);
    // dw is a sum over rows: each task adds into its own row of partial sums, summed at the end.
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(N, 4 * at::get_num_threads()));
    auto dw_parts = torch::zeros({parts, H}, x.options());
    const float *px = x.data_ptr<float>(), *pw = w.data_ptr<float>(), *pr = r.data_ptr<float>();
    const float *pdy = dy.data_ptr<float>();
    float *pdx = dx.data_ptr<float>(), *pdw = dw_parts.data_ptr<float>();
    const float inv_h = 1.0f / static_cast<float>(H);
    at::parallel_for(0, parts, 1, [&](int64_t pb, int64_t pe) {
      std::vector<float> g(static_cast<size_t>(H));
      for (int64_t p = pb; p < pe; ++p) {
        float *dw = pdw + p * H;
        for (int64_t n = N * p / parts; n < N * (p + 1) / parts; ++n) {
          const float *xi = px + n * H, *dyi = pdy + n * H;
          float *dxi = pdx + n * H;
          const float rr = pr[n];
          for (int64_t i = 0; i < H; ++i) {
            g[static_cast<size_t>(i)] = dyi[i] * pw[i];
            dw[i] += dyi[i] * (xi[i] * rr);
          }
          const float k = dot(g.data(), xi, H) * inv_h * rr * rr * rr;
          for (int64_t i = 0; i < H; ++i) dxi[i] = rr * g[static_cast<size_t>(i)] - xi[i] * k;
        }
      }
    });
    return {dx, dw_parts.sum(0), torch::Tensor()};
  }
};

// out = in * cos + sign * rotate_half(in) * sin for every (b, t, h) vector of D floats, each side
// addressed through its own (b, t, h) strides. sign +1 is RoPE; sign -1 is its transpose, i.e. its
// backward (the two halves of cos and sin are equal, so rotating by -sin undoes the rotation).
using Strides = std::array<int64_t, 3>;
void rotate(const float *in, Strides si, float *out, Strides so, const float *cos, const float *sin, int64_t B,
            int64_t T, int64_t H, int64_t D, float sign) {
  const int64_t half = D / 2;
  at::parallel_for(0, B * T, grain(H * D), [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      const int64_t b = bt / T, t = bt % T;
      const float *c = cos + bt * D, *s = sin + bt * D;
      for (int64_t h = 0; h < H; ++h) {
        const float *x = in + b * si[0] + t * si[1] + h * si[2];
        float *o = out + b * so[0] + t * so[1] + h * so[2];
        for (int64_t i = 0; i < half; ++i) o[i] = x[i] * c[i] - x[i + half] * (sign * s[i]);
        for (int64_t i = half; i < D; ++i) o[i] = x[i] * c[i] + x[i - half] * (sign * s[i]);
      }
    }
  });
}

// x [B, T, H, D] (token-major, last dimension contiguous) -> RoPE(x) [B, H, T, D] (head-major).
struct RopeFn : public torch::autograd::Function<RopeFn> {
  static torch::Tensor forward(AutogradContext *ctx, const torch::Tensor &x, const torch::Tensor &cos,
                               const torch::Tensor &sin) {
    auto xs = x.stride(3) == 1 ? x : x.contiguous();
    auto c = cos.contiguous(), s = sin.contiguous();
    const int64_t B = xs.size(0), T = xs.size(1), H = xs.size(2), D = xs.size(3);
    auto out = torch::empty({B, H, T, D}, xs.options());
    rotate(xs.data_ptr<float>(), {xs.stride(0), xs.stride(1), xs.stride(2)}, out.data_ptr<float>(),
           {H * T * D, D, T * D}, c.data_ptr<float>(), s.data_ptr<float>(), B, T, H, D, 1.0f);
    ctx->save_for_backward({c, s});
    return out;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto dout = grads[0].contiguous();
    const int64_t B = dout.size(0), H = dout.size(1), T = dout.size(2), D = dout.size(3);
    auto dx = torch::empty({B, T, H, D}, dout.options());
    rotate(dout.data_ptr<float>(), {H * T * D, D, T * D}, dx.data_ptr<float>(), {T * H * D, H * D, D},
           saved[0].data_ptr<float>(), saved[1].data_ptr<float>(), B, T, H, D, -1.0f);
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor rms_norm_reference(const torch::Tensor &x, const torch::Tensor &w, double eps) {
  auto h = x.to(torch::kFloat);
  h = h * torch::rsqrt(h.pow(2).mean(-1, true) + eps);
  return w * h.to(x.scalar_type());
}

torch::Tensor rms_norm(const torch::Tensor &x, const torch::Tensor &w, double eps) {
  if (cpu_fp32(x) && cpu_fp32(w)) return RmsNormFn::apply(x, w, eps);
  return rms_norm_reference(x, w, eps);
}

torch::Tensor rope_reference(const torch::Tensor &x, const torch::Tensor &cos, const torch::Tensor &sin) {
  auto t = x.transpose(1, 2);
  auto halves = t.chunk(2, -1);
  return t * cos.unsqueeze(1) + torch::cat({-halves[1], halves[0]}, -1) * sin.unsqueeze(1);
}

torch::Tensor rope(const torch::Tensor &x, const torch::Tensor &cos, const torch::Tensor &sin) {
  if (cpu_fp32(x) && cpu_fp32(cos) && cpu_fp32(sin) && x.size(3) % 2 == 0) return RopeFn::apply(x, cos, sin);
  return rope_reference(x, cos, sin);
}

}  // namespace keel
