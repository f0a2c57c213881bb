// label_smoothing: the training loss. Cross-entropy against a smoothed target: (1-eps) on the label
// and eps spread over the vocabulary ("uniform": eps/V on every token, PyTorch's
// cross_entropy(label_smoothing=eps) and transformers' LabelSmoother) or over the V-1 other tokens
// ("others"). Works on one chunk of logits at a time and writes the exact gradient of the chunk's
// loss sum, so the host never holds [N, V] log-probabilities. Labels of -100 are ignored (zero
// gradient, not counted); the host divides by the global batch's count.
//
// CPU: vectorised row loops (cpu_rows.hpp), rows split over a few threads when the chunk is large.
// CUDA: label_smoothing.cu when built with nvcc; otherwise a CUDA tensor is refused with a reason.
#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cpu_rows.hpp"
#include "keel/plugin.hpp"
#ifdef KEEL_LS_CUDA
#include "cuda_rows.hpp"
#endif

namespace {

bool is_f32(const DLDataType &t) { return t.code == kDLFloat && t.bits == 32 && t.lanes == 1; }
bool is_bf16(const DLDataType &t) { return t.code == kDLBfloat && t.bits == 16 && t.lanes == 1; }
bool same_device(const DLDevice &a, const DLDevice &b) {
  return a.device_type == b.device_type && a.device_id == b.device_id;
}
// Row-major and compact (strides NULL means compact, per DLPack).
bool compact(const DLTensor &t) {
  if (t.strides == nullptr) return true;
  int64_t expect = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    if (t.shape[d] != 1 && t.strides[d] != expect) return false;
    expect *= t.shape[d];
  }
  return true;
}
template <class T>
T *data_of(const DLTensor &t) {
  return reinterpret_cast<T *>(static_cast<char *>(t.data) + t.byte_offset);
}

class LabelSmoothing : public keel::Plugin {
 public:
  LabelSmoothing(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    eps_ = static_cast<float>(params.get_double("epsilon"));
    others_ = params.get_string("distribute") == "others";
  }

