// c10d behind dist/group.hpp: a TCPStore for the rendezvous, a Gloo process group, and c10d's
// Reducer for the gradients. Only this unit includes c10d's headers.
#define USE_C10D_GLOO 1  // ProcessGroupGloo.hpp declares its class only under this
#include "dist/group.hpp"

#include <chrono>
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#include "common/errors.hpp"

namespace keel::dist {
namespace {

std::optional<std::string> env(const char *name) {
  const char *v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

int env_int(const char *name, int fallback) {
  auto v = env(name);
  if (!v) return fallback;
  char *end = nullptr;
  const long n = std::strtol(v->c_str(), &end, 10);
  if (*end || n < 0 || n > 1 << 20) throw UserError(fmt::format("environment: {}={} is not a rank, size or port", name, *v));
  return static_cast<int>(n);
}

// The Reducer's all-reduce, summing (DDP's default hook divides by the world size; keel scales
// each rank's loss by 1 / the global batch's tokens, so the sum is the single-process gradient).
class SumHook : public c10d::CppCommHookInterface<c10::intrusive_ptr<c10d::ProcessGroup>> {
 public:
  using CppCommHookInterface::CppCommHookInterface;
  c10::intrusive_ptr<c10::ivalue::Future> runHook(c10d::GradBucket &bucket) override {
    std::vector<at::Tensor> t{bucket.getBufferRef()};
    return state_->allreduce(t)->getFuture();
  }
};

}  // namespace

Launch launch_from_environment() {
  Launch l;
  l.world = env_int("WORLD_SIZE", 1);
  if (l.world <= 1) return Launch{};
  l.rank = env_int("RANK", -1);
  l.local_rank = env_int("LOCAL_RANK", 0);
  if (l.rank < 0 || l.rank >= l.world)
    throw UserError(fmt::format("environment: WORLD_SIZE={} needs RANK in 0..{} (RANK={})", l.world, l.world - 1,
                                env("RANK").value_or("unset")));
  auto addr = env("MASTER_ADDR");
  if (!addr || !env("MASTER_PORT"))
    throw UserError(fmt::format("environment: WORLD_SIZE={} needs MASTER_ADDR and MASTER_PORT (the rank 0 host and a free "
                                "port), as torchrun sets them",
                                l.world));
  l.master_addr = *addr;
  l.master_port = env_int("MASTER_PORT", 0);
  if (l.master_port == 0 || l.master_port > 65535)
    throw UserError(fmt::format("environment: MASTER_PORT={} is not a port", *env("MASTER_PORT")));
  l.agent_store = env("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  l.store_prefix = "keel/" + env("TORCHELASTIC_RESTART_COUNT").value_or("0") + "/";
  return l;
}

struct Group::Impl {
  Launch launch;
  std::string backend;
  std::chrono::milliseconds timeout{};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::unique_ptr<c10d::Reducer> reducer;
  std::vector<at::TensorImpl *> watched;  // what the reducer was built for
  int64_t grad_bytes = 0;
  int decisions = 0;
};

Group::Group(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Group::~Group() = default;

std::unique_ptr<Group> Group::join(const Launch &launch, const Options &options, const torch::Device &device) {
  auto impl = std::make_unique<Impl>();
  impl->launch = launch;
  impl->timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000));
  std::string backend = options.backend == "auto" ? (device.is_cuda() ? "nccl" : "gloo") : options.backend;
  if (backend == "nccl")
    throw UserError("[dist] backend nccl: this keel is built without NCCL; use backend = \"gloo\" (it also reduces CUDA "
                    "tensors, through host memory)");
  if (backend != "gloo") throw UserError(fmt::format("[dist] backend '{}': expected auto, gloo or nccl", backend));
  impl->backend = backend;

  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(launch.master_port);
  so.isServer = !launch.agent_store && launch.rank == 0;
  if (so.isServer) so.numWorkers = static_cast<size_t>(launch.world);
  so.waitWorkers = false;
  so.timeout = impl->timeout;
  so.multiTenant = true;
  spdlog::info("rank {} of {}: joining {}:{} ({})", launch.rank, launch.world, launch.master_addr, launch.master_port,
               launch.agent_store ? "torchrun's store" : so.isServer ? "hosting the store" : "rank 0's store");
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, so);
    impl->store = c10::make_intrusive<c10d::PrefixStore>(launch.store_prefix, tcp);
    auto opts = c10d::ProcessGroupGloo::Options::create(impl->timeout);
    if (auto ifname = env("GLOO_SOCKET_IFNAME"))
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(*ifname));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, launch.rank, launch.world, opts);
    impl->pg = c10::make_intrusive<c10d::ProcessGroup>(impl->store, launch.rank, launch.world);
    impl->pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
    if (device.is_cuda()) impl->pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::GLOO, gloo);
    impl->pg->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  } catch (const std::exception &e) {
    throw GroupError(fmt::format("rank {}: could not join the group at {}:{} within {:g} s ([dist] timeout_s): {}",
                                launch.rank, launch.master_addr, launch.master_port, options.timeout_s,
                                std::string(e.what()).substr(0, 400)));
  }
  return std::unique_ptr<Group>(new Group(std::move(impl)));
}

