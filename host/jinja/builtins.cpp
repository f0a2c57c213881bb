// What a chat template can call: Jinja2's filters and tests, the Python methods of str, dict and
// list that the sandbox allows (not the ones that mutate: transformers' ImmutableSandboxedEnvironment
// refuses list.append and dict.pop, so keel does too), the globals transformers adds, and Python's
// operators.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <unordered_map>

#include <fmt/format.h>
#include <unicode/uchar.h>

#include "jinja/ast.hpp"
#include "tokenizer/utf8.hpp"

namespace keel::jinja {
namespace {

using FilterFn = Value (*)(const Value &, Args &);
using TestFn = bool (*)(const Value &, Args &);
using MethodFn = Value (*)(const Value &, Args &);

std::string need_str(const Value &v, const char *what) {
  if (!v.is_string()) throw Error(fmt::format("{}: expected a string, got {}", what, type_name(v)));
  return v.s;
}
int64_t need_int(const Value &v, const char *what) {
  if (v.type == Value::Type::integer) return v.i;
  if (v.type == Value::Type::boolean) return v.b;
  throw Error(fmt::format("{}: expected an integer, got {}", what, type_name(v)));
}
bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

// ---- strings ----------------------------------------------------------------------------------

std::string map_case(std::string_view s, bool upper) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    char32_t c = utf8::next(s, i);
    utf8::append(out, static_cast<char32_t>(upper ? u_toupper(static_cast<UChar32>(c)) : u_tolower(static_cast<UChar32>(c))));
  }
  return out;
}

std::string capitalize(std::string_view s) {
  if (s.empty()) return {};
  size_t i = 0;
  char32_t c = utf8::next(s, i);
  std::string out;
  utf8::append(out, static_cast<char32_t>(u_totitle(static_cast<UChar32>(c))));
  return out + map_case(s.substr(i), false);
}

bool in_chars(char32_t c, std::string_view chars) {
  size_t i = 0;
  while (i < chars.size())
    if (utf8::next(chars, i) == c) return true;
  return false;
}

// Python's str.strip/lstrip/rstrip: whitespace, or the characters of `chars`.
std::string strip(std::string_view s, const Value &chars, bool left, bool right) {
  bool ws = chars.is_none() || chars.is_undefined();
  const std::string cs = ws ? std::string() : need_str(chars, "strip");
  auto drop = [&](char32_t c) { return ws ? utf8::is_space(c) : in_chars(c, cs); };
  size_t b = 0, e = s.size();
  if (left)
    while (b < e) {
      size_t q = b;
      if (!drop(utf8::next(s, q))) break;
      b = q;
    }
  if (right)
    while (e > b) {
      size_t start;
      if (!drop(utf8::prev(s, e, start))) break;
      e = start;
    }
  return std::string(s.substr(b, e - b));
}

List split(std::string_view s, const Value &sep, int64_t maxsplit) {
  List out;
  if (sep.is_none() || sep.is_undefined()) {  // runs of whitespace, no empty pieces
    size_t i = 0;
    while (true) {
      while (i < s.size()) {
        size_t q = i;
        if (!utf8::is_space(utf8::next(s, q))) break;
        i = q;
      }
      if (i >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        std::string rest(s.substr(i));
        out.push_back(Value::string(strip(rest, Value::none(), false, true)));
        break;
      }
      size_t j = i;
      while (j < s.size()) {
        size_t q = j;
        if (utf8::is_space(utf8::next(s, q))) break;
        j = q;
      }
      out.push_back(Value::string(std::string(s.substr(i, j - i))));
      i = j;
    }
    return out;
  }
  const std::string d = need_str(sep, "split");
  if (d.empty()) throw Error("empty separator");
  size_t i = 0;
  while (true) {
    size_t j = s.find(d, i);
    if (j == std::string_view::npos || (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
      out.push_back(Value::string(std::string(s.substr(i))));
      return out;
    }
    out.push_back(Value::string(std::string(s.substr(i, j - i))));
    i = j + d.size();
  }
}

std::string replace(std::string_view s, std::string_view old, std::string_view rep, int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts `rep` around every character
    std::vector<size_t> offs = char_offsets(s);
    int64_t n = 0;
    for (size_t k = 0; k + 1 < offs.size(); ++k) {
      if (count < 0 || n < count) {
        out += rep;
        ++n;
      }
      out += s.substr(offs[k], offs[k + 1] - offs[k]);
    }
    if (count < 0 || n < count) out += rep;
    return out;
  }
  size_t i = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t j = s.find(old, i);
    if (j == std::string_view::npos) break;
    out += s.substr(i, j - i);
    out += rep;
    i = j + old.size();
    ++n;
  }
  out += s.substr(i);
  return out;
}

// Python's slice.indices.
void slice_indices(int64_t len, const Value &vstart, const Value &vstop, const Value &vstep, int64_t &start, int64_t &stop,
                   int64_t &step) {
  step = vstep.is_none() ? 1 : need_int(vstep, "slice step");
  if (step == 0) throw Error("slice step cannot be zero");
  auto adjust = [&](const Value &v, int64_t dflt, int64_t lo, int64_t hi) {
    if (v.is_none()) return dflt;
    int64_t x = need_int(v, "slice index");
    if (x < 0) x += len;
    return std::clamp(x, lo, hi);
  };
  if (step > 0) {
    start = adjust(vstart, 0, 0, len);
    stop = adjust(vstop, len, 0, len);
  } else {
    start = adjust(vstart, len - 1, -1, len - 1);
    stop = adjust(vstop, -1, -1, len - 1);
  }
}

Value slice(const Value &obj, const Value &a, const Value &b, const Value &c) {
  int64_t start, stop, step;
  if (obj.is_string()) {
    bool ascii = is_ascii(obj.s);
    std::vector<size_t> offs = ascii ? std::vector<size_t>() : char_offsets(obj.s);
    int64_t len = ascii ? static_cast<int64_t>(obj.s.size()) : static_cast<int64_t>(offs.size()) - 1;
    slice_indices(len, a, b, c, start, stop, step);
    std::string out;
    auto piece = [&](int64_t k) {
      if (ascii) out += obj.s[static_cast<size_t>(k)];
      else out += obj.s.substr(offs[static_cast<size_t>(k)], offs[static_cast<size_t>(k) + 1] - offs[static_cast<size_t>(k)]);
    };
    if (step == 1 && ascii) return Value::string(start < stop ? obj.s.substr(static_cast<size_t>(start), static_cast<size_t>(stop - start)) : "");
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) piece(k);
    return Value::string(std::move(out));
  }
  if (obj.is_sequence()) {
    slice_indices(static_cast<int64_t>(obj.list->size()), a, b, c, start, stop, step);
    List out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back((*obj.list)[static_cast<size_t>(k)]);
    return obj.type == Value::Type::tuple ? Value::make_tuple(std::move(out)) : Value::make_list(std::move(out));
  }
  throw Error(fmt::format("'{}' object is not subscriptable", type_name(obj)));
}

