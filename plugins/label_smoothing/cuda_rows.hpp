// cuda_rows.hpp — the CUDA path of label_smoothing (label_smoothing.cu), compiled only when CMake
// finds nvcc (KEEL_LS_CUDA). Same maths as cpu_rows.hpp, one thread block per row.
#pragma once
#include <cstdint>
#include <string>

#include "keel/dlpack.h"

namespace keel::ls {

// logits/grad on one CUDA device (fp32 or bf16, contiguous [n, V]); labels int64 [n] on that device
// or on the CPU, already checked to be -100 or in [0, V). Adds the loss of counted rows to *sum.
// Returns "" on success, else the reason (a CUDA error string).
std::string cuda_loss(const DLTensor &logits, const DLTensor &labels, DLTensor &grad, float eps, bool others,
                      double *sum);

// Copies a device int64 vector to the host (to check and count labels). "" on success.
std::string cuda_copy_labels(const DLTensor &labels, int64_t *host_out, int64_t n);

}  // namespace keel::ls
