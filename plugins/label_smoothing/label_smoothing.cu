// The CUDA path of label_smoothing: one block per row of logits. Three sweeps over the row (max;
// sum of exp and of logits; gradient), reductions in double across the block. Runs on the legacy
// default stream, which orders it after the host's work on blocking streams.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "cuda_rows.hpp"

namespace keel::ls {
namespace {

constexpr int kThreads = 512;

__device__ float load(const float *p, int64_t i) { return p[i]; }
__device__ float load(const __nv_bfloat16 *p, int64_t i) { return __bfloat162float(p[i]); }
__device__ void store(float *p, int64_t i, float v) { p[i] = v; }
__device__ void store(__nv_bfloat16 *p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// Block-wide reduction of one value per thread (`identity` fills the unused lanes of the last
// step); every thread gets the result.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ T warp_out[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_out[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? warp_out[lane] : identity;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
    if (lane == 0) warp_out[0] = v;
  }
  __syncthreads();
  v = warp_out[0];
  __syncthreads();  // warp_out is reused by the next reduction
  return v;
}

template <class T>
__global__ void rows_kernel(const T *x, const int64_t *labels, T *g, int64_t V, float eps, bool others,
                            double *row_loss) {
  const int64_t row = blockIdx.x;
  const T *xr = x + row * V;
  T *gr = g + row * V;
  const int64_t y = labels[row];
  if (y == -100) {  // ignored: zero gradient, no loss
    for (int64_t j = threadIdx.x; j < V; j += kThreads) store(gr, j, 0.0f);
    if (threadIdx.x == 0) row_loss[row] = 0.0;
    return;
  }
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += kThreads) {
    const float v = load(xr, j);
    m = (v > m || v != v) ? v : m;  // NaN wins, as on the CPU
  }
  m = block_reduce(m, [](float a, float b) { return (b > a || b != b) ? b : a; }, -INFINITY);
  double s = 0, sx = 0;
  for (int64_t j = threadIdx.x; j < V; j += kThreads) {
    const float v = load(xr, j);
    s += expf(v - m);
    sx += v;
  }
  const auto add = [](double a, double b) { return a + b; };
  const double S = block_reduce(s, add, 0.0), X = block_reduce(sx, add, 0.0);
  const double c = others ? double(eps) / double(V - 1) : double(eps) / double(V);
  const double on_target = 1.0 - double(eps);
  const float inv = float(1.0 / S), cf = float(c), ty = float(others ? on_target : on_target + c);
  for (int64_t j = threadIdx.x; j < V; j += kThreads)
    store(gr, j, expf(load(xr, j) - m) * inv - (j == y ? ty : cf));
  if (threadIdx.x == 0) {
    const double xy = load(xr, y);
    const double smooth = c == 0 ? 0.0 : (others ? c * (X - xy) : c * X);  // eps = 0: no 0 * -inf
    row_loss[row] = double(m) + log(S) - on_target * xy - smooth;
  }
}

std::string err(const char *what, cudaError_t e) { return std::string(what) + ": " + cudaGetErrorString(e); }

// Switches to a device for the life of the object.
struct DeviceGuard {
  int prev = -1;
  cudaError_t status;
  explicit DeviceGuard(int dev) {
    cudaGetDevice(&prev);
    status = cudaSetDevice(dev);
  }
  ~DeviceGuard() {
    if (prev >= 0) cudaSetDevice(prev);
  }
};

}  // namespace

std::string cuda_copy_labels(const DLTensor &labels, int64_t *host_out, int64_t n) {
  DeviceGuard guard(labels.device.device_id);
  if (guard.status != cudaSuccess) return err("cudaSetDevice", guard.status);
  const auto *src = reinterpret_cast<const char *>(labels.data) + labels.byte_offset;
  if (cudaError_t e = cudaMemcpy(host_out, src, n * sizeof(int64_t), cudaMemcpyDeviceToHost); e != cudaSuccess)
    return err("copying labels from the GPU", e);
  return "";
}

std::string cuda_loss(const DLTensor &logits, const DLTensor &labels, DLTensor &grad, float eps, bool others,
                      double *sum) {
  const int64_t n = logits.shape[0], V = logits.shape[1];
  if (n == 0) return "";
  DeviceGuard guard(logits.device.device_id);
  if (guard.status != cudaSuccess) return err("cudaSetDevice", guard.status);
  // Labels on the CPU are copied over; per-row losses come back to be summed in double here.
  int64_t *d_labels = nullptr;
  double *d_loss = nullptr;
  std::string out;
  const int64_t *labels_ptr =
      reinterpret_cast<const int64_t *>(reinterpret_cast<const char *>(labels.data) + labels.byte_offset);
  if (cudaError_t e = cudaMalloc(&d_loss, n * sizeof(double)); e != cudaSuccess) return err("cudaMalloc", e);
  if (labels.device.device_type == kDLCPU) {
    cudaError_t e = cudaMalloc(&d_labels, n * sizeof(int64_t));
    if (e == cudaSuccess) e = cudaMemcpy(d_labels, labels_ptr, n * sizeof(int64_t), cudaMemcpyHostToDevice);
    if (e != cudaSuccess) out = err("copying labels to the GPU", e);
    labels_ptr = d_labels;
  }
  if (out.empty()) {
    const auto *x = reinterpret_cast<const char *>(logits.data) + logits.byte_offset;
    auto *g = reinterpret_cast<char *>(grad.data) + grad.byte_offset;
    if (logits.dtype.bits == 32)
      rows_kernel<<<static_cast<unsigned>(n), kThreads>>>(reinterpret_cast<const float *>(x), labels_ptr,
                                                           reinterpret_cast<float *>(g), V, eps, others, d_loss);
    else
      rows_kernel<<<static_cast<unsigned>(n), kThreads>>>(reinterpret_cast<const __nv_bfloat16 *>(x), labels_ptr,
                                                           reinterpret_cast<__nv_bfloat16 *>(g), V, eps, others,
                                                           d_loss);
    std::vector<double> loss(n);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess)
      out = err("launching the label smoothing kernel", e);
    else if (cudaError_t e2 = cudaMemcpy(loss.data(), d_loss, n * sizeof(double), cudaMemcpyDeviceToHost);
             e2 != cudaSuccess)
      out = err("running the label smoothing kernel", e2);
    else
      for (double l : loss) *sum += l;
  }
  cudaFree(d_loss);
  if (d_labels) cudaFree(d_labels);
  return out;
}

}  // namespace keel::ls
