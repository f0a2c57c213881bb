// Loading plugin libraries: dlopen through Boost.DLL (rtld_now | rtld_local, never unloaded), then
// every check of the ABI contract (ARCHITECTURE.md §2) on the entry and its descriptor, before any
// plugin is created.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "keel/keel_plugin.h"

namespace keel {

struct PluginLibrary {
  std::filesystem::path path;
  const keel_plugin_entry_t *entry = nullptr;
  const keel_plugin_descriptor_t *descriptor = nullptr;

  std::string name() const { return descriptor->name; }
  std::vector<const keel_param_spec_t *> params() const {
    return {descriptor->params, descriptor->params + descriptor->n_params};
  }
};

// Loads and validates the library at `path` (cached by canonical path). Throws UserError with
// the reason: not loadable, no keel_plugin_entry, ABI versions, descriptor fields, torch version.
const PluginLibrary &load_plugin_library(const std::filesystem::path &path);

// Every check of an entry and its descriptor that needs no instance (the entry's struct_size is
// checked before its descriptor field is read). Throws UserError("<reason>").
void validate_plugin_entry(const keel_plugin_entry_t *entry);

// The torch version this keel was built with ("2.14.1"), compared with requires_torch.
std::string host_torch_version();

std::string kind_name(keel_kind_t kind);
// The hook names of a KEEL_HOOK_* mask, in call order: "lr, on_eval".
std::string hook_names(uint64_t hooks);

}  // namespace keel