// ---- string, dict and list methods -------------------------------------------------------------

Value str_method(const Value &self, std::string_view name, Args &a) {
  const std::string &s = self.s;
  char what[64];  // for messages; formatted without allocating, as methods are called per message
  std::snprintf(what, sizeof what, "str.%.*s()", static_cast<int>(std::min<size_t>(name.size(), 40)), name.data());
  auto done = [&](Value v) {
    a.done(what);
    return v;
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return done(Value::string(strip(s, a.get(0, "chars", Value::none()), name != "rstrip", name != "lstrip")));
  if (name == "split") {
    Value sep = a.get(0, "sep", Value::none());
    return done(Value::make_list(split(s, sep, need_int(a.get(1, "maxsplit", Value::integer(-1)), "maxsplit"))));
  }
  if (name == "rsplit") {
    Value sep = a.get(0, "sep", Value::none());
    int64_t maxsplit = need_int(a.get(1, "maxsplit", Value::integer(-1)), "maxsplit");
    if (maxsplit < 0) return done(Value::make_list(split(s, sep, -1)));
    if (sep.is_none()) throw Error("str.rsplit() with maxsplit and no separator is not supported");
    const std::string d = need_str(sep, "rsplit");
    List out;
    size_t end = s.size();
    while (static_cast<int64_t>(out.size()) < maxsplit) {
      size_t j = end < d.size() ? std::string::npos : s.rfind(d, end - d.size());
      if (j == std::string::npos) break;
      out.insert(out.begin(), Value::string(s.substr(j + d.size(), end - j - d.size())));
      end = j;
    }
    out.insert(out.begin(), Value::string(s.substr(0, end)));
    return done(Value::make_list(std::move(out)));
  }
  if (name == "splitlines") {
    List out;
    size_t i = 0;
    while (i < s.size()) {
      size_t j = s.find_first_of("\n\r", i);
      if (j == std::string::npos) {
        out.push_back(Value::string(s.substr(i)));
        break;
      }
      out.push_back(Value::string(s.substr(i, j - i)));
      i = j + ((s[j] == '\r' && j + 1 < s.size() && s[j + 1] == '\n') ? 2 : 1);
    }
    return done(Value::make_list(std::move(out)));
  }
  if (name == "startswith" || name == "endswith") {
    Value p = a.get(0, "prefix");
    auto test = [&](const std::string &x) {
      return name == "startswith" ? s.compare(0, x.size(), x) == 0
                                  : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
    };
    if (p.is_sequence()) {
      for (const Value &x : *p.list)
        if (test(need_str(x, what))) return done(Value::boolean(true));
      return done(Value::boolean(false));
    }
    return done(Value::boolean(test(need_str(p, what))));
  }
  if (name == "replace") {
    const std::string o = need_str(a.get(0, "old"), "replace");
    const std::string r = need_str(a.get(1, "new"), "replace");
    return done(Value::string(replace(s, o, r, need_int(a.get(2, "count", Value::integer(-1)), "count"))));
  }
  if (name == "upper") return done(Value::string(map_case(s, true)));
  if (name == "lower") return done(Value::string(map_case(s, false)));
  if (name == "capitalize") return done(Value::string(capitalize(s)));
  if (name == "title") {
    std::string out;
    bool prev_cased = false;
    size_t i = 0;
    while (i < s.size()) {
      char32_t c = utf8::next(s, i);
      bool cased = u_isUAlphabetic(static_cast<UChar32>(c)) && (u_isupper(static_cast<UChar32>(c)) || u_islower(static_cast<UChar32>(c)) || u_istitle(static_cast<UChar32>(c)));
      utf8::append(out, static_cast<char32_t>(prev_cased ? u_tolower(static_cast<UChar32>(c)) : u_totitle(static_cast<UChar32>(c))));
      prev_cased = cased;
    }
    return done(Value::string(out));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    const std::string sub = need_str(a.get(0, "sub"), what);
    a.done(what);
    if (name == "count") {
      if (sub.empty()) return Value::integer(static_cast<int64_t>(char_count(s)) + 1);
      int64_t n = 0;
      for (size_t j = s.find(sub); j != std::string::npos; j = s.find(sub, j + sub.size())) ++n;
      return Value::integer(n);
    }
    size_t j = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (j == std::string::npos) {
      if (name == "index" || name == "rindex") throw Error("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(static_cast<int64_t>(char_count(std::string_view(s).substr(0, j))));
  }
  if (name == "join") {
    Value items = a.get(0, "iterable");
    a.done(what);
    std::string out;
    bool first = true;
    for (const Value &x : iterate(items)) {
      if (!first) out += s;
      first = false;
      out += need_str(x, "str.join()");
    }
    return Value::string(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const std::string x = need_str(a.get(0, "affix"), what);
    a.done(what);
    if (name == "removeprefix") return Value::string(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
    bool ends = s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
    return Value::string(ends && !x.empty() ? s.substr(0, s.size() - x.size()) : s);
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" ||
      name == "isupper") {
    a.done(what);
    if (s.empty()) return Value::boolean(false);
    bool any_cased = false;
    size_t i = 0;
    while (i < s.size()) {
      UChar32 c = static_cast<UChar32>(utf8::next(s, i));
      bool ok = true;
      if (name == "isdigit") ok = u_isdigit(c);
      else if (name == "isalpha") ok = u_isUAlphabetic(c);
      else if (name == "isalnum") ok = u_isUAlphabetic(c) || u_isdigit(c);
      else if (name == "isspace") ok = utf8::is_space(static_cast<char32_t>(c));
      else if (name == "islower") {
        if (u_isupper(c) || u_istitle(c)) ok = false;
        any_cased = any_cased || u_islower(c);
      } else {
        if (u_islower(c) || u_istitle(c)) ok = false;
        any_cased = any_cased || u_isupper(c);
      }
      if (!ok) return Value::boolean(false);
    }
    return Value::boolean((name == "islower" || name == "isupper") ? any_cased : true);
  }
  if (name == "format") {  // "{}", "{0}" and "{name}" fields, without format specs
    std::string out;
    size_t next_auto = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') {
        out += '{';
        ++i;
      } else if (s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') {
        out += '}';
        ++i;
      } else if (s[i] == '{') {
        size_t j = s.find('}', i);
        if (j == std::string::npos) throw Error("single '{' encountered in format string");
        std::string field = s.substr(i + 1, j - i - 1);
        if (field.find_first_of(":!") != std::string::npos) throw Error("format specs in str.format() are not supported");
        Value v;
        if (field.empty()) v = a.get(next_auto++, "");
        else if (std::isdigit(static_cast<unsigned char>(field[0]))) v = a.get(std::stoul(field), "");
        else v = a.get(SIZE_MAX, field);
        out += to_str(v);
        i = j;
      } else {
        out += s[i];
      }
    }
    return Value::string(std::move(out));
  }
  throw Error(fmt::format("'str' object has no attribute '{}' (or keel does not support it)", name));
}

bool is_mutating(const Value &self, std::string_view name) {
  static const char *const list_ops[] = {"append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"};
  static const char *const dict_ops[] = {"clear", "pop", "popitem", "setdefault", "update"};
  if (self.is_sequence() && self.type == Value::Type::list)
    return std::any_of(std::begin(list_ops), std::end(list_ops), [&](const char *o) { return name == o; });
  if (self.is_mapping())
    return std::any_of(std::begin(dict_ops), std::end(dict_ops), [&](const char *o) { return name == o; });
  return false;
}

}  // namespace

bool has_method(const Value &self, std::string_view name) {
  static const char *const str_ops[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith",
                                        "endswith", "replace", "upper", "lower", "capitalize", "title", "find", "rfind",
                                        "index", "rindex", "count", "join", "removeprefix", "removesuffix", "isdigit",
                                        "isalpha", "isalnum", "isspace", "islower", "isupper", "format"};
  static const char *const dict_ops[] = {"get", "items", "keys", "values", "copy"};
  static const char *const list_ops[] = {"index", "count", "copy"};
  auto in = [&](auto &set) { return std::any_of(std::begin(set), std::end(set), [&](const char *o) { return name == o; }); };
  if (self.is_string()) return in(str_ops);
  if (self.is_mapping()) return in(dict_ops) || is_mutating(self, name);
  if (self.is_sequence()) return in(list_ops) || is_mutating(self, name);
  return false;
}

namespace {

List items_of(const Value &d) {
  List out;
  out.reserve(d.obj->items.size());
  for (const auto &[k, v] : d.obj->items) out.push_back(Value::make_tuple({Value::string(k), v}));
  return out;
}

Value dict_or_list_method(const Value &self, std::string_view name, Args &a) {
  char what[64];
  std::snprintf(what, sizeof what, "%s.%.*s()", type_name(self), static_cast<int>(std::min<size_t>(name.size(), 40)), name.data());
  if (is_mutating(self, name))
    throw Error(fmt::format("access to attribute '{}' of '{}' object is unsafe (the sandbox transformers renders chat "
                            "templates in forbids changing a list or dict)",
                            name, type_name(self)));
  if (self.is_mapping()) {
    if (name == "get") {
      Value k = a.get(0, "key");
      Value d = a.get(1, "default", Value::none());
      a.done(what);
      if (!k.is_string()) return d;
      const Value *v = self.obj->find(k.s);
      return v ? *v : d;
    }
    a.done(what);
    if (name == "items") return Value::make_list(items_of(self));
    if (name == "copy") {
      Value d = Value::make_dict();
      d.obj->items = self.obj->items;
      return d;
    }
    List out;
    for (const auto &[k, v] : self.obj->items) out.push_back(name == "keys" ? Value::string(k) : v);
    return Value::make_list(std::move(out));
  }
  if (name == "copy") {
    a.done(what);
    return Value::make_list(*self.list);
  }
  Value x = a.get(0, "value");
  a.done(what);
  int64_t n = 0;
  for (size_t k = 0; k < self.list->size(); ++k)
    if (equal((*self.list)[k], x)) {
      if (name == "index") return Value::integer(static_cast<int64_t>(k));
      ++n;
    }
  if (name == "index") throw Error(fmt::format("{} is not in list", repr(x)));
  return Value::integer(n);
}

// ---- tests ------------------------------------------------------------------------------------

bool t_defined(const Value &v, Args &) { return !v.is_undefined(); }
bool t_undefined(const Value &v, Args &) { return v.is_undefined(); }
bool t_none(const Value &v, Args &) { return v.is_none(); }
bool t_boolean(const Value &v, Args &) { return v.type == Value::Type::boolean; }
bool t_true(const Value &v, Args &) { return v.type == Value::Type::boolean && v.b; }
bool t_false(const Value &v, Args &) { return v.type == Value::Type::boolean && !v.b; }
bool t_integer(const Value &v, Args &) { return v.type == Value::Type::integer; }
bool t_float(const Value &v, Args &) { return v.type == Value::Type::floating; }
bool t_number(const Value &v, Args &) { return v.is_number(); }
bool t_string(const Value &v, Args &) { return v.is_string(); }
bool t_mapping(const Value &v, Args &) { return v.is_mapping(); }
bool t_iterable(const Value &v, Args &) {
  return v.is_string() || v.is_sequence() || v.is_mapping() || v.is_undefined();
}
bool t_sequence(const Value &v, Args &) { return v.is_string() || v.is_sequence() || v.is_mapping(); }
bool t_callable(const Value &v, Args &) { return v.type == Value::Type::callable; }
bool t_escaped(const Value &, Args &) { return false; }
bool t_sameas(const Value &v, Args &a) {
  Value o = a.get(0, "other");
  if (v.type != o.type) return false;
  switch (v.type) {
    case Value::Type::none:
    case Value::Type::undefined: return true;
    case Value::Type::boolean: return v.b == o.b;
    case Value::Type::integer: return v.i == o.i;  // CPython caches small ints; others compare by value here
    case Value::Type::string: return v.s == o.s;
    default: return v.list == o.list && v.obj == o.obj && v.fn == o.fn;
  }
}
bool t_eq(const Value &v, Args &a) { return equal(v, a.get(0, "other")); }
bool t_ne(const Value &v, Args &a) { return !equal(v, a.get(0, "other")); }
bool t_lt(const Value &v, Args &a) { return less(v, a.get(0, "other")); }
bool t_gt(const Value &v, Args &a) { return less(a.get(0, "other"), v); }
bool t_le(const Value &v, Args &a) { return !less(a.get(0, "other"), v); }
bool t_ge(const Value &v, Args &a) { return !less(v, a.get(0, "other")); }
bool t_in(const Value &v, Args &a) { return contains(a.get(0, "seq"), v); }
bool t_odd(const Value &v, Args &) { return need_int(v, "odd") % 2 != 0; }
bool t_even(const Value &v, Args &) { return need_int(v, "even") % 2 == 0; }
bool t_divisibleby(const Value &v, Args &a) {
  int64_t d = need_int(a.get(0, "num"), "divisibleby");
  if (d == 0) throw Error("integer division or modulo by zero");
  return need_int(v, "divisibleby") % d == 0;
}
bool t_lower(const Value &v, Args &) { return v.is_string() && map_case(v.s, false) == v.s; }
bool t_upper(const Value &v, Args &) { return v.is_string() && map_case(v.s, true) == v.s; }

const std::unordered_map<std::string_view, TestFn> &tests() {
  static const std::unordered_map<std::string_view, TestFn> m = {
      {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none},          {"boolean", t_boolean},
      {"true", t_true},       {"false", t_false},         {"integer", t_integer},    {"float", t_float},
      {"number", t_number},   {"string", t_string},       {"mapping", t_mapping},    {"iterable", t_iterable},
      {"sequence", t_sequence}, {"callable", t_callable}, {"escaped", t_escaped},    {"sameas", t_sameas},
      {"eq", t_eq},           {"equalto", t_eq},          {"==", t_eq},              {"ne", t_ne},
      {"!=", t_ne},           {"lt", t_lt},               {"lessthan", t_lt},        {"<", t_lt},
      {"gt", t_gt},           {"greaterthan", t_gt},      {">", t_gt},               {"le", t_le},
      {"<=", t_le},           {"ge", t_ge},               {">=", t_ge},              {"in", t_in},
      {"odd", t_odd},         {"even", t_even},           {"divisibleby", t_divisibleby}, {"lower", t_lower},
      {"upper", t_upper},
  };
  return m;
}

// ---- filters ----------------------------------------------------------------------------------

// attribute "a.b" or "0" of an item, as Jinja2's make_attrgetter.
Value attr_path(const Value &item, const std::string &path) {
  Value v = item;
  size_t i = 0;
  while (true) {
    size_t j = path.find('.', i);
    std::string part = path.substr(i, j == std::string::npos ? std::string::npos : j - i);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    // More digits than an int64 holds index past any list: undefined, as in Python.
    v = digits ? (part.size() > 18 ? Value::undefined("index out of range")
                                   : get_item(v, Value::integer(std::stoll(part))))
               : get_item(v, Value::string(part));
    if (j == std::string::npos) return v;
    i = j + 1;
  }
}

Value f_length(const Value &v, Args &a) {
  a.done("length");
  if (v.is_string()) return Value::integer(static_cast<int64_t>(char_count(v.s)));
  if (v.is_sequence()) return Value::integer(static_cast<int64_t>(v.list->size()));
  if (v.is_mapping() || v.type == Value::Type::ns) return Value::integer(static_cast<int64_t>(v.obj->items.size()));
  if (v.is_undefined()) return Value::integer(0);
  throw Error(fmt::format("object of type '{}' has no len()", type_name(v)));
}
Value f_default(const Value &v, Args &a) {
  Value d = a.get(0, "default_value", Value::string(""));
  bool boolean = truthy(a.get(1, "boolean", Value::boolean(false)));
  a.done("default");
  if (v.is_undefined() || (boolean && !truthy(v))) return d;
  return v;
}
Value f_join(const Value &v, Args &a) {
  std::string sep = to_str(a.get(0, "d", Value::string("")));
  Value attr = a.get(1, "attribute", Value::none());
  a.done("join");
  std::string out;
  bool first = true;
  for (const Value &x : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(attr.is_none() ? x : attr_path(x, to_str(attr)));
  }
  return Value::string(std::move(out));
}
Value f_list(const Value &v, Args &a) {
  a.done("list");
  return Value::make_list(iterate(v));
}
Value f_first(const Value &v, Args &a) {
  a.done("first");
  List xs = iterate(v);
  return xs.empty() ? Value::undefined("No first item, sequence was empty.") : xs.front();
}
Value f_last(const Value &v, Args &a) {
  a.done("last");
  List xs = iterate(v);
  return xs.empty() ? Value::undefined("No last item, sequence was empty.") : xs.back();
}
Value f_upper(const Value &v, Args &a) {
  a.done("upper");
  return Value::string(map_case(to_str(v), true));
}
Value f_lower(const Value &v, Args &a) {
  a.done("lower");
  return Value::string(map_case(to_str(v), false));
}
Value f_capitalize(const Value &v, Args &a) {
  a.done("capitalize");
  return Value::string(capitalize(to_str(v)));
}
Value f_title(const Value &v, Args &a) {  // Jinja2's: words start after -, whitespace, ( { [ <
  a.done("title");
  std::string s = to_str(v), out;
  bool start = true;
  size_t i = 0;
  while (i < s.size()) {
    char32_t c = utf8::next(s, i);
    bool sep = utf8::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) utf8::append(out, c);
    else utf8::append(out, static_cast<char32_t>(start ? u_toupper(static_cast<UChar32>(c)) : u_tolower(static_cast<UChar32>(c))));
    start = sep;
  }
  return Value::string(std::move(out));
}
Value f_trim(const Value &v, Args &a) {
  Value chars = a.get(0, "chars", Value::none());
  a.done("trim");
  return Value::string(strip(to_str(v), chars, true, true));
}
Value f_replace(const Value &v, Args &a) {
  std::string old = to_str(a.get(0, "old")), rep = to_str(a.get(1, "new"));
  Value count = a.get(2, "count", Value::none());
  a.done("replace");
  return Value::string(replace(to_str(v), old, rep, count.is_none() ? -1 : need_int(count, "replace")));
}
Value f_string(const Value &v, Args &a) {
  a.done("string");
  return Value::string(to_str(v));
}
Value f_safe(const Value &v, Args &a) {
  a.done("safe");
  return v;
}
Value f_escape(const Value &v, Args &a) {
  a.done("escape");
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value::string(std::move(out));
}
Value f_int(const Value &v, Args &a) {
  Value dflt = a.get(0, "default", Value::integer(0));
  int64_t base = need_int(a.get(1, "base", Value::integer(10)), "int");
  a.done("int");
  if (v.type == Value::Type::integer) return v;
  if (v.type == Value::Type::boolean) return Value::integer(v.b);
  // A double converts to int64 only inside its range (outside, the cast is UB; Python gives a bigint).
  auto fits = [](double d) { return std::isfinite(d) && std::fabs(d) < 9.2e18; };
  if (v.type == Value::Type::floating) return fits(v.f) ? Value::integer(static_cast<int64_t>(v.f)) : dflt;
  if (v.is_string()) {
    std::string s = strip(v.s, Value::none(), true, true);
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    try {
      size_t used = 0;
      int64_t x = std::stoll(s, &used, static_cast<int>(base));
      if (used == s.size()) return Value::integer(x);
    } catch (const std::exception &) {
    }
    char *end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && fits(d))
      return Value::integer(static_cast<int64_t>(d));
  }
  return dflt;
}
Value f_float(const Value &v, Args &a) {
  Value dflt = a.get(0, "default", Value::floating(0));
  a.done("float");
  if (v.is_number()) return Value::floating(v.type == Value::Type::floating ? v.f : static_cast<double>(v.type == Value::Type::integer ? v.i : v.b));
  if (v.is_string()) {
    const std::string s = strip(v.s, Value::none(), true, true);
    char *end = nullptr;
    const double d = std::strtod(s.c_str(), &end);  // as Python: "1e999" is inf
    if (!s.empty() && end == s.c_str() + s.size()) return Value::floating(d);
  }
  return dflt;
}
Value f_abs(const Value &v, Args &a) {
  a.done("abs");
  if (v.type == Value::Type::floating) return Value::floating(std::fabs(v.f));
  const int64_t x = need_int(v, "abs");
  if (x == INT64_MIN) throw integer_overflow("abs");
  return Value::integer(x < 0 ? -x : x);
}
Value f_round(const Value &v, Args &a) {
  int64_t prec = need_int(a.get(0, "precision", Value::integer(0)), "round");
  std::string method = to_str(a.get(1, "method", Value::string("common")));
  a.done("round");
  double x = v.type == Value::Type::floating ? v.f : static_cast<double>(need_int(v, "round"));
  double m = std::pow(10.0, static_cast<double>(prec));
  double r;
  if (method == "common") r = std::nearbyint(x * m) / m;  // Python's round: half to even
  else if (method == "ceil") r = std::ceil(x * m) / m;
  else if (method == "floor") r = std::floor(x * m) / m;
  else throw Error("method must be common, ceil or floor");
  return Value::floating(r);
}
Value f_tojson(const Value &v, Args &a) {
  JsonStyle st;
  st.ensure_ascii = truthy(a.get(0, "ensure_ascii", Value::boolean(false)));
  Value indent = a.get(1, "indent", Value::none());
  Value seps = a.get(2, "separators", Value::none());
  st.sort_keys = truthy(a.get(3, "sort_keys", Value::boolean(false)));
  a.done("tojson");
  if (!indent.is_none()) {
    if (indent.is_string()) throw Error("tojson: a string indent is not supported");
    st.indent = static_cast<int>(std::max<int64_t>(0, need_int(indent, "tojson indent")));
  }
  if (!seps.is_none()) {
    if (!seps.is_sequence() || seps.list->size() != 2) throw Error("tojson: separators must be a pair of strings");
    st.item_sep = need_str((*seps.list)[0], "tojson separators");
    st.key_sep = need_str((*seps.list)[1], "tojson separators");
  }
  return Value::string(to_json(v, st));
}
Value f_items(const Value &v, Args &a) {
  a.done("items");
  if (v.is_undefined()) return Value::make_list();
  if (!v.is_mapping()) throw Error(fmt::format("items: expected a mapping, got {}", type_name(v)));
  return Value::make_list(items_of(v));
}
std::string sort_key_str(const Value &v, bool case_sensitive) {
  return case_sensitive ? v.s : map_case(v.s, false);
}
bool sort_less(const Value &x, const Value &y, bool case_sensitive) {
  if (!case_sensitive && x.is_string() && y.is_string()) return sort_key_str(x, false) < sort_key_str(y, false);
  return less(x, y);
}
Value f_dictsort(const Value &v, Args &a) {
  bool cs = truthy(a.get(0, "case_sensitive", Value::boolean(false)));
  std::string by = to_str(a.get(1, "by", Value::string("key")));
  bool rev = truthy(a.get(2, "reverse", Value::boolean(false)));
  a.done("dictsort");
  if (!v.is_mapping()) throw Error(fmt::format("dictsort: expected a mapping, got {}", type_name(v)));
  size_t pos = by == "key" ? 0 : by == "value" ? 1 : throw Error("You can only sort by either 'key' or 'value'");
  List items = items_of(v);
  std::stable_sort(items.begin(), items.end(), [&](const Value &x, const Value &y) {
    const Value &p = (*x.list)[pos], &q = (*y.list)[pos];
    return rev ? sort_less(q, p, cs) : sort_less(p, q, cs);
  });
  return Value::make_list(std::move(items));
}
Value f_sort(const Value &v, Args &a) {
  bool rev = truthy(a.get(0, "reverse", Value::boolean(false)));
  bool cs = truthy(a.get(1, "case_sensitive", Value::boolean(false)));
  Value attr = a.get(2, "attribute", Value::none());
  a.done("sort");
  List items = iterate(v);
  auto key = [&](const Value &x) { return attr.is_none() ? x : attr_path(x, to_str(attr)); };
  std::stable_sort(items.begin(), items.end(), [&](const Value &x, const Value &y) {
    return rev ? sort_less(key(y), key(x), cs) : sort_less(key(x), key(y), cs);
  });
  return Value::make_list(std::move(items));
}
Value f_reverse(const Value &v, Args &a) {
  a.done("reverse");
  if (v.is_string()) return slice(v, Value::none(), Value::none(), Value::integer(-1));
  List items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::make_list(std::move(items));
}
Value f_unique(const Value &v, Args &a) {
  bool cs = truthy(a.get(0, "case_sensitive", Value::boolean(false)));
  Value attr = a.get(1, "attribute", Value::none());
  a.done("unique");
  List out, keys;
  for (const Value &x : iterate(v)) {
    Value k = attr.is_none() ? x : attr_path(x, to_str(attr));
    if (!cs && k.is_string()) k = Value::string(map_case(k.s, false));
    if (std::none_of(keys.begin(), keys.end(), [&](const Value &y) { return equal(y, k); })) {
      keys.push_back(k);
      out.push_back(x);
    }
  }
  return Value::make_list(std::move(out));
}
Value min_max(const Value &v, Args &a, bool want_max, const char *what) {
  bool cs = truthy(a.get(0, "case_sensitive", Value::boolean(false)));
  Value attr = a.get(1, "attribute", Value::none());
  a.done(what);
  List items = iterate(v);
  if (items.empty()) return Value::undefined(fmt::format("No aggregated item, sequence was empty."));
  auto key = [&](const Value &x) { return attr.is_none() ? x : attr_path(x, to_str(attr)); };
  const Value *best = &items[0];
  for (const Value &x : items)
    if (want_max ? sort_less(key(*best), key(x), cs) : sort_less(key(x), key(*best), cs)) best = &x;
  return *best;
}
Value f_min(const Value &v, Args &a) { return min_max(v, a, false, "min"); }
Value f_max(const Value &v, Args &a) { return min_max(v, a, true, "max"); }
Value f_sum(const Value &v, Args &a) {
  Value attr = a.get(0, "attribute", Value::none());
  Value total = a.get(1, "start", Value::integer(0));
  a.done("sum");
  for (const Value &x : iterate(v)) total = arithmetic("+", total, attr.is_none() ? x : attr_path(x, to_str(attr)));
  return total;
}
Value f_indent(const Value &v, Args &a) {  // Jinja2's: every line but the first, blank ones only if asked
  Value width = a.get(0, "width", Value::integer(4));
  bool first = truthy(a.get(1, "first", Value::boolean(false)));
  bool blank = truthy(a.get(2, "blank", Value::boolean(false)));
  a.done("indent");
  std::string ind = width.is_string() ? width.s : std::string(static_cast<size_t>(need_int(width, "indent")), ' ');
  Args none;
  List lines = *str_method(Value::string(to_str(v) + "\n"), "splitlines", none).list;
  std::string out = lines.empty() ? "" : lines[0].s;
  for (size_t k = 1; k < lines.size(); ++k) {
    out += '\n';
    if (blank || !lines[k].s.empty()) out += ind;
    out += lines[k].s;
  }
  return Value::string(first ? ind + out : out);
}
Value f_wordcount(const Value &v, Args &a) {
  a.done("wordcount");
  return Value::integer(static_cast<int64_t>(split(to_str(v), Value::none(), -1).size()));
}
Value f_center(const Value &v, Args &a) {
  int64_t width = need_int(a.get(0, "width", Value::integer(80)), "center");
  a.done("center");
  std::string s = to_str(v);
  int64_t len = static_cast<int64_t>(char_count(s));
  if (width <= len) return Value::string(s);
  int64_t pad = width - len, left = pad / 2 + (pad & width & 1);
  return Value::string(std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(pad - left), ' '));
}
Value f_attr(const Value &v, Args &a) {
  std::string name = to_str(a.get(0, "name"));
  a.done("attr");
  return get_attr(v, name);
}
Value f_format(const Value &v, Args &a) {  // printf-style "%s" formatting
  std::string f = to_str(v), out;
  size_t next = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') {
      out += f[i];
      continue;
    }
    if (i + 1 >= f.size()) throw Error("incomplete format");
    char c = f[++i];
    if (c == '%') out += '%';
    else if (c == 's' || c == 'd' || c == 'r') {
      Value x = a.get(next++, "");
      out += c == 'r' ? repr(x) : c == 'd' ? std::to_string(need_int(x, "format %d")) : to_str(x);
    } else throw Error(fmt::format("format: '%{}' is not supported", c));
  }
  a.used_pos = a.pos.size();
  a.done("format");
  return Value::string(std::move(out));
}

