// A Jinja2 interpreter for chat templates, in the environment transformers renders them in
// (ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loop controls and the
// {% generation %} tag; tojson, raise_exception, strftime_now, namespace, dict).
//
//   Template t = Template::parse(source);                 // throws Error (line, column)
//   Value ctx = Value::make_dict();
//   ctx.obj->set("messages", Value::from_json(messages));
//   Rendered r = t.render(ctx);                           // throws Error
//   r.text; r.generation;                                 // byte spans of {% generation %} output
//
// What chat templates do not use (template inheritance, includes, imports, autoescaping) is
// refused at parse time with the construct named, never rendered wrongly.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja/value.hpp"

namespace keel::jinja {

struct Node;

struct Rendered {
  std::string text;
  // [begin, end) byte ranges of the output of each {% generation %} block, in order.
  std::vector<std::pair<size_t, size_t>> generation;
};

class Template {
 public:
  static Template parse(std::string_view source);
  // context: a dict of the variables the template sees (besides the built-in globals).
  Rendered render(const Value &context) const;
  bool has_generation() const { return has_generation_; }

 private:
  std::shared_ptr<const Node> root_;
  bool has_generation_ = false;
};

}  // namespace keel::jinja
