#include "train/chunked_loss.hpp"

namespace keel {

using torch::indexing::Slice;

std::pair<double, int64_t> cross_entropy_chunk(const torch::Tensor &logits, const torch::Tensor &labels,
                                               torch::Tensor &grad) {
  // Log-probabilities straight into grad, the label terms read from them, then exp in place:
  // d(sum of NLL)/d(logits) = softmax - one_hot(label), in two passes and no temporaries.
  at::_log_softmax_out(grad, logits, 1, false);
  const double nll = -grad.gather(1, labels.unsqueeze(1)).sum().item<double>();
  grad.exp_();
  grad.scatter_add_(1, labels.unsqueeze(1), torch::full({labels.size(0), 1}, -1.0f, grad.options()));
  return {nll, labels.size(0)};
}

ChunkedLossResult chunked_loss_backward(const torch::Tensor &hidden, const torch::Tensor &labels,
                                        const torch::Tensor &head, double scale, int64_t chunk_rows,
                                        const ChunkLossFn &loss) {
  ChunkedLossResult r;
  const int64_t N = hidden.size(0);
  if (N == 0) return r;
  // Detach the hidden states: the chunks compute their own gradients, then one backward call
  // carries them into the transformer.
  auto h = hidden.detach();
  auto grad_h = torch::zeros_like(h, torch::kFloat);
  // A frozen head (LoRA, partial fine-tuning) takes no gradient: its [V, d] product is skipped.
  torch::Tensor grad_head;
  if (head.requires_grad()) grad_head = torch::zeros(head.sizes(), head.options().dtype(torch::kFloat));
  auto w = head.detach().to(torch::kFloat);
  // One logits and one gradient buffer for all chunks: a fresh 100 MB allocation per chunk would
  // fault its pages in again every time.
  const int64_t rows = std::min(N, chunk_rows);
  auto logits_buf = torch::empty({rows, w.size(0)}, w.options());
  auto grad_buf = torch::empty({rows, w.size(0)}, w.options());
  {
    torch::NoGradGuard no_grad;
    for (int64_t s = 0; s < N; s += chunk_rows) {
      const int64_t e = std::min(N, s + chunk_rows);
      auto hc = h.index({Slice(s, e)}).to(torch::kFloat);
      auto logits = logits_buf.index({Slice(0, e - s)});
      at::mm_out(logits, hc, w.t());
      auto g = grad_buf.index({Slice(0, e - s)});
      auto [sum, count] = loss(logits, labels.index({Slice(s, e)}).contiguous(), g);
      r.loss_sum += sum;
      r.count += count;
      // The 1/tokens scale goes on the two small products, not on the [rows, V] gradient.
      auto gh = grad_h.index({Slice(s, e)});
      at::mm_out(gh, g, w);
      gh.mul_(scale);
      if (grad_head.defined()) grad_head.addmm_(g.t(), hc, /*beta=*/1.0, /*alpha=*/scale);
    }
  }
  // One backward call for both: the head's gradient reaches it through autograd, as every other
  // parameter's does, so gradient hooks (data parallelism's all-reduce) see each parameter once.
  std::vector<torch::Tensor> roots, grads;
  if (hidden.requires_grad()) {
    roots.push_back(hidden);
    grads.push_back(grad_h.to(hidden.scalar_type()));
  }
  if (grad_head.defined()) {
    roots.push_back(head);
    grads.push_back(grad_head.to(head.scalar_type()));
  }
  if (!roots.empty()) torch::autograd::backward(roots, grads);
  return r;
}

}  // namespace keel