// select/reject(test, ...) and selectattr/rejectattr(attr, test, ...).
Value select(const Value &v, Args &a, bool by_attr, bool keep) {
  List out;
  size_t first_test_arg = by_attr ? 1 : 0;
  std::string attr = by_attr ? to_str(a.get(0, "attr")) : "";
  Value test = a.get(first_test_arg, "test", Value::none());
  Args targs;
  for (size_t k = first_test_arg + 1; k < a.pos.size(); ++k) targs.pos.push_back(a.pos[k]);
  a.used_pos = a.pos.size();
  a.done(by_attr ? "selectattr" : "select");
  TestFn fn = nullptr;
  if (!test.is_none()) {
    auto it = tests().find(to_str(test));
    if (it == tests().end()) throw Error(fmt::format("no test named '{}'", to_str(test)));
    fn = it->second;
  }
  for (const Value &x : iterate(v)) {
    Value subject = by_attr ? attr_path(x, attr) : x;
    Args ta = targs;
    bool r = fn ? fn(subject, ta) : truthy(subject);
    if (r == keep) out.push_back(x);
  }
  return Value::make_list(std::move(out));
}
Value f_select(const Value &v, Args &a) { return select(v, a, false, true); }
Value f_reject(const Value &v, Args &a) { return select(v, a, false, false); }
Value f_selectattr(const Value &v, Args &a) { return select(v, a, true, true); }
Value f_rejectattr(const Value &v, Args &a) { return select(v, a, true, false); }
Value f_map(const Value &v, Args &a) {
  List out;
  if (a.has(SIZE_MAX, "attribute")) {
    std::string attr = to_str(a.get(SIZE_MAX, "attribute"));
    Value dflt = a.get(SIZE_MAX, "default", Value::undefined());
    a.done("map");
    for (const Value &x : iterate(v)) {
      Value r = attr_path(x, attr);
      out.push_back(r.is_undefined() && !dflt.is_undefined() ? dflt : r);
    }
    return Value::make_list(std::move(out));
  }
  std::string name = to_str(a.get(0, "filter"));
  Args fargs;
  for (size_t k = 1; k < a.pos.size(); ++k) fargs.pos.push_back(a.pos[k]);
  fargs.kw = a.kw;
  if (!is_filter(name)) throw Error(fmt::format("no filter named '{}'", name));
  for (const Value &x : iterate(v)) {
    Args fa = fargs;
    out.push_back(apply_filter(name, x, fa));
  }
  return Value::make_list(std::move(out));
}

