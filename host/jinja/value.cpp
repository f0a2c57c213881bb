#include "jinja/value.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tokenizer/utf8.hpp"

namespace keel::jinja {

Value Value::undefined(std::string what) {
  Value v;
  v.s = std::move(what);
  return v;
}
Value Value::none() {
  Value v;
  v.type = Type::none;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.type = Type::boolean;
  v.b = x;
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.type = Type::integer;
  v.i = x;
  return v;
}
Value Value::floating(double x) {
  Value v;
  v.type = Type::floating;
  v.f = x;
  return v;
}
Value Value::string(std::string x) {
  Value v;
  v.type = Type::string;
  v.s = std::move(x);
  return v;
}
Value Value::make_list(List items) {
  Value v;
  v.type = Type::list;
  v.list = std::make_shared<List>(std::move(items));
  return v;
}
Value Value::make_tuple(List items) {
  Value v = make_list(std::move(items));
  v.type = Type::tuple;
  return v;
}
Value Value::make_dict() {
  Value v;
  v.type = Type::dict;
  v.obj = std::make_shared<Object>();
  return v;
}
Value Value::make_namespace() {
  Value v = make_dict();
  v.type = Type::ns;
  return v;
}
Value Value::function(std::string name, std::function<Value(Args &)> fn) {
  Value v;
  v.type = Type::callable;
  v.fn = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

namespace {
template <class Json>
Value value_from_json(const Json &j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value::boolean(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::integer(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return Value::integer(static_cast<int64_t>(j.template get<uint64_t>()));
    case nlohmann::json::value_t::number_float: return Value::floating(j.template get<double>());
    case nlohmann::json::value_t::string: return Value::string(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      List items;
      items.reserve(j.size());
      for (const auto &x : j) items.push_back(value_from_json(x));
      return Value::make_list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Value d = Value::make_dict();
      d.obj->items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) d.obj->items.emplace_back(it.key(), value_from_json(it.value()));
      return d;
    }
    default: return Value::undefined();
  }
}
}  // namespace

Value Value::from_json(const nlohmann::json &j) { return value_from_json(j); }
Value Value::from_json(const nlohmann::ordered_json &j) { return value_from_json(j); }

const Value *Object::find(std::string_view key) const {
  for (const auto &[k, v] : items)
    if (k == key) return &v;
  return nullptr;
}
Value *Object::find(std::string_view key) {
  for (auto &[k, v] : items)
    if (k == key) return &v;
  return nullptr;
}
void Object::set(std::string_view key, Value v) {
  if (Value *x = find(key)) *x = std::move(v);
  else items.emplace_back(std::string(key), std::move(v));
}
bool Object::erase(std::string_view key) {
  for (auto it = items.begin(); it != items.end(); ++it)
    if (it->first == key) {
      items.erase(it);
      return true;
    }
  return false;
}

Value Args::get(size_t index, std::string_view name, Value fallback) {
  if (index < pos.size()) {
    used_pos = std::max(used_pos, index + 1);
    return pos[index];
  }
  for (const auto &[k, v] : kw)
    if (k == name) {
      used_kw.emplace_back(k);
      return v;
    }
  return fallback;
}
bool Args::has(size_t index, std::string_view name) const {
  if (index < pos.size()) return true;
  for (const auto &kv : kw)
    if (kv.first == name) return true;
  return false;
}
void Args::done(std::string_view what) const {
  if (used_pos < pos.size())
    throw Error(fmt::format("{} takes {} positional argument(s), got {}", what, used_pos, pos.size()));
  for (const auto &kv : kw)
    if (std::find(used_kw.begin(), used_kw.end(), kv.first) == used_kw.end())
      throw Error(fmt::format("{} got an unexpected keyword argument '{}'", what, kv.first));
}

bool truthy(const Value &v) {
  switch (v.type) {
    case Value::Type::undefined:
    case Value::Type::none: return false;
    case Value::Type::boolean: return v.b;
    case Value::Type::integer: return v.i != 0;
    case Value::Type::floating: return v.f != 0;
    case Value::Type::string: return !v.s.empty();
    case Value::Type::list:
    case Value::Type::tuple: return !v.list->empty();
    case Value::Type::dict: return !v.obj->items.empty();
    default: return true;
  }
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: positional for exponents -4..15.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  int exp = std::stoi(sci.substr(e + 1));
  bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
      out = digits + std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, static_cast<size_t>(exp) + 1) + "." + digits.substr(static_cast<size_t>(exp) + 1);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += fmt::format("e{}{:02d}", exp < 0 ? '-' : '+', std::abs(exp));
  }
  return neg ? "-" + out : out;
}

