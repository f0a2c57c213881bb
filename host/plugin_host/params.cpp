#include "plugin_host/params.hpp"

#include <cmath>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/errors.hpp"

namespace keel {

namespace {

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool bounded(const keel_param_spec_t &s) { return !(s.min == 0 && s.max == 0); }

std::string choices_text(const char *choices) {
  std::string out;
  for (const std::string &c : split(choices, '|')) out += (out.empty() ? "" : ", ") + ("\"" + c + "\"");
  return out;
}

bool in_choices(const char *choices, const std::string &v) {
  if (choices == nullptr) return true;
  for (const std::string &c : split(choices, '|'))
    if (c == v) return true;
  return false;
}

std::string type_word(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date/time";
  }
}

std::string fmt_num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

}  // namespace

std::string expected_text(const keel_param_spec_t &s) {
  std::string range = bounded(s) ? fmt::format(" in [{}, {}]", fmt_num(s.min), fmt_num(s.max)) : "";
  switch (s.type) {
    case KEEL_PARAM_BOOL: return "true or false";
    case KEEL_PARAM_INT: return "an integer" + range;
    case KEEL_PARAM_FLOAT: return "a number" + range;
    case KEEL_PARAM_STRING:
      return s.choices ? "one of " + choices_text(s.choices) : "a string";
    case KEEL_PARAM_STRING_LIST:
      return s.choices ? "an array of strings from " + choices_text(s.choices) : "an array of strings";
    case KEEL_PARAM_ARRAY: return "an array";
    case KEEL_PARAM_TABLE: return "a table";
    default: return "(unknown type)";
  }
}

std::string param_mismatch(const keel_param_spec_t &s, const toml::node &v) {
  auto wrong = [&] {
    return fmt::format("expected {}, got {}", expected_text(s), type_word(v.type()));
  };
  auto range = [&](double x) -> std::string {
    if (!std::isfinite(x)) return fmt::format("expected {}, got {}", expected_text(s), fmt_num(x));
    if (bounded(s) && (x < s.min || x > s.max))
      return fmt::format("expected {}, got {}", expected_text(s), fmt_num(x));
    return "";
  };
  switch (s.type) {
    case KEEL_PARAM_BOOL: return v.is_boolean() ? "" : wrong();
    case KEEL_PARAM_INT: return v.is_integer() ? range(double(*v.value<int64_t>())) : wrong();
    case KEEL_PARAM_FLOAT: return v.is_number() ? range(*v.value<double>()) : wrong();
    case KEEL_PARAM_STRING:
      if (!v.is_string()) return wrong();
      if (!in_choices(s.choices, *v.value<std::string>()))
        return fmt::format("expected {}, got \"{}\"", expected_text(s), *v.value<std::string>());
      return "";
    case KEEL_PARAM_STRING_LIST:
      if (!v.is_array()) return wrong();
      for (const toml::node &e : *v.as_array()) {
        if (!e.is_string()) return fmt::format("expected {}, got an element that is {}", expected_text(s), type_word(e.type()));
        if (!in_choices(s.choices, *e.value<std::string>()))
          return fmt::format("expected {}, got \"{}\"", expected_text(s), *e.value<std::string>());
      }
      return "";
    case KEEL_PARAM_ARRAY: return v.is_array() ? "" : wrong();
    case KEEL_PARAM_TABLE: return v.is_table() ? "" : wrong();
    default: return "the plugin declares an unknown parameter type";
  }
}

toml::table parse_default(const keel_param_spec_t &s) {
  try {
    return toml::parse(fmt::format("{} = {}", "v", s.default_value));
  } catch (const toml::parse_error &e) {
    throw UserError(fmt::format("parameter '{}': default '{}' is not a TOML value: {}", s.name,
                                s.default_value, e.description()));
  }
}

void check_param_spec(const keel_param_spec_t &s) {
  if (s.type < KEEL_PARAM_BOOL || s.type > KEEL_PARAM_TABLE)
    throw UserError(fmt::format("parameter '{}' has unknown type {}", s.name, s.type));
  if (bounded(s) && !(s.min <= s.max))
    throw UserError(fmt::format("parameter '{}' has min {} > max {}", s.name, s.min, s.max));
  if (s.default_value == nullptr) return;
  toml::table t = parse_default(s);
  if (std::string why = param_mismatch(s, *t.get("v")); !why.empty())
    throw UserError(fmt::format("parameter '{}': default {} does not fit: {}", s.name, s.default_value, why));
}

toml::table resolve_params(const std::string &plugin, const std::vector<const keel_param_spec_t *> &specs,
                           const toml::table &given, const WhereFn &where) {
  toml::table out;
  for (auto &&[key, value] : given) {
    const std::string k(key.str());
    const keel_param_spec_t *spec = nullptr;
    for (const keel_param_spec_t *s : specs)
      if (k == s->name) spec = s;
    if (spec == nullptr) {
      std::string known;
      for (const keel_param_spec_t *s : specs) known += (known.empty() ? "" : ", ") + std::string(s->name);
      throw UserError(fmt::format("{}: {}: unknown parameter '{}'. {} accepts {}", where(k), plugin, k,
                                  plugin, known.empty() ? "no parameters" : known));
    }
    if (std::string why = param_mismatch(*spec, value); !why.empty())
      throw UserError(fmt::format("{}: {}: parameter '{}': {}", where(k), plugin, k, why));
    out.insert_or_assign(k, value);
  }
  for (const keel_param_spec_t *s : specs) {
    if (out.contains(s->name)) continue;
    if (s->default_value == nullptr)
      throw UserError(fmt::format("{}: {}: missing required parameter '{}' ({})", where(""), plugin,
                                  s->name, expected_text(*s)));
    toml::table d = parse_default(*s);
    out.insert_or_assign(s->name, *d.get("v"));
  }
  return out;
}