const std::unordered_map<std::string_view, FilterFn> &filters() {
  static const std::unordered_map<std::string_view, FilterFn> m = {
      {"length", f_length},   {"count", f_length},       {"default", f_default},   {"d", f_default},
      {"join", f_join},       {"list", f_list},          {"first", f_first},       {"last", f_last},
      {"upper", f_upper},     {"lower", f_lower},        {"capitalize", f_capitalize}, {"title", f_title},
      {"trim", f_trim},       {"replace", f_replace},    {"string", f_string},     {"safe", f_safe},
      {"escape", f_escape},   {"e", f_escape},           {"forceescape", f_escape}, {"int", f_int},
      {"float", f_float},     {"abs", f_abs},            {"round", f_round},       {"tojson", f_tojson},
      {"items", f_items},     {"dictsort", f_dictsort},  {"sort", f_sort},         {"reverse", f_reverse},
      {"unique", f_unique},   {"min", f_min},            {"max", f_max},           {"sum", f_sum},
      {"indent", f_indent},   {"wordcount", f_wordcount}, {"center", f_center},    {"attr", f_attr},
      {"format", f_format},   {"select", f_select},      {"reject", f_reject},     {"selectattr", f_selectattr},
      {"rejectattr", f_rejectattr}, {"map", f_map},
  };
  return m;
}

