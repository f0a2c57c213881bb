#include "plugin_host/library.hpp"

#include <map>
#include <memory>
#include <regex>

#include <boost/dll/shared_library.hpp>
#include <fmt/format.h>

#include "common/errors.hpp"
#include "plugin_host/params.hpp"

namespace keel {
namespace fs = std::filesystem;

std::string host_torch_version() { return KEEL_TORCH_VERSION; }

std::string kind_name(keel_kind_t kind) {
  switch (kind) {
    case KEEL_KIND_SCHEDULER: return "scheduler";
    case KEEL_KIND_MODEL_HOOK: return "model_hook";
    case KEEL_KIND_LOSS: return "loss";
    case KEEL_KIND_DATA: return "data";
    case KEEL_KIND_METRIC: return "metric";
    case KEEL_KIND_REMEDY: return "remedy";
    case KEEL_KIND_OTHER: return "other";
    default: return "unknown";
  }
}

static const std::pair<uint64_t, const char *> kHooks[] = {
    {KEEL_HOOK_ON_START, "on_start"},   {KEEL_HOOK_LR, "lr"},
    {KEEL_HOOK_ON_MODEL_READY, "on_model_ready"}, {KEEL_HOOK_COMPOSE_BATCH, "compose_batch"},
    {KEEL_HOOK_LOSS, "loss"},           {KEEL_HOOK_ON_EVAL, "on_eval"},
    {KEEL_HOOK_ON_ALARM, "on_alarm"},   {KEEL_HOOK_STATE, "save_state/load_state"},
    {KEEL_HOOK_ON_EXPORT, "on_export"}, {KEEL_HOOK_ON_END, "on_end"}};

std::string hook_names(uint64_t hooks) {
  std::string out;
  for (auto [bit, name] : kHooks)
    if (hooks & bit) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

namespace {

constexpr uint64_t kKnownHooks = (KEEL_HOOK_STATE << 1) - 1;

// The hook a plugin of each kind must implement.
uint64_t required_hooks(keel_kind_t kind) {
  switch (kind) {
    case KEEL_KIND_SCHEDULER: return KEEL_HOOK_LR;
    case KEEL_KIND_LOSS: return KEEL_HOOK_LOSS;
    case KEEL_KIND_DATA: return KEEL_HOOK_COMPOSE_BATCH;
    case KEEL_KIND_METRIC: return KEEL_HOOK_ON_EVAL;
    case KEEL_KIND_REMEDY: return KEEL_HOOK_ON_ALARM;
    default: return 0;
  }
}

bool empty(const char *s) { return s == nullptr || *s == '\0'; }

}  // namespace

void validate_plugin_entry(const keel_plugin_entry_t *e) {
  if (e->struct_size < offsetof(keel_plugin_entry_t, abi) + sizeof(e->abi))
    throw UserError(fmt::format("keel_plugin_entry is too small ({} bytes) to hold an ABI version",
                                e->struct_size));
  if (e->abi.major != KEEL_ABI_MAJOR)
    throw UserError(fmt::format(
        "plugin ABI {}.{} is not supported: this keel speaks ABI {}.{} (the major versions must "
        "match)",
        e->abi.major, e->abi.minor, KEEL_ABI_MAJOR, KEEL_ABI_MINOR));
  if (e->abi.minor > KEEL_ABI_MINOR)
    throw UserError(fmt::format(
        "plugin ABI {}.{} is newer than this keel's ABI {}.{}: upgrade keel to load it",
        e->abi.major, e->abi.minor, KEEL_ABI_MAJOR, KEEL_ABI_MINOR));
  if (!KEEL_HAS_FIELD(e, keel_plugin_entry_t, create) || e->create == nullptr)
    throw UserError("keel_plugin_entry has no create function");
  const keel_plugin_descriptor_t *d = e->descriptor;
  if (d == nullptr) throw UserError("keel_plugin_entry has no descriptor");
  if (!KEEL_HAS_FIELD(d, keel_plugin_descriptor_t, requires_torch))
    throw UserError(fmt::format("descriptor is too small ({} bytes; ABI 1.0 needs {})",
                                d->struct_size, sizeof(keel_plugin_descriptor_t)));
  const std::pair<const char *, const char *> required[] = {
      {"id", d->id}, {"name", d->name}, {"version", d->version},
      {"description", d->description}, {"license", d->license}};
  for (auto [field, value] : required)
    if (empty(value)) throw UserError(fmt::format("descriptor is missing the required field '{}'", field));
  if (d->vendor == nullptr) throw UserError("descriptor is missing the required field 'vendor'");
  static const std::regex name_re("[a-z][a-z0-9_]*"), id_re("[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)+"),
      semver_re("\\d+\\.\\d+\\.\\d+([-+][0-9A-Za-z.+-]*)?");
  if (!std::regex_match(d->name, name_re))
    throw UserError(fmt::format("descriptor name '{}' must be lower_snake_case", d->name));
  if (!std::regex_match(d->id, id_re))
    throw UserError(fmt::format("descriptor id '{}' must be reverse-DNS (org.example.name)", d->id));
  if (!std::regex_match(d->version, semver_re))
    throw UserError(fmt::format("descriptor version '{}' is not semver (1.2.3)", d->version));
  if (d->kind < KEEL_KIND_SCHEDULER || d->kind > KEEL_KIND_OTHER)
    throw UserError(fmt::format("descriptor kind {} is not a known kind", d->kind));
  if (d->hooks & ~kKnownHooks)
    throw UserError(fmt::format("descriptor lists unknown hook bits {:#x}", d->hooks & ~kKnownHooks));
  if (uint64_t need = required_hooks(d->kind); need && !(d->hooks & need))
    throw UserError(fmt::format("a {} plugin must implement the {} hook", kind_name(d->kind),
                                hook_names(need)));
  if (d->n_params > 0 && d->params == nullptr)
    throw UserError("descriptor declares parameters but gives no parameter table");
  for (uint32_t i = 0; i < d->n_params; ++i) {
    const keel_param_spec_t *p = d->params[i];
    if (p == nullptr || p->struct_size < offsetof(keel_param_spec_t, description) + sizeof(p->description))
      throw UserError(fmt::format("parameter spec #{} is missing or too small", i));
    if (empty(p->name)) throw UserError(fmt::format("parameter spec #{} has no name", i));
    check_param_spec(*p);  // type, bounds, default
  }
  if (d->requires_torch != nullptr && std::string(d->requires_torch) != host_torch_version())
    throw UserError(fmt::format("plugin was built against torch {}, but this keel uses torch {}",
                                d->requires_torch, host_torch_version()));
}

const PluginLibrary &load_plugin_library(const fs::path &path) {
  // Never unloaded (ARCHITECTURE.md §2 rule 7): the libraries and the records live forever.
  static auto *loaded = new std::map<fs::path, PluginLibrary>();
  static auto *handles = new std::vector<boost::dll::shared_library>();
  std::error_code ec;
  fs::path key = fs::weakly_canonical(path, ec);
  if (ec) key = path;
  if (auto it = loaded->find(key); it != loaded->end()) return it->second;
  if (!fs::exists(path)) throw UserError(fmt::format("{}: no such file", path.string()));

  boost::dll::shared_library lib;
  try {
    lib.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception &e) {
    throw UserError(fmt::format("{}: cannot load the library: {}", path.string(), e.what()));
  }
  if (!lib.has(KEEL_PLUGIN_ENTRY_SYMBOL)) {
    handles->push_back(std::move(lib));
    throw UserError(fmt::format("{}: not a keel plugin (no '{}' symbol)", path.string(),
                                KEEL_PLUGIN_ENTRY_SYMBOL));
  }
  PluginLibrary rec;
  rec.path = key;
  rec.entry = &lib.get<const keel_plugin_entry_t>(KEEL_PLUGIN_ENTRY_SYMBOL);
  handles->push_back(std::move(lib));
  try {
    validate_plugin_entry(rec.entry);  // checks the entry's struct_size before its descriptor field is read
  } catch (const UserError &e) {
    throw UserError(fmt::format("{}: {}", path.string(), e.what()));
  }
  rec.descriptor = rec.entry->descriptor;
  return loaded->emplace(key, rec).first->second;
}

}  // namespace keel