  double loss(const DLTensor &logits, const DLTensor &labels, DLTensor &grad, int64_t &count) override {
    check(logits, labels, grad);
    const int64_t n = logits.shape[0], V = logits.shape[1];
    if (others_ && V < 2) throw keel::Error("distribute = \"others\" needs a vocabulary of at least 2", KEEL_INVALID_ARGUMENT);
    // Labels to the CPU (when on a GPU) to check and count them.
    std::vector<int64_t> y(static_cast<size_t>(n));
    if (labels.device.device_type == kDLCPU) {
      std::memcpy(y.data(), data_of<const int64_t>(labels), y.size() * sizeof(int64_t));
    } else {
#ifdef KEEL_LS_CUDA
      if (std::string e = keel::ls::cuda_copy_labels(labels, y.data(), n); !e.empty()) throw keel::Error(e);
#endif
    }
    count = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (y[i] == -100) continue;
      if (y[i] < 0 || y[i] >= V)
        throw keel::Error("labels[" + std::to_string(i) + "] = " + std::to_string(y[i]) + " is outside [0, " +
                              std::to_string(V) + ") and not -100 (ignore)",
                          KEEL_INVALID_ARGUMENT);
      ++count;
    }
    double sum = 0;
    if (logits.device.device_type == kDLCUDA) {
#ifdef KEEL_LS_CUDA
      if (std::string e = keel::ls::cuda_loss(logits, labels, grad, eps_, others_, &sum); !e.empty())
        throw keel::Error("label_smoothing (CUDA): " + e);
#endif
      return sum;
    }
    return cpu_loss(logits, y, grad);
  }

 private:
  void check(const DLTensor &logits, const DLTensor &labels, const DLTensor &grad) const {
    if (logits.ndim != 2) throw keel::Error("logits must be [n, V], got " + std::to_string(logits.ndim) + " dims", KEEL_INVALID_ARGUMENT);
    if (!is_f32(logits.dtype) && !is_bf16(logits.dtype))
      throw keel::Error("logits must be fp32 or bf16", KEEL_INVALID_ARGUMENT);
    if (logits.shape[1] < 1) throw keel::Error("logits have an empty vocabulary", KEEL_INVALID_ARGUMENT);
    if (labels.ndim != 1 || labels.shape[0] != logits.shape[0] || labels.dtype.code != kDLInt ||
        labels.dtype.bits != 64)
      throw keel::Error("labels must be int64 [n] with n = logits' rows (" + std::to_string(logits.shape[0]) + ")",
                        KEEL_INVALID_ARGUMENT);
    if (grad.ndim != 2 || grad.shape[0] != logits.shape[0] || grad.shape[1] != logits.shape[1] ||
        grad.dtype.code != logits.dtype.code || grad.dtype.bits != logits.dtype.bits)
      throw keel::Error("grad_out must have logits' shape and dtype", KEEL_INVALID_ARGUMENT);
    if (!same_device(grad.device, logits.device)) throw keel::Error("grad_out must be on logits' device", KEEL_INVALID_ARGUMENT);
    if (!compact(logits) || !compact(grad) || !compact(labels))
      throw keel::Error("logits, labels and grad_out must be contiguous", KEEL_INVALID_ARGUMENT);
    const int32_t dev = logits.device.device_type;
    if (dev == kDLCUDA) {
#ifndef KEEL_LS_CUDA
      throw keel::Error("logits are on a CUDA device, but this label_smoothing was built without CUDA "
                        "(nvcc was not found at build time); rebuild with the CUDA toolkit installed",
                        KEEL_UNSUPPORTED);
#endif
      if (labels.device.device_type != kDLCPU && !same_device(labels.device, logits.device))
        throw keel::Error("labels must be on the CPU or on logits' device", KEEL_INVALID_ARGUMENT);
    } else if (dev != kDLCPU) {
      throw keel::Error("logits on device type " + std::to_string(dev) + ": only CPU and CUDA are supported",
                        KEEL_UNSUPPORTED);
    } else if (labels.device.device_type != kDLCPU) {
      throw keel::Error("labels must be on the CPU when logits are", KEEL_INVALID_ARGUMENT);
    }
  }

  // Rows split over threads when there is enough work to pay for starting them.
  double cpu_loss(const DLTensor &logits, const std::vector<int64_t> &y, DLTensor &grad) const {
    const int64_t n = logits.shape[0], V = logits.shape[1];
    const bool bf16 = is_bf16(logits.dtype);
    auto rows = [&](int64_t begin, int64_t end) {
      std::vector<float> xb, gb;
      if (bf16) xb.resize(V), gb.resize(V);
      double sum = 0;
      for (int64_t r = begin; r < end; ++r) {
        if (bf16) {
          uint16_t *g = data_of<uint16_t>(grad) + r * V;
          if (y[r] == -100) {
            std::memset(g, 0, V * sizeof(uint16_t));
            continue;
          }
          keel::ls::bf16_to_f32(data_of<const uint16_t>(logits) + r * V, xb.data(), V);
          sum += keel::ls::row_loss(xb.data(), gb.data(), V, y[r], eps_, others_);
          keel::ls::f32_to_bf16(gb.data(), g, V);
        } else {
          float *g = data_of<float>(grad) + r * V;
          if (y[r] == -100) {
            std::memset(g, 0, V * sizeof(float));
            continue;
          }
          sum += keel::ls::row_loss(data_of<const float>(logits) + r * V, g, V, y[r], eps_, others_);
        }
      }
      return sum;
    };
    const int64_t work = n * V;
    const int64_t hw = std::max<int64_t>(1, std::thread::hardware_concurrency());
    const int64_t threads = work < (int64_t(1) << 20) ? 1 : std::min<int64_t>({hw, 8, n});
    if (threads <= 1) return rows(0, n);
    std::vector<double> part(threads, 0.0);
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < threads; ++t)
      pool.emplace_back([&, t] { part[t] = rows(n * t / threads, n * (t + 1) / threads); });
    for (auto &th : pool) th.join();
    double sum = 0;
    for (double p : part) sum += p;  // fixed order: the same sum for the same thread count
    return sum;
  }

  float eps_ = 0.1f;
  bool others_ = false;
};

}  // namespace

KEEL_PLUGIN(LabelSmoothing, keel::Descriptor{
    .id = "org.keel.label_smoothing",
    .name = "label_smoothing",
    .kind = KEEL_KIND_LOSS,
    .version = "1.0.0",
    .description = "cross-entropy with label smoothing; exact gradient per chunk (CPU, CUDA; fp32, bf16)",
    .vendor = "keel",
    .hooks = KEEL_HOOK_LOSS,
    .params = {
        {"epsilon", KEEL_PARAM_FLOAT, "0.1", "probability mass taken from the label and spread out", 0, 1},
        {"distribute", KEEL_PARAM_STRING, "\"uniform\"",
         "uniform: eps/V on every token (PyTorch's form); others: eps/(V-1) on the non-label tokens", 0, 0,
         "uniform|others"},
    }})
