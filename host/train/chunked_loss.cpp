#include "train/chunked_loss.hpp"

namespace keel {

using torch::indexing::Slice;

std::pair<double, int64_t> cross_entropy_chunk(const torch::Tensor &logits, const torch::Tensor &labels,
                                               torch::Tensor &grad) {
  auto logp = logits.log_softmax(-1);
  auto nll = -logp.gather(1, labels.unsqueeze(1)).squeeze(1);
  // d(sum of NLL)/d(logits) = softmax - one_hot(label)
  grad.copy_(logp.exp());
  grad.scatter_add_(1, labels.unsqueeze(1), torch::full({labels.size(0), 1}, -1.0f, grad.options()));
  return {nll.sum().item<double>(), labels.size(0)};
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
  auto grad_head = torch::zeros(head.sizes(), head.options().dtype(torch::kFloat));
  auto w = head.detach().to(torch::kFloat);
  torch::Tensor grad_buf;
  {
    torch::NoGradGuard no_grad;
    for (int64_t s = 0; s < N; s += chunk_rows) {
      const int64_t e = std::min(N, s + chunk_rows);
      auto hc = h.index({Slice(s, e)}).to(torch::kFloat);
      auto logits = torch::matmul(hc, w.t()).contiguous();
      if (!grad_buf.defined() || grad_buf.size(0) < e - s) grad_buf = torch::empty_like(logits);
      auto g = grad_buf.index({Slice(0, e - s)});
      auto [sum, count] = loss(logits, labels.index({Slice(s, e)}).contiguous(), g);
      r.loss_sum += sum;
      r.count += count;
      g.mul_(scale);
      grad_h.index({Slice(s, e)}).copy_(torch::matmul(g, w));
      grad_head.addmm_(g.t(), hc);
    }
  }
  hidden.backward(grad_h.to(hidden.scalar_type()));
  auto &hg = const_cast<torch::Tensor &>(head).mutable_grad();
  if (hg.defined()) hg.add_(grad_head.to(head.scalar_type()));
  else hg = grad_head.to(head.scalar_type());
  return r;
}

}  // namespace keel