// ---- globals ----------------------------------------------------------------------------------

Value g_range(Args &a) {
  int64_t start = 0, stop, step = 1;
  if (a.pos.size() == 1) stop = need_int(a.pos[0], "range");
  else if (a.pos.size() == 2 || a.pos.size() == 3) {
    start = need_int(a.pos[0], "range");
    stop = need_int(a.pos[1], "range");
    if (a.pos.size() == 3) step = need_int(a.pos[2], "range");
  } else throw Error("range expected 1 to 3 arguments");
  if (step == 0) throw Error("range() arg 3 must not be zero");
  List out;
  for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
    if (out.size() >= 100000) throw Error("range too big (the sandbox allows 100000 items)");
    out.push_back(Value::integer(k));
  }
  return Value::make_list(std::move(out));
}
Value g_dict(Args &a) {
  Value d = Value::make_dict();
  for (const Value &p : a.pos) {
    if (p.is_mapping()) d.obj->items.insert(d.obj->items.end(), p.obj->items.begin(), p.obj->items.end());
    else throw Error("dict(): only mappings and keyword arguments are supported");
  }
  for (const auto &[k, v] : a.kw) d.obj->set(k, v);
  return d;
}
Value g_namespace(Args &a) {
  Value ns = g_dict(a);
  ns.type = Value::Type::ns;
  for (const auto &[k, v] : ns.obj->items)
    if (!k.empty() && k[0] == '_')
      throw Error(fmt::format("chat templates cannot store underscore-prefixed attributes on a namespace ('{}')", k));
  return ns;
}
Value g_raise_exception(Args &a) {
  Error e(to_str(a.get(0, "message")));
  e.raised = true;
  throw e;
}
Value g_strftime_now(Args &a) {
  std::string f = to_str(a.get(0, "format"));
  a.done("strftime_now");
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[512];
  size_t n = std::strftime(buf, sizeof buf, f.c_str(), &tm);
  return Value::string(std::string(buf, n));
}

}  // namespace

