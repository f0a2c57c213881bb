// entropy: mean entropy (nats) of the model's next-token distribution over the generated positions
// of the probe generations, pooled over all positions. A collapsing model grows over-confident, so
// the entropy falls sharply. The first evaluation's value is the baseline (kept in the plugin state,
// so a resumed run keeps it); the alarm is a value below drop_ratio × baseline.
//
// source = "generated": the logits come from host->eval_logits(i): [n_tokens, V] fp32 on the CPU,
// the rows that produced sample i's generated tokens (descriptor flag KEEL_FLAG_WANTS_EVAL_LOGITS).
// source = "teacher_forced": the mean over the label positions of the last training batch, from
// host->train_entropy() (ABI 1.1), which computes each position's entropy in the host.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "../common/vexp.hpp"
#include "keel/plugin.hpp"

namespace {

// Entropy of softmax(x) over one row: H = log S - sum(e_j (x_j - m)) / S, with e_j = exp(x_j - m),
// m the row maximum and S = sum(e_j). A -inf logit has e_j = 0 and adds nothing.
double row_entropy(const float *x, int64_t V) {
  float m = x[0];
  for (int64_t j = 1; j < V; ++j) m = x[j] > m ? x[j] : m;
  if (!std::isfinite(m)) return m == -INFINITY ? NAN : m;  // all -inf, or NaN / +inf logits
  double s = 0, t = 0;
  for (int64_t j = 0; j < V; ++j) {
    const float d = x[j] - m;
    const float e = keel::math::vexp(d);
    s += e;
    t += e > 0.0f ? e * d : 0.0f;
  }
  return std::log(s) - t / s;
}

class Entropy : public keel::Plugin {
 public:
  Entropy(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    drop_ratio_ = params.get_double("drop_ratio");
    teacher_forced_ = params.get_string("source") == "teacher_forced";
  }

  void on_eval(const keel_eval_batch_t &batch) override {
    double sum = 0;
    int64_t rows = 0;
    if (teacher_forced_) {
      DLTensor t{};
      if (keel_status_t s = host.train_entropy(t); s == KEEL_UNSUPPORTED) {
        host.warn("source = \"teacher_forced\": no training batch here; nothing published");
        return;
      } else if (s != KEEL_OK) {
        throw keel::Error("train_entropy failed (status " + std::to_string(s) + ")", s);
      }
      if (t.device.device_type != kDLCPU || t.dtype.code != kDLFloat || t.dtype.bits != 32 || t.ndim != 1)
        throw keel::Error("train_entropy: expected fp32 [n] on the CPU");
      const float *e = reinterpret_cast<const float *>(static_cast<const char *>(t.data) + t.byte_offset);
      const int64_t stride = t.strides ? t.strides[0] : 1;
      for (int64_t r = 0; r < t.shape[0]; ++r) sum += e[r * stride];
      rows = t.shape[0];
      // Under data parallelism each process holds its share of the batch: the mean is over all.
      std::vector<double> totals{sum, static_cast<double>(rows)};
      host.all_reduce_sum(totals);
      sum = totals[0];
      rows = static_cast<int64_t>(totals[1]);
    }
    for (uint32_t i = 0; i < batch.n_samples && !teacher_forced_; ++i) {
      DLTensor t{};
      const keel_host_t *h = host.raw();
      if (keel_status_t s = h->eval_logits(h, i, &t); s != KEEL_OK)
        throw keel::Error("the host gives no logits for sample " + std::to_string(i) +
                              (s == KEEL_UNSUPPORTED ? " (evaluation logits are not available here)"
                               : s == KEEL_NOT_FOUND ? " (no such sample)"
                                                     : " (status " + std::to_string(s) + ")"),
                          s);
      check(t, i);
      const int64_t n = t.shape[0], V = t.shape[1];
      const float *base = reinterpret_cast<const float *>(static_cast<const char *>(t.data) + t.byte_offset);
      for (int64_t r = 0; r < n; ++r) sum += row_entropy(base + r * V, V);
      rows += n;
    }
    if (rows == 0) {
      host.warn("no generated positions to measure; nothing published");
      return;
    }
    const double value = sum / static_cast<double>(rows);
    if (!has_baseline_) {
      baseline_ = value;
      has_baseline_ = true;
    }
    const double floor = drop_ratio_ * baseline_;
    const bool alarm = value < floor;
    char reason[128] = "";
    if (alarm)
      std::snprintf(reason, sizeof reason, "entropy %.4g < drop_ratio %.3g x baseline %.4g", value, drop_ratio_,
                    baseline_);
    host.publish("entropy.baseline", baseline_);
    host.publish("entropy", value, alarm, reason);
  }

  keel::Bytes save_state() override {
    keel::Bytes b(1 + sizeof(double));
    b[0] = has_baseline_ ? 1 : 0;
    std::memcpy(b.data() + 1, &baseline_, sizeof(double));
    return b;
  }
  void load_state(const keel::Bytes &b) override {
    if (b.size() != 1 + sizeof(double) || b[0] > 1)
      throw keel::Error("entropy: saved state has " + std::to_string(b.size()) + " bytes, expected " +
                            std::to_string(1 + sizeof(double)),
                        KEEL_INVALID_ARGUMENT);
    has_baseline_ = b[0] == 1;
    std::memcpy(&baseline_, b.data() + 1, sizeof(double));
  }

 private:
  static void check(const DLTensor &t, uint32_t i) {
    const std::string what = "eval_logits(" + std::to_string(i) + "): ";
    if (t.device.device_type != kDLCPU) throw keel::Error(what + "expected CPU logits");
    if (t.dtype.code != kDLFloat || t.dtype.bits != 32 || t.dtype.lanes != 1)
      throw keel::Error(what + "expected fp32 logits");
    if (t.ndim != 2 || t.shape[1] < 1) throw keel::Error(what + "expected logits of shape [n_tokens, V]");
    if (t.strides && !(t.strides[1] == 1 && t.strides[0] == t.shape[1]))
      throw keel::Error(what + "expected contiguous logits");
  }

  double drop_ratio_ = 0.5;
  bool teacher_forced_ = false;
  double baseline_ = 0;
  bool has_baseline_ = false;
};

}  // namespace

KEEL_PLUGIN(Entropy, keel::Descriptor{
    .id = "org.keel.entropy",
    .name = "entropy",
    .kind = KEEL_KIND_METRIC,
    .version = "1.0.0",
    .description = "mean next-token entropy (nats) over generated (or training) positions; alarm on a sharp drop",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_EVAL | KEEL_HOOK_STATE,
    .flags = KEEL_FLAG_WANTS_EVAL_LOGITS,
    .params = {
        {"drop_ratio", KEEL_PARAM_FLOAT, "0.5", "alarm below drop_ratio x the first evaluation's entropy", 0, 1},
        {"source", KEEL_PARAM_STRING, "\"generated\"",
         "positions measured: the probes' generated tokens, or the last training batch's label positions", 0, 0,
         "generated|teacher_forced"},
    }})
