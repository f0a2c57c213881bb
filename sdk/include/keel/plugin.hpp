// plugin.hpp — header-only C++ helpers for writing a keel plugin. Compiled INTO the plugin: nothing
// here crosses the boundary; only keel_plugin.h does.
//
//   class Smooth : public keel::Plugin {
//    public:
//     using Plugin::Plugin;                          // Plugin(const keel_host_t*, const keel_params_t*)
//     double lr(int64_t step, double lr_in) override { return lr_in * 0.5; }
//   };
//   KEEL_PLUGIN(Smooth, keel::Descriptor{ .id = "org.example.half", .name = "half",
//                                         .kind = KEEL_KIND_SCHEDULER, .hooks = KEEL_HOOK_LR, ... })
//
// Hooks throw keel::Error (or any std::exception) to fail; the trampolines catch it, hand the message
// to host->set_error and return a status, so no exception unwinds through the boundary.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "keel/keel_plugin.h"

namespace keel {

// What a hook throws to fail with a status.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string &what, keel_status_t status = KEEL_ERROR)
      : std::runtime_error(what), status(status) {}
  keel_status_t status;
};

// Typed, path-based access to the plugin's resolved parameters ("stages.0.lr").
class Params {
 public:
  explicit Params(const keel_params_t *p) : p_(p) {}
  bool has(const std::string &path) const { return p_->has(p_, path.c_str()) != 0; }
  double get_double(const std::string &path) const {
    double v = 0;
    check(p_->get_double(p_, path.c_str(), &v), path, "a number");
    return v;
  }
  int64_t get_int(const std::string &path) const {
    int64_t v = 0;
    check(p_->get_int(p_, path.c_str(), &v), path, "an integer");
    return v;
  }
  bool get_bool(const std::string &path) const {
    int32_t v = 0;
    check(p_->get_bool(p_, path.c_str(), &v), path, "a boolean");
    return v != 0;
  }
  std::string get_string(const std::string &path) const {
    const char *v = nullptr;
    check(p_->get_string(p_, path.c_str(), &v), path, "a string");
    return v;
  }
  uint64_t size(const std::string &path) const {
    uint64_t n = 0;
    check(p_->size(p_, path.c_str(), &n), path, "an array or table");
    return n;
  }
  std::vector<std::string> keys(const std::string &path) const {
    std::vector<std::string> out;
    for (uint64_t i = 0, n = size(path); i < n; ++i) {
      const char *k = nullptr;
      check(p_->key_at(p_, path.c_str(), i, &k), path, "a table");
      out.emplace_back(k);
    }
    return out;
  }
  std::vector<std::string> get_strings(const std::string &path) const {
    std::vector<std::string> out;
    for (uint64_t i = 0, n = size(path); i < n; ++i)
      out.push_back(get_string(path + "." + std::to_string(i)));
    return out;
  }
  std::string json(const std::string &path = "") const {
    const char *v = nullptr;
    check(p_->get_json(p_, path.c_str(), &v), path, "a value");
    return v;
  }
  double get_double(const std::string &path, double fallback) const {
    return has(path) ? get_double(path) : fallback;
  }
  int64_t get_int(const std::string &path, int64_t fallback) const {
    return has(path) ? get_int(path) : fallback;
  }

 private:
  static void check(keel_status_t s, const std::string &path, const char *what) {
    if (s != KEEL_OK)
      throw Error("parameter '" + path + "': " + (s == KEEL_NOT_FOUND ? "missing" : "not ") +
                      (s == KEEL_NOT_FOUND ? "" : what),
                  KEEL_INVALID_ARGUMENT);
  }
  const keel_params_t *p_;
};

// The host services, with errors turned into exceptions.
class Host {
 public:
  explicit Host(const keel_host_t *h) : h_(h) {}
  const keel_host_t *raw() const { return h_; }
  // True when the host's table has `field` (a service added in a later minor version).
#define KEEL_HOST_HAS(host, field) KEEL_HAS_FIELD((host).raw(), keel_host_t, field)

  void log(int level, const std::string &msg) const { h_->log(h_, level, msg.c_str()); }
  void info(const std::string &msg) const { log(KEEL_LOG_INFO, msg); }
  void warn(const std::string &msg) const { log(KEEL_LOG_WARN, msg); }
  void debug(const std::string &msg) const { log(KEEL_LOG_DEBUG, msg); }