// ---- the interface (ast.hpp) ------------------------------------------------------------------

bool is_filter(std::string_view name) { return filters().count(name) > 0; }
bool is_test(std::string_view name) { return tests().count(name) > 0; }

Value apply_filter(const std::string &name, const Value &v, Args &args) {
  auto it = filters().find(name);
  if (it == filters().end()) throw Error(fmt::format("no filter named '{}' (jinja2 has none, or keel does not support it)", name));
  // Undefined reaches a filter as Jinja2's Undefined: empty for those that read it as a string or
  // a sequence, an error for the others (tojson, arithmetic ones).
  static const std::unordered_map<std::string_view, bool> takes_undefined = [] {
    std::unordered_map<std::string_view, bool> m;
    for (const char *f : {"default", "d", "length", "count", "list", "string", "join", "items", "first", "last", "trim",
                          "upper", "lower", "safe", "escape", "e", "forceescape", "int", "float", "select", "reject",
                          "selectattr", "rejectattr", "map", "unique", "sort", "reverse", "capitalize", "title",
                          "replace", "wordcount", "indent", "center"})
      m.emplace(f, true);
    return m;
  }();
  if (v.is_undefined() && !takes_undefined.count(name)) throw Error(v.s.empty() ? "undefined value" : v.s);
  return it->second(v, args);
}

