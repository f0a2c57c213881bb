// The loss over the LM head, a chunk of tokens at a time, so [tokens, vocab] logits are never all
// held at once. Each chunk's logits go to the pipeline's loss plugin (or plain cross-entropy), whose
// gradient is pushed into the hidden states and the LM head straight away.
#pragma once
#include <algorithm>
#include <functional>

#include <torch/torch.h>

namespace keel {

// Computes the summed loss of rows `labels` != -100 and writes d(sum)/d(logits) into `grad`.
// logits [n, V] fp32 contiguous, labels [n] int64, grad [n, V] fp32. Returns {sum, counted}.
using ChunkLossFn = std::function<std::pair<double, int64_t>(const torch::Tensor &logits, const torch::Tensor &labels,
                                                             torch::Tensor &grad)>;

// Rows per chunk when none is configured: about 128 MB of fp32 logits (220 rows at a 151,936
// vocabulary), at least 64.
inline int64_t auto_chunk_rows(int64_t vocab) { return std::max<int64_t>(64, (int64_t{1} << 25) / vocab); }

// Plain cross-entropy through the same interface (what a pipeline without a loss plugin uses).
std::pair<double, int64_t> cross_entropy_chunk(const torch::Tensor &logits, const torch::Tensor &labels, torch::Tensor &grad);

struct ChunkedLossResult {
  double loss_sum = 0;  // summed over counted tokens
  int64_t count = 0;
};

// hidden [N, H] (part of the autograd graph), labels [N] (all counted: the caller drops -100 rows
// first), head [V, H] (the LM head weight, a leaf). Computes the loss chunk by chunk, scaling
// gradients by `scale` (1 / tokens of the global batch), back-propagates into `hidden` and
// accumulates into head.grad().
ChunkedLossResult chunked_loss_backward(const torch::Tensor &hidden, const torch::Tensor &labels,
                                        const torch::Tensor &head, double scale, int64_t chunk_rows,
                                        const ChunkLossFn &loss);

}  // namespace keel
