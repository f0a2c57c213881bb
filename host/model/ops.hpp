// RMSNorm and rotary position embedding, two elementwise blocks of a decoder layer. On CPU in fp32
// each is one hand-fused pass forward and one backward (an autograd function), where the ATen
// composition takes five to ten passes over the activations. Other devices and dtypes use the ATen
// composition, which is the reference the fused kernels are tested against
// (tests/unit/test_ops.cpp). SwiGLU stays ATen's: see docs/design.md.
#pragma once
#include <torch/torch.h>

namespace keel {

// As transformers' LlamaRMSNorm over the last dimension: normalise in fp32, cast back, scale.
torch::Tensor rms_norm(const torch::Tensor &x, const torch::Tensor &w, double eps);
torch::Tensor rms_norm_reference(const torch::Tensor &x, const torch::Tensor &w, double eps);

// Rotary embedding of x [B, T, heads, D] (last dimension contiguous; may be a view of a fused
// projection), returned as [B, heads, T, D]. cos and sin are [B, T, D] in the residual stream's
// dtype, both halves equal (transformers' cat(freqs, freqs)): x * cos + rotate_half(x) * sin.
torch::Tensor rope(const torch::Tensor &x, const torch::Tensor &cos, const torch::Tensor &sin);
torch::Tensor rope_reference(const torch::Tensor &x, const torch::Tensor &cos, const torch::Tensor &sin);

}  // namespace keel