int Group::rank() const { return impl_->launch.rank; }
int Group::world() const { return impl_->launch.world; }
int Group::local_rank() const { return impl_->launch.local_rank; }
const std::string &Group::backend() const { return impl_->backend; }

void Group::all_reduce_sum(torch::Tensor &t) {
  std::vector<at::Tensor> v{t};
  impl_->pg->allreduce(v)->wait(impl_->timeout);
}

void Group::all_reduce_sum(double *values, size_t n) {
  if (n == 0) return;
  auto t = torch::from_blob(values, {static_cast<int64_t>(n)}, torch::kDouble).clone();
  all_reduce_sum(t);
  std::memcpy(values, t.data_ptr<double>(), n * sizeof(double));
}

bool Group::any(bool flag) {
  std::vector<double> v{flag ? 1.0 : 0.0};
  all_reduce_sum(v);
  return v[0] > 0;
}

void Group::barrier() { impl_->pg->barrier()->wait(impl_->timeout); }

std::string Group::decide_on_root(const std::string &root_word) {
  const std::string key = fmt::format("decision/{}", impl_->decisions++);
  if (rank() == 0) {
    impl_->store->set(key, std::vector<uint8_t>(root_word.begin(), root_word.end()));
    return root_word;
  }
  const auto v = impl_->store->get(key);  // waits up to the store's timeout
  return std::string(v.begin(), v.end());
}

void Group::watch_gradients(const std::vector<torch::Tensor> &trainable) {
  std::vector<at::TensorImpl *> ids;
  for (const auto &t : trainable) ids.push_back(t.unsafeGetTensorImpl());
  if (impl_->reducer && ids == impl_->watched) return;
  impl_->reducer.reset();  // its hooks go with it
  impl_->watched = ids;
  impl_->grad_bytes = 0;
  if (trainable.empty()) return;
  for (const auto &t : trainable) impl_->grad_bytes += t.numel() * static_cast<int64_t>(t.element_size());
  // Buckets as DDP makes them (a small first one, then 25 MB), in reverse order: the backward
  // produces the last layers' gradients first, so their bucket is reduced while the rest runs.
  const size_t first_cap = 1 << 20, cap = 25 << 20;
  auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(trainable, {first_cap, cap},
                                                                   std::vector<bool>(trainable.size(), false));
  std::reverse(buckets.begin(), buckets.end());
  impl_->reducer = std::make_unique<c10d::Reducer>(
      trainable, buckets, impl_->pg, std::vector<bool>(trainable.size(), false), static_cast<int64_t>(cap),
      /*find_unused_parameters=*/false, /*gradient_as_bucket_view=*/false, std::unordered_map<size_t, std::string>{},
      static_cast<int64_t>(first_cap), /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false,
      std::vector<int64_t>{});
  impl_->reducer->register_comm_hook(std::make_unique<SumHook>(impl_->pg));
  spdlog::debug("dist: {} tensors in {} buckets, {:.1f} MB of gradient per step", trainable.size(), buckets.size(),
                impl_->grad_bytes / 1e6);
}

void Group::expect_backward() {
  if (impl_->reducer) impl_->reducer->prepare_for_backward({});
}

int64_t Group::gradient_bytes() const { return impl_->grad_bytes; }

}  // namespace keel::dist
