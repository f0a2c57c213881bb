// plugin_loader.hpp — loads label_smoothing.so through its one exported symbol, with a minimal
// keel_host_t (set_error, log) and keel_params_t (epsilon, distribute): the ABI alone, no keel host
// code, so this test can include torch without keel's spdlog/fmt.
#pragma once
#include <dlfcn.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "keel/keel_plugin.h"

namespace lstest {

struct Host {
  keel_host_t c{};
  std::string error;
  Host() {
    c.struct_size = sizeof c;
    c.abi = {KEEL_ABI_MAJOR, KEEL_ABI_MINOR};
    c.host_data = this;
    c.set_error = [](const keel_host_t *h, const char *m) { static_cast<Host *>(h->host_data)->error = m ? m : ""; };
    c.log = [](const keel_host_t *, int32_t, const char *) {};
  }
};

struct Params {
  keel_params_t c{};
  double epsilon;
  std::string distribute;
  Params(double eps, std::string dist) : epsilon(eps), distribute(std::move(dist)) {
    c.struct_size = sizeof c;
    c.ctx = this;
    c.has = [](const keel_params_t *, const char *p) -> int32_t {
      return !std::strcmp(p, "epsilon") || !std::strcmp(p, "distribute");
    };
    c.get_double = [](const keel_params_t *s, const char *p, double *out) -> keel_status_t {
      if (std::strcmp(p, "epsilon")) return KEEL_NOT_FOUND;
      *out = static_cast<const Params *>(s->ctx)->epsilon;
      return KEEL_OK;
    };
    c.get_string = [](const keel_params_t *s, const char *p, const char **out) -> keel_status_t {
      if (std::strcmp(p, "distribute")) return KEEL_NOT_FOUND;
      *out = static_cast<const Params *>(s->ctx)->distribute.c_str();
      return KEEL_OK;
    };
    c.get_bool = [](const keel_params_t *, const char *, int32_t *) -> keel_status_t { return KEEL_NOT_FOUND; };
    c.get_int = [](const keel_params_t *, const char *, int64_t *) -> keel_status_t { return KEEL_NOT_FOUND; };
    c.size = [](const keel_params_t *, const char *, uint64_t *) -> keel_status_t { return KEEL_NOT_FOUND; };
    c.key_at = [](const keel_params_t *, const char *, uint64_t, const char **) -> keel_status_t { return KEEL_NOT_FOUND; };
    c.get_json = [](const keel_params_t *, const char *, const char **) -> keel_status_t { return KEEL_NOT_FOUND; };
  }
};

inline const keel_plugin_entry_t *entry(const char *path) {
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);  // never closed (ABI rule 9)
  if (!lib) throw std::runtime_error(std::string("dlopen: ") + dlerror());
  auto *e = static_cast<const keel_plugin_entry_t *>(dlsym(lib, KEEL_PLUGIN_ENTRY_SYMBOL));
  if (!e) throw std::runtime_error("no keel_plugin_entry in " + std::string(path));
  return e;
}

// One plugin instance with its host and parameters.
struct Instance {
  Host host;
  Params params;
  keel_plugin_t *p = nullptr;
  Instance(const char *path, double eps, const std::string &dist) : params(eps, dist) {
    if (entry(path)->create(&host.c, &params.c, &p) != KEEL_OK)
      throw std::runtime_error("create failed: " + host.error);
  }
  ~Instance() {
    if (p) p->destroy(p);
  }
  keel_status_t loss(const DLTensor &x, const DLTensor &y, DLTensor &g, double &sum, int64_t &count) {
    host.error.clear();
    return p->loss(p, &x, &y, &g, &sum, &count);
  }
};

inline DLTensor view(void *data, DLDevice dev, DLDataType t, int64_t *shape, int ndim) {
  DLTensor v{};
  v.data = data;
  v.device = dev;
  v.ndim = ndim;
  v.dtype = t;
  v.shape = shape;
  return v;
}

}  // namespace lstest
