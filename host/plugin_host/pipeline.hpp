// The plugin pipeline: the [[pipeline]] entries of a config resolved to libraries, checked, and
// created with their host-services tables; then every hook chain in pipeline order (on_end and
// on_export in reverse). A hook that fails stops the run with a PluginError naming the plugin.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/pipeline_config.hpp"
#include "plugin_host/library.hpp"
#include "plugin_host/params.hpp"
#include "plugin_host/registry.hpp"
#include "plugin_host/services.hpp"

namespace keel {

// The remedy keys the host manages for every remedy (one mechanism, not one per plugin).
struct RemedyPolicy {
  std::vector<std::string> on;  // empty: every alarm
  int64_t cooldown = 500;
  int64_t max_fires = -1;       // -1: unlimited
  int64_t fires = 0;
  int64_t last_fired = INT64_MIN;
};

struct PluginInstance {
  const PluginLibrary *library = nullptr;
  std::string name;   // descriptor name
  std::string where;  // file:line:col of its [[pipeline]] entry
  std::unique_ptr<ParamsView> params;
  keel_host_t host{};
  keel_plugin_t *plugin = nullptr;
  RemedyPolicy remedy;
  std::string error;          // the last set_error message
  std::string service_error;  // why the last failing host service failed
  class PluginPipeline *pipeline = nullptr;

  keel_kind_t kind() const { return library->descriptor->kind; }
  bool has(uint64_t hook) const { return (library->descriptor->hooks & hook) != 0; }
};

// A remedy that fired, for logs and metrics.jsonl.
struct RemedyFiring {
  std::string remedy, metric;
  int64_t step;
};

class PluginPipeline {
 public:
  // Resolves and checks every entry (unknown plugins, parameters, two losses, remedy triggers)
  // and creates the plugins. Throws UserError (file:line) or PluginError.
  PluginPipeline(const PipelineConfig &config, const PluginRegistry &registry, HostServices &services);
  ~PluginPipeline();
  PluginPipeline(const PluginPipeline &) = delete;
  PluginPipeline &operator=(const PluginPipeline &) = delete;

  const std::vector<std::unique_ptr<PluginInstance>> &plugins() const { return plugins_; }
  HostServices &services() { return services_; }
  // The config with every plugin's parameters resolved (defaults filled in), as TOML.
  toml::table resolved_config() const;

  // ---- hook chains ----
  void on_start();
  void on_end();                 // reverse order
  double lr(int64_t step, double base_lr);
  void on_model_ready();
  void on_export();              // reverse order
  PluginInstance *loss_plugin() const;
  std::pair<double, int64_t> loss(const DLTensor &logits, const DLTensor &labels, DLTensor &grad);
  PluginInstance *data_plugin() const;
  std::vector<uint32_t> compose_batch(int64_t batch_no, uint32_t n_slots,
                                      const std::vector<keel_source_info_t> &sources);
  void on_eval(const keel_eval_batch_t &batch);
  // Hands an alarm that just started to each listening remedy, in order, honouring `on`,
  // cooldown and max_fires; returns the firings.
  std::vector<RemedyFiring> alarm(const keel_alarm_t &alarm);
  std::vector<std::pair<std::string, std::vector<uint8_t>>> save_states();
  void load_states(const std::vector<std::pair<std::string, std::vector<uint8_t>>> &states);

  // "hook:plugin" for every call, when recording (tests read it; debug logs always show it).
  void record_trace(bool on) { tracing_ = on; }
  const std::vector<std::string> &trace() const { return trace_; }

  // Names of the metrics that may raise alarms: metric plugins plus the host's own.
  std::vector<std::string> alarm_sources() const;

 private:
  template <class F>
  void call(PluginInstance &p, const char *hook, F &&f);

  const PipelineConfig &config_;
  HostServices &services_;
  std::vector<std::unique_ptr<PluginInstance>> plugins_;
  std::vector<std::string> trace_;
  bool tracing_ = false;
};

// The host's own alarms, which remedies may listen to.
inline const std::vector<std::string> kHostAlarms = {"nonfinite"};

}  // namespace keel