  keel_run_info_t run_info() const {
    keel_run_info_t r{};
    r.struct_size = sizeof r;
    check(h_->run_info(h_, &r), "run_info");
    return r;
  }
  // ABI 1.3: this process and the processes of a data-parallel run (0 and 1 on older hosts).
  // (An older host leaves the zero-initialised fields as they are.)
  int rank() const { return run_info().rank; }
  int world_size() const { return std::max(1, run_info().world_size); }
  // ABI 1.3: sums the values over the processes (see keel_host_t::all_reduce_sum); a host that
  // predates it runs one process, where the sum is the values themselves.
  void all_reduce_sum(std::vector<double> &values) const {
    if (!KEEL_HAS_FIELD(h_, keel_host_t, all_reduce_sum) || values.empty()) return;
    check(h_->all_reduce_sum(h_, values.data(), static_cast<uint32_t>(values.size())), "all_reduce_sum");
  }
  double lr() const { return h_->get_lr(h_); }
  void set_base_lr(double lr) const { check(h_->set_base_lr(h_, lr), "set_base_lr"); }

  std::vector<std::string> parameter_names() const {
    std::vector<std::string> out;
    for (uint64_t i = 0, n = h_->parameter_count(h_); i < n; ++i) {
      const char *name = nullptr;
      check(h_->parameter_name(h_, i, &name), "parameter_name");
      out.emplace_back(name);
    }
    return out;
  }
  // Reads a parameter into a float vector (host converts dtype and device); returns its shape.
  std::vector<int64_t> read_parameter(const std::string &name, std::vector<float> &data) const {
    DLTensor view{};
    check(h_->get_parameter(h_, name.c_str(), &view), "get_parameter(" + name + ")");
    std::vector<int64_t> shape(view.shape, view.shape + view.ndim);
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    data.resize(static_cast<size_t>(n));
    DLTensor dst = cpu_f32(data.data(), shape);
    check(h_->copy_parameter_to(h_, name.c_str(), &dst), "copy_parameter_to(" + name + ")");
    return shape;
  }
  void write_parameter(const std::string &name, std::vector<float> &data,
                       std::vector<int64_t> shape) const {
    DLTensor src = cpu_f32(data.data(), shape);
    check(h_->copy_parameter_from(h_, name.c_str(), &src), "copy_parameter_from(" + name + ")");
  }
  bool embeddings_tied() const { return h_->embeddings_tied(h_) != 0; }

  void set_dropout(keel_dropout_site_t site, double p) const {
    check(h_->set_dropout(h_, site, p), "set_dropout");
  }
  double dropout(keel_dropout_site_t site) const {
    double p = 0;
    check(h_->get_dropout(h_, site, &p), "get_dropout");
    return p;
  }

  std::vector<keel_source_info_t> sources() const {
    std::vector<keel_source_info_t> out(h_->source_count(h_));
    for (uint32_t i = 0; i < out.size(); ++i) {
      out[i].struct_size = sizeof(keel_source_info_t);
      check(h_->source_info(h_, i, &out[i]), "source_info");
    }
    return out;
  }
  void reshuffle_source(const std::string &name, uint64_t seed) const {
    check(h_->reshuffle_source(h_, name.c_str(), seed), "reshuffle_source(" + name + ")");
  }

  keel_generation_settings_t generation() const {
    keel_generation_settings_t g{};
    g.struct_size = sizeof g;
    check(h_->get_generation(h_, &g), "get_generation");
    return g;
  }
  void set_generation(const keel_generation_settings_t &g) const {
    check(h_->set_generation(h_, &g), "set_generation");
  }

