// HostServices: what the host offers plugins through the keel_host_t table (ARCHITECTURE.md §2,
// rule 4). The run-level state (step, LR, metrics, generation settings, stop requests) lives here
// and works in every command; services that need a model, data or checkpoints are virtual and fail
// with KEEL_UNSUPPORTED until a command that has them (the trainer) overrides them.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "keel/keel_plugin.h"

namespace keel {

// A service failed: status and reason, turned into host->set_error + status at the boundary.
struct ServiceError {
  keel_status_t status;
  std::string message;
};

struct MetricValue {
  double value = 0;
  bool alarm = false;
  std::string reason;
  int64_t step = 0;
  std::string publisher;  // the plugin that published it
};

class HostServices {
 public:
  virtual ~HostServices() = default;

  // ---- run state, real in every command ----
  int64_t step = 0, total_steps = 0, epoch = 0;
  uint64_t seed = 0;
  std::string run_dir;
  int32_t rank = 0, world_size = 1;  // data parallelism (host/dist)
  double base_lr = 0, lr = 0;  // lr: the rate after the chain, this step
  keel_generation_settings_t generation{sizeof(keel_generation_settings_t), 0.7, 0.95, 0, 1.0, 96};
  std::map<std::string, MetricValue> metrics;
  std::optional<std::string> stop_reason, rollback_reason;
  int64_t rollback_step = -1;  // with rollback_reason: the checkpoint asked for (-1: the last healthy)

  // ---- model, data, checkpoints: what a command has ----
  virtual std::vector<std::string> parameter_names() { return {}; }
  virtual DLTensor parameter_view(const std::string &name) { unsupported("model parameters", name); }
  virtual void copy_parameter_to(const std::string &name, DLTensor &) { unsupported("model parameters", name); }
  virtual void copy_parameter_from(const std::string &name, const DLTensor &) {
    unsupported("model parameters", name);
  }
  virtual bool embeddings_tied() { return false; }
  virtual void set_dropout(keel_dropout_site_t, double) { unsupported("dropout sites"); }
  virtual double dropout(keel_dropout_site_t) { unsupported("dropout sites"); }
  virtual std::vector<keel_source_info_t> sources() { return {}; }
  virtual void reshuffle_source(const std::string &name, uint64_t) { unsupported("data sources", name); }
  virtual DLTensor eval_logits(uint32_t) { unsupported("evaluation logits"); }
  virtual std::vector<keel_checkpoint_info_t> checkpoints() { return {}; }
  // To the last healthy checkpoint, or (step >= 0) to that step's.
  virtual void request_rollback(const std::string &, int64_t /*step*/ = -1) { unsupported("checkpoints (rollback)"); }
  virtual void freeze_parameter(const std::string &name, int64_t) { unsupported("model parameters", name); }
  virtual void set_embedding_noise(double) { unsupported("embedding noise"); }
  virtual DLTensor train_entropy() { unsupported("training batches (teacher-forced entropy)"); }
  virtual void attach_lora(const keel_lora_spec_t &) { unsupported("LoRA adapters (a model being trained)"); }
  virtual void merge_lora() { unsupported("LoRA adapters (a model being trained)"); }
  // Over the ranks of a data-parallel run; a single process has nothing to add.
  virtual void all_reduce_sum(double *, uint32_t) {}

  // Human name of the command, for "not available in ..." messages.
  std::string context = "this command";

 protected:
  [[noreturn]] void unsupported(const std::string &what, const std::string &name = "") const {
    throw ServiceError{KEEL_UNSUPPORTED, what + (name.empty() ? "" : " ('" + name + "')") +
                                             " are not available in " + context};
  }
};

}  // namespace keel
