// Plugin parameters: typed checking of TOML values against a descriptor's keel_param_spec_t list,
// defaults filled in, and the keel_params_t view a plugin reads them through.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "keel/keel_plugin.h"

namespace keel {

// Checks a spec on its own: known type, sane bounds, a default that parses and fits. Throws
// UserError naming the parameter.
void check_param_spec(const keel_param_spec_t &spec);

// What a parameter accepts, in words: "a number in [0, 1]", "one of \"uniform\", \"others\"".
std::string expected_text(const keel_param_spec_t &spec);

// Why `value` does not fit `spec`, or "" when it does.
std::string param_mismatch(const keel_param_spec_t &spec, const toml::node &value);

// The default value of a spec as a TOML node (the spec must have one).
toml::table parse_default(const keel_param_spec_t &spec);  // {"<name>": value}

// Where a key came from, for error messages: "file:line:col" or "--set".
using WhereFn = std::function<std::string(const std::string &key)>;

// Checks `given` against `specs` (unknown keys, types, ranges, missing required ones) and returns
// a table with every default filled in. Errors are UserError("<where>: <plugin>: ...").
toml::table resolve_params(const std::string &plugin, const std::vector<const keel_param_spec_t *> &specs,
                           const toml::table &given, const WhereFn &where);

// The keel_params_t a plugin instance reads; owns its table and every string it hands out.
class ParamsView {
 public:
  explicit ParamsView(toml::table values);
  const keel_params_t *c() const { return &c_; }
  const toml::table &values() const { return values_; }

 private:
  const toml::node *find(const char *path) const;
  const char *keep(std::string s) const;

  toml::table values_;
  keel_params_t c_{};
  mutable std::vector<std::unique_ptr<std::string>> strings_;  // stable addresses
};

// A node as JSON text (tables, arrays, values).
std::string to_json(const toml::node &node);
nlohmann::json to_json_value(const toml::node &node);

}  // namespace keel