  void publish(const std::string &name, double value, bool alarm = false,
               const std::string &reason = "") const {
    check(h_->publish_metric(h_, name.c_str(), value, alarm ? 1 : 0, reason.c_str()),
          "publish_metric(" + name + ")");
  }
  bool read_metric(const std::string &name, double &value, bool &alarm) const {
    int32_t a = 0;
    keel_status_t s = h_->read_metric(h_, name.c_str(), &value, &a);
    if (s == KEEL_NOT_FOUND) return false;
    check(s, "read_metric(" + name + ")");
    alarm = a != 0;
    return true;
  }
  void request_rollback(const std::string &reason) const {
    check(h_->request_rollback(h_, reason.c_str()), "request_rollback");
  }
  // ABI 1.2: roll back to the checkpoint of `step`.
  void request_rollback_to(int64_t step, const std::string &reason) const {
    if (!KEEL_HAS_FIELD(h_, keel_host_t, request_rollback_to)) throw Error("this keel host predates request_rollback_to (ABI 1.2)", KEEL_UNSUPPORTED);
    check(h_->request_rollback_to(h_, step, reason.c_str()), "request_rollback_to");
  }
  void request_stop(const std::string &reason) const {
    check(h_->request_stop(h_, reason.c_str()), "request_stop");
  }
  void freeze_parameter(const std::string &name, int64_t until_step) const {
    check(h_->freeze_parameter(h_, name.c_str(), until_step), "freeze_parameter(" + name + ")");
  }
  void set_embedding_noise(double alpha) const {
    check(h_->set_embedding_noise(h_, alpha), "set_embedding_noise");
  }
  // ABI 1.1. Returns the status, so a plugin can tell "not here" (KEEL_UNSUPPORTED) from failure.
  keel_status_t train_entropy(DLTensor &out) const {
    if (!KEEL_HAS_FIELD(h_, keel_host_t, train_entropy)) return KEEL_UNSUPPORTED;  // a host older than 1.1
    return h_->train_entropy(h_, &out);
  }
  // ABI 1.2: LoRA adapters (see keel_host_t::attach_lora).
  void attach_lora(int64_t rank, double alpha, double dropout, const std::string &targets) const {
    if (!KEEL_HAS_FIELD(h_, keel_host_t, attach_lora)) throw Error("this keel host predates LoRA (ABI 1.2)", KEEL_UNSUPPORTED);
    keel_lora_spec_t spec{sizeof spec, rank, alpha, dropout, targets.c_str()};
    check(h_->attach_lora(h_, &spec), "attach_lora");
  }
  void merge_lora() const {
    if (!KEEL_HAS_FIELD(h_, keel_host_t, merge_lora)) throw Error("this keel host predates LoRA (ABI 1.2)", KEEL_UNSUPPORTED);
    check(h_->merge_lora(h_), "merge_lora");
  }
  // This run's checkpoints, oldest first.
  std::vector<keel_checkpoint_info_t> checkpoints() const {
    std::vector<keel_checkpoint_info_t> out(h_->checkpoint_count(h_));
    for (uint32_t i = 0; i < out.size(); ++i) {
      out[i].struct_size = sizeof(keel_checkpoint_info_t);
      check(h_->checkpoint_info(h_, i, &out[i]), "checkpoint_info");
    }
    return out;
  }

  static DLTensor cpu_f32(float *data, std::vector<int64_t> &shape) {
    DLTensor t{};
    t.data = data;
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = static_cast<int32_t>(shape.size());
    t.dtype = DLDataType{kDLFloat, 32, 1};
    t.shape = shape.data();
    return t;
  }

 private:
  // A failed service already set its reason through set_error; keep it by rethrowing the status.
  static void check(keel_status_t s, const std::string &what) {
    if (s != KEEL_OK) throw Error("host service " + what + " failed (status " + std::to_string(s) + ")", s);
  }
  const keel_host_t *h_;
};

// Bytes for save_state / load_state.
using Bytes = std::vector<uint8_t>;

// The base class of a C++ plugin: override the hooks your descriptor lists.
class Plugin {
 public:
  Plugin(const keel_host_t *host, const keel_params_t *params) : host(host), params(params) {}
  virtual ~Plugin() = default;

  virtual void on_start() {}
  virtual void on_end() {}
  virtual double lr(int64_t /*step*/, double lr_in) { return lr_in; }
  virtual void on_model_ready() {}
  virtual void on_export() {}
  // Returns the loss sum over counted tokens; sets count.
  virtual double loss(const DLTensor & /*logits*/, const DLTensor & /*labels*/,
                      DLTensor & /*grad_out*/, int64_t & /*count*/) {
    throw Error("loss not implemented", KEEL_UNSUPPORTED);
  }
  virtual void compose_batch(int64_t /*batch_no*/,
                             const std::vector<keel_source_info_t> & /*sources*/,
                             std::vector<uint32_t> & /*source_of_slot*/) {}
  virtual void on_eval(const keel_eval_batch_t & /*batch*/) {}
  virtual void on_alarm(const keel_alarm_t & /*alarm*/) {}
  virtual Bytes save_state() { return {}; }
  virtual void load_state(const Bytes & /*state*/) {}