nlohmann::json to_json_value(const toml::node &node) {
  if (const toml::table *t = node.as_table()) {
    nlohmann::json j = nlohmann::json::object();
    for (auto &&[k, v] : *t) j[std::string(k.str())] = to_json_value(v);
    return j;
  }
  if (const toml::array *a = node.as_array()) {
    nlohmann::json j = nlohmann::json::array();
    for (const toml::node &v : *a) j.push_back(to_json_value(v));
    return j;
  }
  if (auto v = node.as_boolean()) return v->get();
  if (auto v = node.as_integer()) return v->get();
  if (auto v = node.as_floating_point()) return v->get();
  if (auto v = node.as_string()) return v->get();
  std::ostringstream o;  // dates and times: their TOML text
  node.visit([&](const auto &v) { o << v; });
  return o.str();
}

std::string to_json(const toml::node &node) { return to_json_value(node).dump(); }

// ---- the keel_params_t view --------------------------------------------------------------------

static const ParamsView *view_of(const keel_params_t *p) { return static_cast<const ParamsView *>(p->ctx); }

ParamsView::ParamsView(toml::table values) : values_(std::move(values)) {
  c_.struct_size = sizeof c_;
  c_.ctx = this;
  c_.has = [](const keel_params_t *p, const char *path) -> int32_t {
    return view_of(p)->find(path) != nullptr;
  };
  c_.get_bool = [](const keel_params_t *p, const char *path, int32_t *out) -> keel_status_t {
    const toml::node *n = view_of(p)->find(path);
    if (!n) return KEEL_NOT_FOUND;
    if (!n->is_boolean()) return KEEL_INVALID_ARGUMENT;
    *out = *n->value<bool>() ? 1 : 0;
    return KEEL_OK;
  };
  c_.get_int = [](const keel_params_t *p, const char *path, int64_t *out) -> keel_status_t {
    const toml::node *n = view_of(p)->find(path);
    if (!n) return KEEL_NOT_FOUND;
    if (!n->is_integer()) return KEEL_INVALID_ARGUMENT;
    *out = *n->value<int64_t>();
    return KEEL_OK;
  };
  c_.get_double = [](const keel_params_t *p, const char *path, double *out) -> keel_status_t {
    const toml::node *n = view_of(p)->find(path);
    if (!n) return KEEL_NOT_FOUND;
    if (!n->is_number()) return KEEL_INVALID_ARGUMENT;
    *out = *n->value<double>();
    return KEEL_OK;
  };
  c_.get_string = [](const keel_params_t *p, const char *path, const char **out) -> keel_status_t {
    auto *v = view_of(p);
    const toml::node *n = v->find(path);
    if (!n) return KEEL_NOT_FOUND;
    if (!n->is_string()) return KEEL_INVALID_ARGUMENT;
    *out = v->keep(*n->value<std::string>());
    return KEEL_OK;
  };
  c_.size = [](const keel_params_t *p, const char *path, uint64_t *out) -> keel_status_t {
    const toml::node *n = view_of(p)->find(path);
    if (!n) return KEEL_NOT_FOUND;
    if (const toml::array *a = n->as_array()) *out = a->size();
    else if (const toml::table *t = n->as_table()) *out = t->size();
    else return KEEL_INVALID_ARGUMENT;
    return KEEL_OK;
  };
  c_.key_at = [](const keel_params_t *p, const char *path, uint64_t i, const char **out) -> keel_status_t {
    auto *v = view_of(p);
    const toml::node *n = v->find(path);
    if (!n) return KEEL_NOT_FOUND;
    const toml::table *t = n->as_table();
    if (!t) return KEEL_INVALID_ARGUMENT;
    if (i >= t->size()) return KEEL_NOT_FOUND;
    auto it = t->begin();
    std::advance(it, static_cast<std::ptrdiff_t>(i));
    *out = v->keep(std::string(it->first.str()));
    return KEEL_OK;
  };
  c_.get_json = [](const keel_params_t *p, const char *path, const char **out) -> keel_status_t {
    auto *v = view_of(p);
    const toml::node *n = v->find(path);
    if (!n) return KEEL_NOT_FOUND;
    *out = v->keep(to_json(*n));
    return KEEL_OK;
  };
}

const toml::node *ParamsView::find(const char *path) const {
  if (path == nullptr) return nullptr;
  const toml::node *n = &values_;
  if (*path == '\0') return n;
  for (const std::string &seg : split(path, '.')) {
    if (const toml::table *t = n->as_table()) {
      n = t->get(seg);
    } else if (const toml::array *a = n->as_array()) {
      char *end = nullptr;
      unsigned long i = std::strtoul(seg.c_str(), &end, 10);
      if (seg.empty() || *end != '\0' || i >= a->size()) return nullptr;
      n = a->get(i);
    } else {
      return nullptr;
    }
    if (n == nullptr) return nullptr;
  }
  return n;
}

const char *ParamsView::keep(std::string s) const {
  for (const auto &p : strings_)
    if (*p == s) return p->c_str();
  strings_.push_back(std::make_unique<std::string>(std::move(s)));
  return strings_.back()->c_str();
}

}  // namespace keel