namespace {

std::string str_repr(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos, has_double = s.find('"') != std::string_view::npos;
  char q = has_single && !has_double ? '"' : '\'';
  std::string out(1, q);
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    char32_t c = utf8::next(s, i);
    if (c == static_cast<char32_t>(q) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || (c >= 0x7f && c < 0xa0)) out += fmt::format("\\x{:02x}", static_cast<unsigned>(c));
    else out.append(s.substr(start, i - start));
  }
  out += q;
  return out;
}

void json_string(std::string &out, std::string_view s, bool ensure_ascii) {
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    char32_t c = utf8::next(s, i);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c > 0x7e)) {
          if (c >= 0x10000) {
            char32_t v = c - 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
          } else {
            out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
          }
        } else {
          out.append(s.substr(start, i - start));
        }
    }
  }
  out += '"';
}

void json_into(std::string &out, const Value &v, const JsonStyle &st, int depth) {
  auto newline = [&](int d) {
    if (st.indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(st.indent) * static_cast<size_t>(d), ' ');
  };
  const std::string &item_sep = st.item_sep.empty() ? (st.indent < 0 ? std::string(", ") : std::string(",")) : st.item_sep;
  const std::string &key_sep = st.key_sep.empty() ? std::string(": ") : st.key_sep;
  switch (v.type) {
    case Value::Type::none: out += "null"; return;
    case Value::Type::boolean: out += v.b ? "true" : "false"; return;
    case Value::Type::integer: out += std::to_string(v.i); return;
    case Value::Type::floating:
      if (std::isnan(v.f)) out += "NaN";
      else if (std::isinf(v.f)) out += v.f > 0 ? "Infinity" : "-Infinity";
      else out += float_repr(v.f);
      return;
    case Value::Type::string: json_string(out, v.s, st.ensure_ascii); return;
    case Value::Type::list:
    case Value::Type::tuple: {
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += item_sep;
        newline(depth + 1);
        json_into(out, (*v.list)[k], st, depth + 1);
      }
      newline(depth);
      out += ']';
      return;
    }
    case Value::Type::dict:
    case Value::Type::ns: {
      if (v.obj->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value> *> items;
      for (const auto &kv : v.obj->items) items.push_back(&kv);
      if (st.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](auto *a, auto *b) { return a->first < b->first; });
      out += '{';
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += item_sep;
        newline(depth + 1);
        json_string(out, items[k]->first, st.ensure_ascii);
        out += key_sep;
        json_into(out, items[k]->second, st, depth + 1);
      }
      newline(depth);
      out += '}';
      return;
    }
    default: throw Error(fmt::format("Object of type {} is not JSON serializable", type_name(v)));
  }
}

}  // namespace

std::string repr(const Value &v) {
  switch (v.type) {
    case Value::Type::string: return str_repr(v.s);
    case Value::Type::list:
    case Value::Type::tuple: {
      bool tuple = v.type == Value::Type::tuple;
      std::string out(1, tuple ? '(' : '[');
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += ", ";
        out += repr((*v.list)[k]);
      }
      if (tuple && v.list->size() == 1) out += ',';
      out += tuple ? ')' : ']';
      return out;
    }
    case Value::Type::dict: {
      std::string out = "{";
      for (size_t k = 0; k < v.obj->items.size(); ++k) {
        if (k) out += ", ";
        out += str_repr(v.obj->items[k].first) + ": " + repr(v.obj->items[k].second);
      }
      return out + "}";
    }
    default: return to_str(v);
  }
}