 protected:
  Host host;
  Params params;
};

// A C++ view of keel_plugin_descriptor_t with parameter specs kept alive beside it.
struct Param {
  const char *name;
  keel_param_type_t type;
  const char *default_value;
  const char *description;
  double min = 0, max = 0;
  const char *choices = nullptr;
};

struct Descriptor {
  const char *id;
  const char *name;
  keel_kind_t kind;
  const char *version;
  const char *description;
  const char *license = "Apache-2.0";
  const char *vendor = "";
  uint64_t hooks = 0;
  uint64_t flags = 0;
  std::vector<Param> params = {};
  const char *requires_torch = nullptr;
};

namespace detail {

// Runs `f`, turning any exception into a status and host->set_error().
template <class F>
keel_status_t guarded(const keel_host_t *host, F &&f) noexcept {
  try {
    f();
    return KEEL_OK;
  } catch (const Error &e) {
    if (host) host->set_error(host, e.what());
    return e.status == KEEL_OK ? KEEL_ERROR : e.status;
  } catch (const std::bad_alloc &) {
    if (host) host->set_error(host, "out of memory");
    return KEEL_OUT_OF_MEMORY;
  } catch (const std::exception &e) {
    if (host) host->set_error(host, e.what());
    return KEEL_ERROR;
  } catch (...) {
    if (host) host->set_error(host, "unknown exception");
    return KEEL_ERROR;
  }
}

struct Instance {
  keel_plugin_t c{};
  const keel_host_t *host = nullptr;
  Plugin *impl = nullptr;
};

inline Instance *self(keel_plugin_t *p) { return static_cast<Instance *>(p->plugin_data); }

struct StateSink {
  keel_state_writer_t *out;
};

// Keeps a Descriptor's C form alive for the life of the library.
class DescriptorStorage {
 public:
  explicit DescriptorStorage(Descriptor d) : d_(std::move(d)) {
    for (const Param &p : d_.params) {
      keel_param_spec_t s{};
      s.struct_size = sizeof s;
      s.name = p.name;
      s.type = p.type;
      s.default_value = p.default_value;
      s.min = p.min;
      s.max = p.max;
      s.choices = p.choices;
      s.description = p.description;
      specs_.push_back(s);
    }
    for (const keel_param_spec_t &s : specs_) ptrs_.push_back(&s);
    c_.struct_size = sizeof c_;
    c_.id = d_.id;
    c_.name = d_.name;
    c_.kind = d_.kind;
    c_.version = d_.version;
    c_.description = d_.description;
    c_.license = d_.license;
    c_.vendor = d_.vendor;
    c_.hooks = d_.hooks;
    c_.flags = d_.flags;
    c_.params = ptrs_.empty() ? nullptr : ptrs_.data();
    c_.n_params = static_cast<uint32_t>(ptrs_.size());
    c_.requires_torch = d_.requires_torch;
  }
  const keel_plugin_descriptor_t *get() const { return &c_; }

