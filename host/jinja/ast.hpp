// The parsed template: one node type for statements and expressions (internal to host/jinja).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jinja/value.hpp"

namespace keel::jinja {

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    // statements
    text,          // name: the text
    output,        // kids[0]: {{ expression }}
    if_,           // kids[0]: condition; body; else_body (an elif is an if_ inside else_body)
    for_,          // targets; kids[0]: iterable; kids[1]: filter condition or null; body; else_body
    set,           // targets (or targets[0].attr for a namespace); kids[0]: value
    set_block,     // targets/attr; body; kids[0]: filter chain over `captured`, or null
    macro,         // name; params; body
    call_block,    // kids[0]: the call; params: caller's; body
    filter_block,  // kids[0]: filter chain over `captured`; body
    break_,
    continue_,
    generation,    // body: assistant output, tracked for loss masks
    // expressions
    literal,  // value
    name,     // name
    list,     // kids
    tuple,    // kids
    dict,     // kids: key, value, key, value, ...
    attr,     // kids[0].name
    item,     // kids[0][kids[1]]
    slice,    // kids[0][kids[1]:kids[2]:kids[3]] (null: omitted)
    call,     // kids[0](kids[1..], kwargs)
    filter,   // kids[0] | name(kids[1..], kwargs)
    test,     // kids[0] is [not] name(kids[1..], kwargs)
    not_,     // not kids[0]
    neg,      // -kids[0]
    pos,      // +kids[0]
    binary,   // kids[0] name kids[1], name one of + - * / // % ** ~
    compare,  // kids[0] ops[0] kids[1] ops[1] kids[2] ...
    and_,
    or_,
    cond,      // kids[0] if kids[1] else kids[2] (null: undefined)
    captured,  // the text of the enclosing filter or set block
  };
  Kind kind;
  int line = 0, column = 0;
  std::string name;
  Value value;
  std::vector<NodePtr> kids;
  std::vector<std::pair<std::string, NodePtr>> kwargs;
  Body body, else_body;
  std::vector<std::string> targets;
  std::string attr;
  std::vector<std::pair<std::string, NodePtr>> params;  // name, default (null: none)
  std::vector<std::string> ops;
  bool negated = false;
};

// Template source → the body of its root (defined in parser.cpp). Throws Error.
Body parse_template(std::string_view source, bool &has_generation);

// The built-ins (builtins.cpp): names are checked at parse time, as Jinja2 does.
bool is_filter(std::string_view name);
bool is_test(std::string_view name);
Value apply_filter(const std::string &name, const Value &v, Args &args);
bool apply_test(const std::string &name, const Value &v, Args &args);
// obj.name: whether obj's type has that method, and the method bound to obj.
bool has_method(const Value &obj, std::string_view name);
bool find_method(const Value &obj, std::string_view name, Value &out);
Value call_method(const Value &obj, std::string_view name, Args &args);
Value global_value(std::string_view name);  // range, dict, namespace, raise_exception, ...; undefined if none
// obj.name and obj[key] as Jinja2's sandbox resolves them.
Value get_attr(const Value &obj, std::string_view name);
Value get_item(const Value &obj, const Value &key);
// Python's binary operators (+ - * / // % **).
Value arithmetic(std::string_view op, const Value &a, const Value &b);
bool contains(const Value &container, const Value &item);
// The items a for loop visits.
List iterate(const Value &v);

}  // namespace keel::jinja
