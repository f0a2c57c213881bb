// Data parallelism on PyTorch's c10d: the one folder the trainer calls for it, through this
// header. A process started by torchrun (or any launcher that sets RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT) joins a group of `world` processes; each takes its share of every global
// batch, and c10d's Reducer (the bucketing, backward-overlapped all-reduce that PyTorch's
// DistributedDataParallel uses) sums the gradients while the backward pass runs. A single process
// has no Group at all: the trainer holds a null pointer and pays nothing.
//
//   Launch l = launch_from_environment();          // world 1 when no launcher set the variables
//   auto g = Group::join(l, options, device);       // only when l.world > 1
//   g->watch_gradients(trainable);                  // (re)registers the Reducer's hooks
//   g->expect_backward();                           // before the backward whose gradients sum
//   loss.backward();                                // every rank's .grad now holds the sum
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace keel::dist {

// Where this process stands, from the launcher's environment variables.
struct Launch {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 0;
  bool agent_store = false;  // torchrun's agent hosts the TCPStore (TORCHELASTIC_USE_AGENT_STORE)
  std::string store_prefix;  // keys of this attempt (torchrun's restart count)
};
// Throws UserError when the variables are set but inconsistent (a rank outside the world, ...).
Launch launch_from_environment();

struct Options {
  std::string backend = "auto";  // auto: gloo on the CPU (nccl on CUDA, where built)
  double timeout_s = 600;        // a collective that waits longer fails the run
};

class Group {
 public:
  static std::unique_ptr<Group> join(const Launch &launch, const Options &options, const torch::Device &device);
  ~Group();

  int rank() const;
  int world() const;
  int local_rank() const;  // this process on its machine: its CUDA device
  const std::string &backend() const;

  // In place, summed over the ranks (the values must be on the group's device or the CPU).
  void all_reduce_sum(torch::Tensor &t);
  void all_reduce_sum(double *values, size_t n);
  void all_reduce_sum(std::vector<double> &values) { all_reduce_sum(values.data(), values.size()); }
  // True on every rank when `flag` is true on any.
  bool any(bool flag);
  void barrier();
  // Rank 0 says whether it may go on ("" for yes, else why not); every rank gets its word.
  std::string decide_on_root(const std::string &root_word);

  // Gradients of these tensors (the ones that train) are summed over the ranks in the backward
  // passes announced by expect_backward. A new set replaces the old (frozen parameters change).
  void watch_gradients(const std::vector<torch::Tensor> &trainable);
  void expect_backward();
  // Bytes of gradient each step all-reduces, as last registered.
  int64_t gradient_bytes() const;

 private:
  struct Impl;
  explicit Group(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::dist
