#include "plugin_host/pipeline.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/errors.hpp"

namespace keel {

namespace {

// ---- the keel_host_t table: C functions that find their plugin through host_data ------------

PluginInstance &inst(const keel_host_t *h) { return *static_cast<PluginInstance *>(h->host_data); }
HostServices &svc(const keel_host_t *h) { return inst(h).pipeline->services(); }

// Runs a service body; a ServiceError or exception becomes set_error + status (never unwinds).
template <class F>
keel_status_t serve(const keel_host_t *h, F &&f) noexcept {
  try {
    f();
    return KEEL_OK;
  } catch (const ServiceError &e) {
    inst(h).service_error = e.message;
    return e.status;
  } catch (const std::exception &e) {
    inst(h).service_error = e.what();
    return KEEL_ERROR;
  } catch (...) {
    inst(h).service_error = "unknown error in a host service";
    return KEEL_ERROR;
  }
}

bool fits(const void *p, uint32_t size_needed) {
  return p != nullptr && *static_cast<const uint32_t *>(p) >= size_needed;
}

void fill_host_table(keel_host_t &t, PluginInstance *self) {
  t.struct_size = sizeof t;
  t.abi = {KEEL_ABI_MAJOR, KEEL_ABI_MINOR};
  t.host_data = self;
  t.set_error = [](const keel_host_t *h, const char *msg) { inst(h).error = msg ? msg : ""; };
  t.log = [](const keel_host_t *h, int32_t level, const char *msg) {
    auto lvl = level <= KEEL_LOG_DEBUG  ? spdlog::level::debug
               : level == KEEL_LOG_INFO ? spdlog::level::info
               : level == KEEL_LOG_WARN ? spdlog::level::warn
                                        : spdlog::level::err;
    spdlog::log(lvl, "[{}] {}", inst(h).name, msg ? msg : "");
  };
  t.run_info = [](const keel_host_t *h, keel_run_info_t *out) {
    return serve(h, [&] {
      if (!fits(out, offsetof(keel_run_info_t, run_dir) + sizeof(out->run_dir)))
        throw ServiceError{KEEL_INVALID_ARGUMENT, "run_info: struct_size too small"};
      HostServices &s = svc(h);
      out->step = s.step;
      out->total_steps = s.total_steps;
      out->epoch = s.epoch;
      out->seed = s.seed;
      out->run_dir = s.run_dir.c_str();
      if (fits(out, offsetof(keel_run_info_t, world_size) + sizeof(out->world_size))) {
        out->rank = s.rank;
        out->world_size = s.world_size;
      }
    });
  };
  t.get_lr = [](const keel_host_t *h) { return svc(h).lr; };
  t.set_base_lr = [](const keel_host_t *h, double lr) {
    return serve(h, [&] {
      if (!(lr >= 0) || lr > 10) throw ServiceError{KEEL_INVALID_ARGUMENT, fmt::format("set_base_lr: {} is not a learning rate", lr)};
      svc(h).base_lr = lr;
    });
  };
  t.parameter_count = [](const keel_host_t *h) -> uint64_t {
    try {
      return svc(h).parameter_names().size();
    } catch (...) {
      return 0;
    }
  };
  t.parameter_name = [](const keel_host_t *h, uint64_t i, const char **out) {
    return serve(h, [&] {
      static thread_local std::vector<std::string> names;
      names = svc(h).parameter_names();
      if (i >= names.size()) throw ServiceError{KEEL_NOT_FOUND, fmt::format("no parameter #{}", i)};
      *out = names[i].c_str();  // valid until the next call on this thread
    });
  };
  t.get_parameter = [](const keel_host_t *h, const char *name, DLTensor *out) {
    return serve(h, [&] { *out = svc(h).parameter_view(name); });
  };
  t.copy_parameter_to = [](const keel_host_t *h, const char *name, DLTensor *dst) {
    return serve(h, [&] { svc(h).copy_parameter_to(name, *dst); });
  };
  t.copy_parameter_from = [](const keel_host_t *h, const char *name, const DLTensor *src) {
    return serve(h, [&] { svc(h).copy_parameter_from(name, *src); });
  };
  t.embeddings_tied = [](const keel_host_t *h) -> int32_t {
    try {
      return svc(h).embeddings_tied() ? 1 : 0;
    } catch (...) {
      return 0;
    }
  };
  t.set_dropout = [](const keel_host_t *h, keel_dropout_site_t site, double p) {
    return serve(h, [&] {
      if (site < KEEL_DROPOUT_EMBEDDING || site > KEEL_DROPOUT_FFN)
        throw ServiceError{KEEL_INVALID_ARGUMENT, fmt::format("set_dropout: unknown site {}", site)};
      if (!(p >= 0 && p < 1))
        throw ServiceError{KEEL_INVALID_ARGUMENT, fmt::format("set_dropout: p = {} is not in [0, 1)", p)};
      svc(h).set_dropout(site, p);
    });
  };
  t.get_dropout = [](const keel_host_t *h, keel_dropout_site_t site, double *p) {
    return serve(h, [&] {
      if (site < KEEL_DROPOUT_EMBEDDING || site > KEEL_DROPOUT_FFN)
        throw ServiceError{KEEL_INVALID_ARGUMENT, fmt::format("get_dropout: unknown site {}", site)};
      *p = svc(h).dropout(site);
    });
  };
  t.source_count = [](const keel_host_t *h) -> uint32_t {
    try {
      return static_cast<uint32_t>(svc(h).sources().size());
    } catch (...) {
      return 0;
    }
  };
  t.source_info = [](const keel_host_t *h, uint32_t i, keel_source_info_t *out) {
    return serve(h, [&] {
      auto all = svc(h).sources();
      if (i >= all.size()) throw ServiceError{KEEL_NOT_FOUND, fmt::format("no data source #{}", i)};
      uint32_t size = std::min<uint32_t>(out->struct_size, sizeof(keel_source_info_t));
      all[i].struct_size = size;
      std::memcpy(out, &all[i], size);
    });
  };
  t.reshuffle_source = [](const keel_host_t *h, const char *name, uint64_t seed) {
    return serve(h, [&] { svc(h).reshuffle_source(name, seed); });
  };
  t.get_generation = [](const keel_host_t *h, keel_generation_settings_t *out) {
    return serve(h, [&] {
      uint32_t size = std::min<uint32_t>(out->struct_size, sizeof(keel_generation_settings_t));
      std::memcpy(out, &svc(h).generation, size);
      out->struct_size = size;
    });
  };
  t.set_generation = [](const keel_host_t *h, const keel_generation_settings_t *in) {
    return serve(h, [&] {
      if (!fits(in, offsetof(keel_generation_settings_t, max_new_tokens) + sizeof(int32_t)))
        throw ServiceError{KEEL_INVALID_ARGUMENT, "set_generation: struct_size too small"};
      if (!(in->temperature >= 0) || !(in->top_p > 0 && in->top_p <= 1) || in->top_k < 0 ||
          !(in->repetition_penalty > 0) || in->max_new_tokens < 1)
        throw ServiceError{KEEL_INVALID_ARGUMENT, "set_generation: a setting is out of range"};
      keel_generation_settings_t g = *in;
      g.struct_size = sizeof g;
      svc(h).generation = g;
    });
  };
  t.eval_logits = [](const keel_host_t *h, uint32_t i, DLTensor *out) {
    return serve(h, [&] {
      if (!(inst(h).library->descriptor->flags & KEEL_FLAG_WANTS_EVAL_LOGITS))
        throw ServiceError{KEEL_INVALID_ARGUMENT, "eval_logits needs KEEL_FLAG_WANTS_EVAL_LOGITS in the descriptor"};
      *out = svc(h).eval_logits(i);
    });
  };
  t.publish_metric = [](const keel_host_t *h, const char *name, double value, int32_t alarm, const char *reason) {
    return serve(h, [&] {
      if (name == nullptr || *name == '\0') throw ServiceError{KEEL_INVALID_ARGUMENT, "publish_metric: empty name"};
      HostServices &s = svc(h);
      s.metrics[name] = MetricValue{value, alarm != 0, reason ? reason : "", s.step, inst(h).name};
    });
  };
  t.read_metric = [](const keel_host_t *h, const char *name, double *value, int32_t *alarm) {
    return serve(h, [&] {
      auto &m = svc(h).metrics;
      auto it = m.find(name ? name : "");
      if (it == m.end()) throw ServiceError{KEEL_NOT_FOUND, fmt::format("no metric '{}' yet", name ? name : "")};
      *value = it->second.value;
      if (alarm) *alarm = it->second.alarm ? 1 : 0;
    });
  };
  t.checkpoint_count = [](const keel_host_t *h) -> uint32_t {
    try {
      return static_cast<uint32_t>(svc(h).checkpoints().size());
    } catch (...) {
      return 0;
    }
  };
  t.checkpoint_info = [](const keel_host_t *h, uint32_t i, keel_checkpoint_info_t *out) {
    return serve(h, [&] {
      auto all = svc(h).checkpoints();
      if (i >= all.size()) throw ServiceError{KEEL_NOT_FOUND, fmt::format("no checkpoint #{}", i)};
      uint32_t size = std::min<uint32_t>(out->struct_size, sizeof(keel_checkpoint_info_t));
      all[i].struct_size = size;
      std::memcpy(out, &all[i], size);
    });
  };
  t.request_rollback = [](const keel_host_t *h, const char *reason) {
    return serve(h, [&] { svc(h).request_rollback(reason ? reason : ""); });
  };
  t.freeze_parameter = [](const keel_host_t *h, const char *name, int64_t until) {
    return serve(h, [&] { svc(h).freeze_parameter(name ? name : "", until); });
  };
  t.set_embedding_noise = [](const keel_host_t *h, double alpha) {
    return serve(h, [&] {
      if (!(alpha >= 0) || alpha > 1e6) throw ServiceError{KEEL_INVALID_ARGUMENT, fmt::format("set_embedding_noise: alpha {} must be >= 0", alpha)};
      svc(h).set_embedding_noise(alpha);
    });
  };
  t.train_entropy = [](const keel_host_t *h, DLTensor *out) {
    return serve(h, [&] { *out = svc(h).train_entropy(); });
  };
  t.attach_lora = [](const keel_host_t *h, const keel_lora_spec_t *spec) {
    return serve(h, [&] {
      if (!fits(spec, offsetof(keel_lora_spec_t, targets) + sizeof(spec->targets)) || !spec->targets)
        throw ServiceError{KEEL_INVALID_ARGUMENT, "attach_lora: spec missing or struct_size too small"};
      if (spec->rank < 1 || spec->rank > 65536 || !(spec->alpha > 0) || !(spec->dropout >= 0 && spec->dropout < 1))
        throw ServiceError{KEEL_INVALID_ARGUMENT, fmt::format("attach_lora: rank {} alpha {} dropout {} out of range",
                                                              spec->rank, spec->alpha, spec->dropout)};
      svc(h).attach_lora(*spec);
    });
  };
  t.merge_lora = [](const keel_host_t *h) { return serve(h, [&] { svc(h).merge_lora(); }); };
  t.request_rollback_to = [](const keel_host_t *h, int64_t step, const char *reason) {
    return serve(h, [&] {
      if (step < 0) throw ServiceError{KEEL_INVALID_ARGUMENT, "request_rollback_to: step must be >= 0"};
      svc(h).request_rollback(reason ? reason : "", step);
    });
  };
  t.all_reduce_sum = [](const keel_host_t *h, double *values, uint32_t n) {
    return serve(h, [&] {
      if (n > 65536 || (n > 0 && !values))
        throw ServiceError{KEEL_INVALID_ARGUMENT, fmt::format("all_reduce_sum: {} values (at most 65536, not null)", n)};
      svc(h).all_reduce_sum(values, n);
    });
  };
  t.request_stop = [](const keel_host_t *h, const char *reason) {
    return serve(h, [&] {
      svc(h).stop_reason = fmt::format("{}: {}", inst(h).name, reason ? reason : "stop requested");
    });
  };
}

// Host-managed remedy keys, checked with the same mechanism as plugin parameters.
const std::vector<keel_param_spec_t> &remedy_schema() {
  static const std::vector<keel_param_spec_t> s = {
      {sizeof(keel_param_spec_t), "on", KEEL_PARAM_STRING_LIST, "[]", 0, 0, nullptr,
       "metrics whose alarms fire this remedy (empty: every alarm)"},
      {sizeof(keel_param_spec_t), "cooldown", KEEL_PARAM_INT, "500", 0, 1e12, nullptr,
       "steps before this remedy may fire again"},
      {sizeof(keel_param_spec_t), "max_fires", KEEL_PARAM_INT, "-1", -1, 1e12, nullptr,
       "firings allowed in a run (-1: unlimited)"},
  };
  return s;
}

}  // namespace

PluginPipeline::PluginPipeline(const PipelineConfig &config, const PluginRegistry &registry,
                               HostServices &services)
    : config_(config), services_(services) {
  const auto base_dir = config.file.parent_path();
  // 1. Resolve libraries and parameters; nothing is created until every entry checks out.
  struct Pending {
    const PipelineEntry *entry;
    const PluginLibrary *lib;
    toml::table params;
    RemedyPolicy remedy;
  };
  std::vector<Pending> pending;
  for (const PipelineEntry &e : config.entries) {
    if (!e.enabled) continue;
    const PluginLibrary *lib;
    try {
      lib = &registry.resolve(e.plugin, base_dir);
    } catch (const UserError &err) {
      throw UserError(fmt::format("{}: {}", e.where, err.what()));
    }
    auto where = [&](const std::string &key) {
      auto it = e.key_where.find(key);
      return it == e.key_where.end() ? e.where : it->second;
    };
    toml::table own = e.params;
    RemedyPolicy policy;
    if (lib->descriptor->kind == KEEL_KIND_REMEDY) {
      toml::table host_keys;
      for (const auto &s : remedy_schema())
        if (const toml::node *n = own.get(s.name)) {
          host_keys.insert(s.name, *n);
          own.erase(s.name);
        }
      std::vector<const keel_param_spec_t *> specs;
      for (const auto &s : remedy_schema()) specs.push_back(&s);
      toml::table r = resolve_params(lib->name(), specs, host_keys, where);
      for (const auto &m : *r["on"].as_array()) policy.on.push_back(*m.value<std::string>());
      policy.cooldown = *r["cooldown"].value<int64_t>();
      policy.max_fires = *r["max_fires"].value<int64_t>();
    }
    pending.push_back({&e, lib, resolve_params(lib->name(), lib->params(), own, where), policy});
  }
  // 2. Rules across entries.
  const Pending *first_loss = nullptr, *first_data = nullptr;
  std::vector<std::string> metrics(kHostAlarms);
  for (const Pending &p : pending) {
    // One batch composer: a second data plugin would be silently ignored.
    if (p.lib->descriptor->hooks & KEEL_HOOK_COMPOSE_BATCH) {
      if (first_data)
        throw UserError(fmt::format("{}: a second data plugin '{}'; the pipeline already has data plugin '{}' "
                                    "at {} (at most one composes the batches)",
                                    p.entry->where, p.lib->name(), first_data->lib->name(), first_data->entry->where));
      first_data = &p;
    }
    if (p.lib->descriptor->hooks & KEEL_HOOK_LOSS) {
      if (first_loss)
        throw UserError(fmt::format("{}: a second loss plugin '{}'; the pipeline already has loss '{}' "
                                    "at {} (at most one loss per pipeline)",
                                    p.entry->where, p.lib->name(), first_loss->lib->name(),
                                    first_loss->entry->where));
      first_loss = &p;
    }
    if (p.lib->descriptor->kind == KEEL_KIND_METRIC) metrics.push_back(p.lib->name());
  }
  for (const Pending &p : pending)
    for (const std::string &m : p.remedy.on)
      if (std::find(metrics.begin(), metrics.end(), m) == metrics.end()) {
        std::string known;
        for (const auto &k : metrics) known += (known.empty() ? "" : ", ") + k;
        auto on = p.entry->key_where.find("on");
        throw UserError(fmt::format("{}: {}: on = [\"{}\"] names no metric of this pipeline. metrics "
                                    "here: {}",
                                    on == p.entry->key_where.end() ? p.entry->where : on->second,
                                    p.lib->name(), m, known));
      }
  // 3. Create, in order.
  for (Pending &p : pending) {
    auto in = std::make_unique<PluginInstance>();
    in->library = p.lib;
    in->name = p.lib->name();
    in->where = p.entry->where;
    in->params = std::make_unique<ParamsView>(std::move(p.params));
    in->remedy = p.remedy;
    in->pipeline = this;
    fill_host_table(in->host, in.get());
    keel_plugin_t *created = nullptr;
    keel_status_t s = p.lib->entry->create(&in->host, in->params->c(), &created);
    if (s != KEEL_OK || created == nullptr)
      throw UserError(fmt::format("{}: plugin '{}' refused its configuration: {}", in->where, in->name,
                                  in->error.empty() ? fmt::format("status {}", s) : in->error));
    in->plugin = created;
    // An instance built against an older keel_plugin_t is shorter: a hook is present when its
    // field lies inside the instance's struct_size and is set (rule 2; never read past the size).
    const uint64_t hooks = p.lib->descriptor->hooks;
#define KEEL_HOOK_PRESENT(field) (KEEL_HAS_FIELD(created, keel_plugin_t, field) && created->field != nullptr)
    const std::pair<uint64_t, bool> declared[] = {
        {KEEL_HOOK_ON_START, KEEL_HOOK_PRESENT(on_start)},
        {KEEL_HOOK_ON_END, KEEL_HOOK_PRESENT(on_end)},
        {KEEL_HOOK_LR, KEEL_HOOK_PRESENT(lr)},
        {KEEL_HOOK_ON_MODEL_READY, KEEL_HOOK_PRESENT(on_model_ready)},
        {KEEL_HOOK_ON_EXPORT, KEEL_HOOK_PRESENT(on_export)},
        {KEEL_HOOK_LOSS, KEEL_HOOK_PRESENT(loss)},
        {KEEL_HOOK_COMPOSE_BATCH, KEEL_HOOK_PRESENT(compose_batch)},
        {KEEL_HOOK_ON_EVAL, KEEL_HOOK_PRESENT(on_eval)},
        {KEEL_HOOK_ON_ALARM, KEEL_HOOK_PRESENT(on_alarm)},
        {KEEL_HOOK_STATE, KEEL_HOOK_PRESENT(save_state) && KEEL_HOOK_PRESENT(load_state)}};
    bool ok = KEEL_HOOK_PRESENT(destroy);
#undef KEEL_HOOK_PRESENT
    uint64_t missing = 0;
    for (auto [bit, present] : declared)
      if ((hooks & bit) && !present) missing |= bit;
    plugins_.push_back(std::move(in));
    if (!ok || missing) {
      if (!ok) plugins_.back()->plugin = nullptr;  // no destroy to call
      throw PluginError(fmt::format("plugin '{}' ({}): its instance ({} bytes) lacks {} that its descriptor declares",
                                    p.lib->name(), p.lib->path.string(), created->struct_size,
                                    ok ? "hooks " + hook_names(missing) : std::string("destroy")));
    }
  }
}

PluginPipeline::~PluginPipeline() {
  for (auto it = plugins_.rbegin(); it != plugins_.rend(); ++it)
    if ((*it)->plugin) (*it)->plugin->destroy((*it)->plugin);
}

template <class F>
void PluginPipeline::call(PluginInstance &p, const char *hook, F &&f) {
  spdlog::debug("hook {} -> {}", hook, p.name);
  if (tracing_) trace_.push_back(std::string(hook) + ":" + p.name);
  p.error.clear();
  p.service_error.clear();
  keel_status_t s = f(p.plugin);
  if (s != KEEL_OK) {
    // The plugin's reason, and the host service's when one failed under it.
    std::string why = p.error.empty() ? "no reason given" : p.error;
    if (!p.service_error.empty()) why += ": " + p.service_error;
    const std::string msg = fmt::format("plugin '{}' failed in {} at step {}: {} (status {}; {})", p.name, hook,
                                        services_.step, why, s, p.library->path.string());
    // Refused settings found while the run is set up are the user's to fix (exit 2), as the
    // parameters checked at creation are; anything else is the plugin failing (exit 1).
    const bool setup = std::strcmp(hook, "on_start") == 0 || std::strcmp(hook, "on_model_ready") == 0;
    if (setup && s == KEEL_INVALID_ARGUMENT) throw UserError(msg);
    throw PluginError(msg);
  }
}

void PluginPipeline::on_start() {
  for (auto &p : plugins_)
    if (p->has(KEEL_HOOK_ON_START)) call(*p, "on_start", [](keel_plugin_t *x) { return x->on_start(x); });
}

void PluginPipeline::on_end() {
  for (auto it = plugins_.rbegin(); it != plugins_.rend(); ++it)
    if ((*it)->has(KEEL_HOOK_ON_END)) call(**it, "on_end", [](keel_plugin_t *x) { return x->on_end(x); });
}

double PluginPipeline::lr(int64_t step, double base_lr) {
  double lr = base_lr;
  for (auto &p : plugins_)
    if (p->has(KEEL_HOOK_LR)) {
      double out = lr;
      call(*p, "lr", [&](keel_plugin_t *x) { return x->lr(x, step, lr, &out); });
      if (!(out >= 0) || out > 10)  // NaN, negative or absurd: a plugin bug, not a schedule
        throw PluginError(fmt::format("plugin '{}' returned learning rate {} at step {}", p->name, out, step));
      lr = out;
    }
  services_.lr = lr;
  return lr;
}

void PluginPipeline::on_model_ready() {
  for (auto &p : plugins_)
    if (p->has(KEEL_HOOK_ON_MODEL_READY))
      call(*p, "on_model_ready", [](keel_plugin_t *x) { return x->on_model_ready(x); });
}

void PluginPipeline::on_export() {
  for (auto it = plugins_.rbegin(); it != plugins_.rend(); ++it)
    if ((*it)->has(KEEL_HOOK_ON_EXPORT))
      call(**it, "on_export", [](keel_plugin_t *x) { return x->on_export(x); });
}

PluginInstance *PluginPipeline::loss_plugin() const {
  for (auto &p : plugins_)
    if (p->has(KEEL_HOOK_LOSS)) return p.get();
  return nullptr;
}

std::pair<double, int64_t> PluginPipeline::loss(const DLTensor &logits, const DLTensor &labels, DLTensor &grad) {
  PluginInstance *p = loss_plugin();
  double sum = 0;
  int64_t count = 0;
  call(*p, "loss", [&](keel_plugin_t *x) { return x->loss(x, &logits, &labels, &grad, &sum, &count); });
  return {sum, count};
}

PluginInstance *PluginPipeline::data_plugin() const {
  for (auto &p : plugins_)
    if (p->has(KEEL_HOOK_COMPOSE_BATCH)) return p.get();
  return nullptr;
}

std::vector<uint32_t> PluginPipeline::compose_batch(int64_t batch_no, uint32_t n_slots,
                                                    const std::vector<keel_source_info_t> &sources) {
  PluginInstance *p = data_plugin();
  std::vector<const keel_source_info_t *> ptrs;
  for (const auto &s : sources) ptrs.push_back(&s);
  std::vector<uint32_t> out(n_slots, UINT32_MAX);
  call(*p, "compose_batch", [&](keel_plugin_t *x) {
    return x->compose_batch(x, batch_no, n_slots, ptrs.data(), static_cast<uint32_t>(ptrs.size()), out.data());
  });
  for (uint32_t v : out)
    if (v >= sources.size())
      throw PluginError(fmt::format("plugin '{}' left a batch slot without a valid source", p->name));
  return out;
}

void PluginPipeline::on_eval(const keel_eval_batch_t &batch) {
  for (auto &p : plugins_)
    if (p->has(KEEL_HOOK_ON_EVAL)) call(*p, "on_eval", [&](keel_plugin_t *x) { return x->on_eval(x, &batch); });
}

std::vector<RemedyFiring> PluginPipeline::alarm(const keel_alarm_t &a) {
  std::vector<RemedyFiring> fired;
  for (auto &p : plugins_) {
    if (!p->has(KEEL_HOOK_ON_ALARM)) continue;
    RemedyPolicy &r = p->remedy;
    if (!r.on.empty() && std::find(r.on.begin(), r.on.end(), a.metric) == r.on.end()) continue;
    if (r.max_fires >= 0 && r.fires >= r.max_fires) continue;
    if (r.last_fired != INT64_MIN && a.step - r.last_fired < r.cooldown) continue;
    call(*p, "on_alarm", [&](keel_plugin_t *x) { return x->on_alarm(x, &a); });
    r.fires++;
    r.last_fired = a.step;
    fired.push_back({p->name, a.metric, a.step});
  }
  return fired;
}

std::vector<std::pair<std::string, std::vector<uint8_t>>> PluginPipeline::save_states() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  for (size_t i = 0; i < plugins_.size(); ++i) {
    PluginInstance &p = *plugins_[i];
    if (!p.has(KEEL_HOOK_STATE)) continue;
    std::vector<uint8_t> bytes;
    keel_state_writer_t w{sizeof(keel_state_writer_t), &bytes,
                          [](keel_state_writer_t *self, const void *data, uint64_t size) -> keel_status_t {
                            auto *b = static_cast<std::vector<uint8_t> *>(self->ctx);
                            const auto *d = static_cast<const uint8_t *>(data);
                            b->insert(b->end(), d, d + size);
                            return KEEL_OK;
                          }};
    call(p, "save_state", [&](keel_plugin_t *x) { return x->save_state(x, &w); });
    out.emplace_back(fmt::format("{}#{}", p.name, i), std::move(bytes));
  }
  return out;
}

