// The values a Jinja template computes with, modelled on the Python objects Jinja2 sees in a chat
// template: None, bool, int, float, str, list, tuple, dict (insertion-ordered), namespace, callables,
// and Jinja2's Undefined. Lists and dicts are shared by reference, as in Python.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace keel::jinja {

// A template that cannot be parsed or that fails while rendering. line/column are 1-based places in
// the template source (0 when not known yet: the renderer fills them in from the node that failed).
struct Error : std::runtime_error {
  Error(std::string message, int line = 0, int column = 0)
      : std::runtime_error(std::move(message)), line(line), column(column) {}
  int line, column;
  bool raised = false;  // raise_exception() in the template, not a construct keel lacks
};

struct Value;
using List = std::vector<Value>;
struct Object;
struct Callable;
struct Args;

struct Value {
  enum class Type : uint8_t { undefined, none, boolean, integer, floating, string, list, tuple, dict, ns, callable };
  Type type = Type::undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // string; for undefined: what is undefined, for error messages
  std::shared_ptr<List> list;           // list, tuple
  std::shared_ptr<Object> obj;          // dict, namespace
  std::shared_ptr<const Callable> fn;   // callable

  Value() = default;
  static Value undefined(std::string what = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value floating(double v);
  static Value string(std::string v);
  static Value make_list(List items = {});
  static Value make_tuple(List items);
  static Value make_dict();
  static Value make_namespace();
  static Value function(std::string name, std::function<Value(Args &)> fn);
  // JSON objects keep their key order with ordered_json (Python dicts do); nlohmann::json sorts.
  static Value from_json(const nlohmann::json &j);
  static Value from_json(const nlohmann::ordered_json &j);

  bool is_undefined() const { return type == Type::undefined; }
  bool is_none() const { return type == Type::none; }
  bool is_string() const { return type == Type::string; }
  bool is_number() const { return type == Type::integer || type == Type::floating || type == Type::boolean; }
  bool is_sequence() const { return type == Type::list || type == Type::tuple; }
  bool is_mapping() const { return type == Type::dict; }
};

// A dict: insertion-ordered, string keys (the only keys chat templates and JSON use).
struct Object {
  std::vector<std::pair<std::string, Value>> items;
  const Value *find(std::string_view key) const;
  Value *find(std::string_view key);
  void set(std::string_view key, Value v);
  bool erase(std::string_view key);
};

// Arguments of a call: positional, then keyword.
struct Args {
  List pos;
  std::vector<std::pair<std::string, Value>> kw;
  // The argument at `index`, or the keyword `name`, or `fallback`; consumed arguments are checked
  // by done(), so a misspelt keyword is an error rather than ignored.
  Value get(size_t index, std::string_view name, Value fallback = Value::undefined());
  bool has(size_t index, std::string_view name) const;
  void done(std::string_view what) const;
  size_t used_pos = 0;
  std::vector<std::string> used_kw;
};

struct Callable {
  std::string name;
  std::function<Value(Args &)> call;
};

// The sandbox's bounds (a hostile template must fail with an Error, not exhaust the machine): a
// string a template builds, a list it builds by repetition, and (template.hpp) its nesting, call
// depth and steps. Real chat templates render kilobytes.
constexpr size_t kMaxStringBytes = 16u << 20;
constexpr size_t kMaxListItems = 1u << 20;
// Throws Error when a string of `bytes` would exceed kMaxStringBytes.
void check_string_size(size_t bytes);
// Python's integers do not overflow; these are 64-bit, so an overflow is this Error, never UB.
Error integer_overflow(std::string_view op);

// Python's truth value.
bool truthy(const Value &v);
// Python's str(): what {{ v }} prints (Undefined prints nothing).
std::string to_str(const Value &v);
// Python's repr() (strings quoted as Python quotes them).
std::string repr(const Value &v);
// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as Python writes it.
struct JsonStyle {
  bool ensure_ascii = false;
  int indent = -1;  // -1: None (one line)
  std::string item_sep, key_sep;  // empty: Python's defaults for the indent
  bool sort_keys = false;
};
std::string to_json(const Value &v, const JsonStyle &style);
// Python's ==.
bool equal(const Value &a, const Value &b);
// Python's <, for numbers and strings (and lists of them); throws Error otherwise.
bool less(const Value &a, const Value &b);
// The Python type name, for messages ("str", "dict", "undefined", ...).
const char *type_name(const Value &v);
// Python's repr of a float (shortest round-trip, 1e+16 style past 16 digits).
std::string float_repr(double d);

// Unicode code points: str length, indexing and slicing count characters, not bytes.
size_t char_count(std::string_view s);
std::vector<size_t> char_offsets(std::string_view s);  // byte offset of each character, plus the end

}  // namespace keel::jinja