bool apply_test(const std::string &name, const Value &v, Args &args) {
  auto it = tests().find(name);
  if (it == tests().end()) throw Error(fmt::format("no test named '{}' (jinja2 has none, or keel does not support it)", name));
  return it->second(v, args);
}

bool find_method(const Value &obj, std::string_view name, Value &out) {
  if (!has_method(obj, name)) return false;
  Value self = obj;
  std::string n(name);
  out = Value::function(fmt::format("{}.{}", type_name(obj), name), [self, n](Args &a) { return call_method(self, n, a); });
  return true;
}

Value call_method(const Value &obj, std::string_view name, Args &args) {
  if (name == "__slice__") return slice(obj, args.pos[0], args.pos[1], args.pos[2]);
  if (obj.is_string()) return str_method(obj, name, args);
  if (obj.is_mapping() || obj.is_sequence()) {
    if (!has_method(obj, name))
      throw Error(fmt::format("'{}' object has no attribute '{}' (or keel does not support it)", type_name(obj), name));
    return dict_or_list_method(obj, name, args);
  }
  throw Error(fmt::format("'{}' object has no attribute '{}'", type_name(obj), name));
}

Value global_value(std::string_view name) {
  static const std::unordered_map<std::string_view, Value> g = {
      {"range", Value::function("range", g_range)},
      {"dict", Value::function("dict", g_dict)},
      {"namespace", Value::function("namespace", g_namespace)},
      {"raise_exception", Value::function("raise_exception", g_raise_exception)},
      {"strftime_now", Value::function("strftime_now", g_strftime_now)},
  };
  auto it = g.find(name);
  return it == g.end() ? Value::undefined() : it->second;
}

Value get_attr(const Value &obj, std::string_view name) {
  if (obj.is_undefined()) throw Error(obj.s.empty() ? "undefined value" : obj.s);
  Value m;
  if (find_method(obj, name, m)) return m;
  if (obj.is_mapping() || obj.type == Value::Type::ns) {
    if (const Value *v = obj.obj->find(name)) return *v;
    return Value::undefined(fmt::format("'{}' object has no attribute '{}'", obj.is_mapping() ? "dict" : "Namespace", name));
  }
  return Value::undefined(fmt::format("'{}' object has no attribute '{}'", type_name(obj), name));
}