std::string to_str(const Value &v) {
  switch (v.type) {
    case Value::Type::undefined: return "";
    case Value::Type::none: return "None";
    case Value::Type::boolean: return v.b ? "True" : "False";
    case Value::Type::integer: return std::to_string(v.i);
    case Value::Type::floating: return float_repr(v.f);
    case Value::Type::string: return v.s;
    case Value::Type::ns: return "<Namespace>";
    case Value::Type::callable: return fmt::format("<function {}>", v.fn->name);
    default: return repr(v);
  }
}

std::string to_json(const Value &v, const JsonStyle &style) {
  std::string out;
  json_into(out, v, style, 0);
  return out;
}

const char *type_name(const Value &v) {
  switch (v.type) {
    case Value::Type::undefined: return "Undefined";
    case Value::Type::none: return "NoneType";
    case Value::Type::boolean: return "bool";
    case Value::Type::integer: return "int";
    case Value::Type::floating: return "float";
    case Value::Type::string: return "str";
    case Value::Type::list: return "list";
    case Value::Type::tuple: return "tuple";
    case Value::Type::dict: return "dict";
    case Value::Type::ns: return "Namespace";
    default: return "function";
  }
}

namespace {
double as_double(const Value &v) {
  return v.type == Value::Type::floating ? v.f : v.type == Value::Type::integer ? static_cast<double>(v.i) : v.b ? 1.0 : 0.0;
}
bool both_ints(const Value &a, const Value &b) {
  return a.type != Value::Type::floating && b.type != Value::Type::floating;
}
int64_t as_int(const Value &v) { return v.type == Value::Type::integer ? v.i : v.b ? 1 : 0; }
}  // namespace

bool equal(const Value &a, const Value &b) {
  if (a.is_number() && b.is_number())
    return both_ints(a, b) ? as_int(a) == as_int(b) : as_double(a) == as_double(b);
  if (a.is_sequence() && b.is_sequence()) {
    if (a.type != b.type || a.list->size() != b.list->size()) return false;
    for (size_t k = 0; k < a.list->size(); ++k)
      if (!equal((*a.list)[k], (*b.list)[k])) return false;
    return true;
  }
  if (a.type != b.type) return false;
  switch (a.type) {
    case Value::Type::undefined:
    case Value::Type::none: return true;
    case Value::Type::string: return a.s == b.s;
    case Value::Type::dict: {
      if (a.obj->items.size() != b.obj->items.size()) return false;
      for (const auto &[k, v] : a.obj->items) {
        const Value *w = b.obj->find(k);
        if (!w || !equal(v, *w)) return false;
      }
      return true;
    }
    default: return a.obj == b.obj && a.fn == b.fn;
  }
}

bool less(const Value &a, const Value &b) {
  if (a.is_number() && b.is_number()) return both_ints(a, b) ? as_int(a) < as_int(b) : as_double(a) < as_double(b);
  if (a.is_string() && b.is_string()) return a.s < b.s;  // UTF-8 byte order is code point order
  if (a.is_sequence() && b.is_sequence()) {
    size_t n = std::min(a.list->size(), b.list->size());
    for (size_t k = 0; k < n; ++k) {
      if (less((*a.list)[k], (*b.list)[k])) return true;
      if (less((*b.list)[k], (*a.list)[k])) return false;
    }
    return a.list->size() < b.list->size();
  }
  throw Error(fmt::format("'<' not supported between instances of '{}' and '{}'", type_name(a), type_name(b)));
}

size_t char_count(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}

std::vector<size_t> char_offsets(std::string_view s) {
  std::vector<size_t> out;
  out.reserve(s.size() + 1);
  for (size_t k = 0; k < s.size(); ++k)
    if ((static_cast<unsigned char>(s[k]) & 0xc0) != 0x80) out.push_back(k);
  out.push_back(s.size());
  return out;
}

Error integer_overflow(std::string_view op) {
  return Error(fmt::format("integer overflow in {} (integers here are 64-bit)", op));
}

void check_string_size(size_t bytes) {
  if (bytes > kMaxStringBytes)
    throw Error(fmt::format("a string of {} bytes exceeds the sandbox's {} MiB", bytes, kMaxStringBytes >> 20));
}

}  // namespace keel::jinja