 private:
  Descriptor d_;
  std::vector<keel_param_spec_t> specs_;
  std::vector<const keel_param_spec_t *> ptrs_;
  keel_plugin_descriptor_t c_{};
};

template <class T>
keel_status_t create(const keel_plugin_descriptor_t *desc, const keel_host_t *host,
                     const keel_params_t *params, keel_plugin_t **out) noexcept {
  *out = nullptr;
  return guarded(host, [&] {
    auto *inst = new Instance;
    try {
      inst->impl = new T(host, params);
    } catch (...) {
      delete inst;
      throw;
    }
    inst->host = host;
    keel_plugin_t &c = inst->c;
    c.struct_size = sizeof c;
    c.plugin_data = inst;
    c.destroy = [](keel_plugin_t *p) {
      Instance *i = self(p);
      delete i->impl;
      delete i;
    };
    const uint64_t h = desc->hooks;
#define KEEL_TRAMPOLINE_(body) [](keel_plugin_t *p) -> keel_status_t { \
    Instance *i = self(p);                                               \
    return guarded(i->host, [&] { body; });                              \
  }
    if (h & KEEL_HOOK_ON_START) c.on_start = KEEL_TRAMPOLINE_(i->impl->on_start());
    if (h & KEEL_HOOK_ON_END) c.on_end = KEEL_TRAMPOLINE_(i->impl->on_end());
    if (h & KEEL_HOOK_ON_MODEL_READY) c.on_model_ready = KEEL_TRAMPOLINE_(i->impl->on_model_ready());
    if (h & KEEL_HOOK_ON_EXPORT) c.on_export = KEEL_TRAMPOLINE_(i->impl->on_export());
#undef KEEL_TRAMPOLINE_
    if (h & KEEL_HOOK_LR)
      c.lr = [](keel_plugin_t *p, int64_t step, double in, double *out_lr) -> keel_status_t {
        Instance *i = self(p);
        return guarded(i->host, [&] { *out_lr = i->impl->lr(step, in); });
      };
    if (h & KEEL_HOOK_LOSS)
      c.loss = [](keel_plugin_t *p, const DLTensor *logits, const DLTensor *labels,
                  DLTensor *grad, double *sum, int64_t *count) -> keel_status_t {
        Instance *i = self(p);
        return guarded(i->host, [&] { *sum = i->impl->loss(*logits, *labels, *grad, *count); });
      };
    if (h & KEEL_HOOK_COMPOSE_BATCH)
      c.compose_batch = [](keel_plugin_t *p, int64_t batch_no, uint32_t n_slots,
                           const keel_source_info_t *const *sources, uint32_t n_sources,
                           uint32_t *slots) -> keel_status_t {
        Instance *i = self(p);
        return guarded(i->host, [&] {
          std::vector<keel_source_info_t> src;
          for (uint32_t k = 0; k < n_sources; ++k) {
            keel_source_info_t s{};
            std::memcpy(&s, sources[k],
                        sources[k]->struct_size < sizeof s ? sources[k]->struct_size : sizeof s);
            s.struct_size = sizeof s;
            src.push_back(s);
          }
          std::vector<uint32_t> out(n_slots, 0);
          i->impl->compose_batch(batch_no, src, out);
          for (uint32_t k = 0; k < n_slots; ++k) {
            if (out[k] >= n_sources) throw Error("compose_batch: slot names no source");
            slots[k] = out[k];
          }
        });
      };
    if (h & KEEL_HOOK_ON_EVAL)
      c.on_eval = [](keel_plugin_t *p, const keel_eval_batch_t *b) -> keel_status_t {
        Instance *i = self(p);
        return guarded(i->host, [&] { i->impl->on_eval(*b); });
      };
    if (h & KEEL_HOOK_ON_ALARM)
      c.on_alarm = [](keel_plugin_t *p, const keel_alarm_t *a) -> keel_status_t {
        Instance *i = self(p);
        return guarded(i->host, [&] { i->impl->on_alarm(*a); });
      };
    if (h & KEEL_HOOK_STATE) {
      c.save_state = [](keel_plugin_t *p, keel_state_writer_t *w) -> keel_status_t {
        Instance *i = self(p);
        return guarded(i->host, [&] {
          Bytes b = i->impl->save_state();
          if (w->write(w, b.data(), b.size()) != KEEL_OK) throw Error("state writer failed");
        });
      };
      c.load_state = [](keel_plugin_t *p, const void *data, uint64_t size) -> keel_status_t {
        Instance *i = self(p);
        return guarded(i->host, [&] {
          const auto *b = static_cast<const uint8_t *>(data);
          i->impl->load_state(Bytes(b, b + size));
        });
      };
    }
    *out = &c;
  });
}

}  // namespace detail
}  // namespace keel

// Defines the library's one exported symbol for plugin class `Class` described by the
// keel::Descriptor expression that follows. Use once per library, at namespace scope.
#define KEEL_PLUGIN(Class, ...)                                                                \
  namespace {                                                                                 \
  const keel::detail::DescriptorStorage keel_descriptor_storage_{__VA_ARGS__};                \
  keel_status_t keel_create_(const keel_host_t *h, const keel_params_t *p, keel_plugin_t **o) { \
    return keel::detail::create<Class>(keel_descriptor_storage_.get(), h, p, o);              \
  }                                                                                           \
  }                                                                                           \
  extern "C" KEEL_EXPORT const keel_plugin_entry_t keel_plugin_entry = {                      \
      sizeof(keel_plugin_entry_t), {KEEL_ABI_MAJOR, KEEL_ABI_MINOR},                          \
      keel_descriptor_storage_.get(), keel_create_};