void PluginPipeline::load_states(const std::vector<std::pair<std::string, std::vector<uint8_t>>> &states) {
  for (size_t i = 0; i < plugins_.size(); ++i) {
    PluginInstance &p = *plugins_[i];
    if (!p.has(KEEL_HOOK_STATE)) continue;
    const std::string key = fmt::format("{}#{}", p.name, i);
    for (const auto &[k, bytes] : states)
      if (k == key) call(p, "load_state", [&](keel_plugin_t *x) { return x->load_state(x, bytes.data(), bytes.size()); });
  }
}

std::vector<std::string> PluginPipeline::alarm_sources() const {
  std::vector<std::string> out(kHostAlarms);
  for (auto &p : plugins_)
    if (p->kind() == KEEL_KIND_METRIC) out.push_back(p->name);
  return out;
}

toml::table PluginPipeline::resolved_config() const {
  toml::table doc = config_.doc;
  toml::array entries;
  for (auto &p : plugins_) {
    toml::table e;
    e.insert("plugin", p->name);
    for (auto &&[k, v] : p->params->values()) e.insert(k.str(), v);
    if (p->kind() == KEEL_KIND_REMEDY) {
      toml::array on;
      for (const auto &m : p->remedy.on) on.push_back(m);
      e.insert("on", on);
      e.insert("cooldown", p->remedy.cooldown);
      e.insert("max_fires", p->remedy.max_fires);
    }
    entries.push_back(std::move(e));
  }
  doc.insert_or_assign("pipeline", std::move(entries));
  return doc;
}

}  // namespace keel