Value get_item(const Value &obj, const Value &key) {
  if (obj.is_undefined()) throw Error(obj.s.empty() ? "undefined value" : obj.s);
  if (obj.is_mapping() || obj.type == Value::Type::ns) {
    if (key.is_string()) {
      if (const Value *v = obj.obj->find(key.s)) return *v;
      if (obj.is_mapping()) {
        Value m;
        if (find_method(obj, key.s, m)) return m;
      }
    }
    return Value::undefined(fmt::format("'{}' object has no attribute {}", type_name(obj), repr(key)));
  }
  if ((obj.is_sequence() || obj.is_string()) && (key.type == Value::Type::integer || key.type == Value::Type::boolean)) {
    int64_t k = key.type == Value::Type::integer ? key.i : key.b;
    if (obj.is_string()) {
      bool ascii = is_ascii(obj.s);
      std::vector<size_t> offs = ascii ? std::vector<size_t>() : char_offsets(obj.s);
      int64_t len = ascii ? static_cast<int64_t>(obj.s.size()) : static_cast<int64_t>(offs.size()) - 1;
      if (k < 0) k += len;
      if (k < 0 || k >= len) return Value::undefined(fmt::format("'str object' has no element {}", key.i));
      if (ascii) return Value::string(std::string(1, obj.s[static_cast<size_t>(k)]));
      return Value::string(obj.s.substr(offs[static_cast<size_t>(k)], offs[static_cast<size_t>(k) + 1] - offs[static_cast<size_t>(k)]));
    }
    int64_t len = static_cast<int64_t>(obj.list->size());
    if (k < 0) k += len;
    if (k < 0 || k >= len) return Value::undefined(fmt::format("'{} object' has no element {}", type_name(obj), key.i));
    return (*obj.list)[static_cast<size_t>(k)];
  }
  if (key.is_string()) return get_attr(obj, key.s);
  return Value::undefined(fmt::format("'{}' object has no element {}", type_name(obj), repr(key)));
}

Value arithmetic(std::string_view op, const Value &a, const Value &b) {
  auto num = [](const Value &v) { return v.type == Value::Type::floating ? v.f : static_cast<double>(v.type == Value::Type::integer ? v.i : v.b); };
  auto ival = [](const Value &v) { return v.type == Value::Type::integer ? v.i : static_cast<int64_t>(v.b); };
  auto unsupported = [&]() {
    return Error(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b)));
  };
  if (a.is_number() && b.is_number()) {
    bool ints = a.type != Value::Type::floating && b.type != Value::Type::floating;
    auto overflow = [&] { return integer_overflow(op); };
    if (ints && (op == "+" || op == "-" || op == "*")) {
      int64_t r = 0;
      const bool over = op == "+"   ? __builtin_add_overflow(ival(a), ival(b), &r)
                        : op == "-" ? __builtin_sub_overflow(ival(a), ival(b), &r)
                                    : __builtin_mul_overflow(ival(a), ival(b), &r);
      if (over) throw overflow();
      return Value::integer(r);
    }
    if (op == "+") return Value::floating(num(a) + num(b));
    if (op == "-") return Value::floating(num(a) - num(b));
    if (op == "*") return Value::floating(num(a) * num(b));
    if (op == "/") {
      if (num(b) == 0) throw Error("division by zero");
      return Value::floating(num(a) / num(b));
    }
    if (op == "//" || op == "%") {
      if (num(b) == 0) throw Error("integer division or modulo by zero");
      if (ints) {
        int64_t x = ival(a), y = ival(b);
        if (x == INT64_MIN && y == -1) {
          if (op == "%") return Value::integer(0);
          throw overflow();
        }
        int64_t q = x / y, rem = x % y;
        if (rem != 0 && ((rem < 0) != (y < 0))) {
          --q;
          rem += y;
        }
        return Value::integer(op == "//" ? q : rem);
      }
      double x = num(a), y = num(b), m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return op == "%" ? Value::floating(m) : Value::floating(std::floor(x / y));
    }
    if (op == "**") {
      if (ints && ival(b) >= 0) {  // by squaring: 2 ** 10**18 must not loop 10**18 times
        int64_t result = 1, base = ival(a);
        for (int64_t e = ival(b); e > 0; e >>= 1) {
          if ((e & 1) && __builtin_mul_overflow(result, base, &result)) throw overflow();
          if (e > 1 && __builtin_mul_overflow(base, base, &base)) throw overflow();  // used later
        }
        return Value::integer(result);
      }
      return Value::floating(std::pow(num(a), num(b)));
    }
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      check_string_size(a.s.size() + b.s.size());
      return Value::string(a.s + b.s);
    }
    if (a.is_sequence() && b.type == a.type) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return a.type == Value::Type::tuple ? Value::make_tuple(std::move(out)) : Value::make_list(std::move(out));
    }
  }
  if (op == "*") {
    const Value &seq = a.is_number() ? b : a;
    const Value &n = a.is_number() ? a : b;
    if (n.type == Value::Type::integer || n.type == Value::Type::boolean) {
      int64_t times = std::max<int64_t>(0, ival(n));
      if (seq.is_string()) {
        if (times > 0 && !seq.s.empty()) check_string_size(seq.s.size() * std::min<int64_t>(times, kMaxStringBytes + 1));
        std::string out;
        for (int64_t k = 0; k < times; ++k) out += seq.s;
        return Value::string(std::move(out));
      }
      if (seq.is_sequence()) {
        if (times > 0 && !seq.list->empty() &&
            seq.list->size() * static_cast<size_t>(std::min<int64_t>(times, kMaxListItems + 1)) > kMaxListItems)
          throw Error(fmt::format("a list of more than {} items exceeds the sandbox", kMaxListItems));
        List out;
        for (int64_t k = 0; k < times; ++k) out.insert(out.end(), seq.list->begin(), seq.list->end());
        return Value::make_list(std::move(out));
      }
    }
  }
  if (op == "%" && a.is_string()) {
    Args fa;
    if (b.type == Value::Type::tuple) fa.pos = *b.list;
    else fa.pos.push_back(b);
    return f_format(a, fa);
  }
  throw unsupported();
}

bool contains(const Value &c, const Value &item) {
  if (c.is_string()) {
    if (!item.is_string())
      throw Error(fmt::format("'in <string>' requires string as left operand, not {}", type_name(item)));
    return c.s.find(item.s) != std::string::npos;
  }
  if (c.is_sequence()) return std::any_of(c.list->begin(), c.list->end(), [&](const Value &x) { return equal(x, item); });
  if (c.is_mapping()) return item.is_string() && c.obj->find(item.s) != nullptr;
  if (c.is_undefined()) return false;
  throw Error(fmt::format("argument of type '{}' is not iterable", type_name(c)));
}

List iterate(const Value &v) {
  switch (v.type) {
    case Value::Type::list:
    case Value::Type::tuple: return *v.list;
    case Value::Type::dict: {
      List out;
      for (const auto &kv : v.obj->items) out.push_back(Value::string(kv.first));
      return out;
    }
    case Value::Type::string: {
      List out;
      size_t i = 0;
      while (i < v.s.size()) {
        size_t start = i;
        utf8::next(v.s, i);
        out.push_back(Value::string(v.s.substr(start, i - start)));
      }
      return out;
    }
    case Value::Type::undefined: return {};
    default: throw Error(fmt::format("'{}' object is not iterable", type_name(v)));
  }
}

}  // namespace keel::jinja
