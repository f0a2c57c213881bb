// The interpreter: walks the parsed template with Jinja2's scoping (a for loop or a macro call
// opens a scope; if does not; `set` inside a loop stays in the loop, so templates use namespace()).
#include <fmt/format.h>

#include "jinja/ast.hpp"
#include "jinja/template.hpp"

namespace keel::jinja {

namespace {

struct Scope {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Scope> parent;

  const Value *find(std::string_view name) const {
    for (const Scope *s = this; s; s = s->parent.get())
      for (const auto &[k, v] : s->vars)
        if (k == name) return &v;
    return nullptr;
  }
  void set(std::string_view name, Value v) {
    for (auto &[k, x] : vars)
      if (k == name) {
        x = std::move(v);
        return;
      }
    vars.emplace_back(std::string(name), std::move(v));
  }
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { normal, break_, continue_ };

class Renderer {
 public:
  Renderer(const Value &context, Rendered &out) : context_(context), out_(out) {}
  // A macro holds the scope it was defined in, and that scope holds the macro: the cycle is
  // broken here, when nothing of the render can be used any more.
  ~Renderer() {
    for (const ScopePtr &s : macro_scopes_) s->vars.clear();
  }

  void run(const Body &body) {
    auto scope = std::make_shared<Scope>();
    exec(body, scope, out_.text);
  }

 private:
  // Where an error without a place happened: the innermost node that knows one.
  template <class F>
  auto at(const Node &n, F &&f) -> decltype(f()) {
    try {
      return f();
    } catch (Error &e) {
      if (e.line == 0) {
        e.line = n.line;
        e.column = n.column;
      }
      throw;
    }
  }

  Flow exec(const Body &body, const ScopePtr &scope, std::string &out) {
    for (const NodePtr &n : body) {
      Flow f = at(*n, [&] { return exec_one(*n, scope, out); });
      check_string_size(out.size());
      if (f != Flow::normal) return f;
    }
    return Flow::normal;
  }

  // Every statement and expression evaluated counts: a template that loops for ever (or for
  // 10**10 iterations) stops with an Error. Chat templates take thousands of steps.
  static constexpr uint64_t kMaxSteps = 5'000'000;
  static constexpr int kMaxCallDepth = 200;  // macro calls inside macro calls
  void tick() {
    if (++steps_ > kMaxSteps) throw Error(fmt::format("the template ran for more than {} steps", kMaxSteps));
  }

  Flow exec_one(const Node &n, const ScopePtr &scope, std::string &out) {
    tick();
    switch (n.kind) {
      case Node::Kind::text: out += n.name; return Flow::normal;
      case Node::Kind::output: {
        if (append_concat(*n.kids[0], scope, out)) return Flow::normal;
        Value tmp;
        const Value &v = ref(*n.kids[0], scope, tmp);
        if (v.is_string()) out += v.s;
        else out += to_str(v);
        return Flow::normal;
      }
      case Node::Kind::if_: {
        Value tmp;
        return exec(truthy(ref(*n.kids[0], scope, tmp)) ? n.body : n.else_body, scope, out);
      }
      case Node::Kind::for_: return exec_for(n, scope, out);
      case Node::Kind::set: assign(n, eval(*n.kids[0], scope), scope); return Flow::normal;
      case Node::Kind::set_block: {
        std::string captured;
        exec(n.body, scope, captured);
        Value v = Value::string(std::move(captured));
        if (n.kids[0]) v = eval_captured(*n.kids[0], v, scope);
        assign(n, std::move(v), scope);
        return Flow::normal;
      }
      case Node::Kind::macro: scope->set(n.name, make_macro(n, scope)); return Flow::normal;
      case Node::Kind::call_block: {
        const Node &call = *n.kids[0];
        Value caller = make_macro(n, scope, "caller");
        Value r = call_node(call, scope, &caller);
        out += to_str(r);
        return Flow::normal;
      }
      case Node::Kind::filter_block: {
        std::string captured;
        exec(n.body, scope, captured);
        out += to_str(eval_captured(*n.kids[0], Value::string(std::move(captured)), scope));
        return Flow::normal;
      }
      case Node::Kind::break_: return Flow::break_;
      case Node::Kind::continue_: return Flow::continue_;
      case Node::Kind::generation: {
        // As transformers' AssistantTracker: the block's output, placed at the end of what the
        // template has written at top level so far.
        std::string body;
        Flow f = exec(n.body, scope, body);
        size_t start = out_.text.size();
        out += body;
        out_.generation.emplace_back(start, start + body.size());
        return f;
      }
      default: throw Error("internal error: an expression where a statement belongs");
    }
  }

  void assign(const Node &n, Value v, const ScopePtr &scope) {
    if (!n.attr.empty()) {
      const Value *ns = scope->find(n.targets[0]);
      if (!ns) ns = context_.obj->find(n.targets[0]);
      if (!ns || ns->type != Value::Type::ns)
        throw Error(fmt::format("can't assign attribute '{}' of '{}': not a namespace", n.attr, n.targets[0]));
      if (!n.attr.empty() && n.attr[0] == '_')
        throw Error(fmt::format("chat templates cannot store underscore-prefixed attributes on a namespace ('{}')", n.attr));
      ns->obj->set(n.attr, std::move(v));
      return;
    }
    bind(n.targets, std::move(v), *scope);
  }

  static void bind(const std::vector<std::string> &targets, Value v, Scope &scope) {
    if (targets.size() == 1) {
      scope.set(targets[0], std::move(v));
      return;
    }
    List items = iterate(v);
    if (items.size() != targets.size())
      throw Error(fmt::format("cannot unpack {} values into {} names", items.size(), targets.size()));
    for (size_t k = 0; k < targets.size(); ++k) scope.set(targets[k], std::move(items[k]));
  }

  Flow exec_for(const Node &n, const ScopePtr &scope, std::string &out) {
    Value seq = eval(*n.kids[0], scope);
    if (seq.type == Value::Type::none || seq.is_number())
      throw Error(fmt::format("'{}' object is not iterable", type_name(seq)));
    // A list is visited in place (its Value keeps it alive); strings and dicts give a new list.
    std::shared_ptr<List> owned = seq.is_sequence() ? seq.list : std::make_shared<List>(iterate(seq));
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    if (n.kids[1]) {  // {% for x in xs if cond %}: the condition sees the loop variable, not `loop`
      auto kept = std::make_shared<List>();
      for (const Value &x : *owned) {
        bind(n.targets, x, *inner);
        if (truthy(eval(*n.kids[1], inner))) kept->push_back(x);
      }
      owned = std::move(kept);
      inner->vars.clear();
    }
    const List &items = *owned;
    if (items.empty()) return exec(n.else_body, scope, out);
    Value loop = Value::make_dict();
    Object &lo = *loop.obj;
    const int64_t len = static_cast<int64_t>(items.size());
    for (const char *k : {"index", "index0", "revindex", "revindex0", "first", "last", "length", "previtem", "nextitem",
                          "depth", "depth0"})
      lo.items.emplace_back(k, Value());
    lo.items[6].second = Value::integer(len);
    lo.items[9].second = Value::integer(1);
    lo.items[10].second = Value::integer(0);
    auto index0 = std::make_shared<int64_t>(0);
    lo.items.emplace_back("cycle", Value::function("loop.cycle", [index0](Args &a) {
                            if (a.pos.empty()) throw Error("no items for cycling given");
                            return a.pos[static_cast<size_t>(*index0) % a.pos.size()];
                          }));
    for (int64_t k = 0; k < len; ++k) {
      tick();  // an empty body still counts
      *index0 = k;
      lo.items[0].second = Value::integer(k + 1);
      lo.items[1].second = Value::integer(k);
      lo.items[2].second = Value::integer(len - k);
      lo.items[3].second = Value::integer(len - k - 1);
      lo.items[4].second = Value::boolean(k == 0);
      lo.items[5].second = Value::boolean(k == len - 1);
      lo.items[7].second = k > 0 ? items[static_cast<size_t>(k - 1)] : Value::undefined("there is no previous item");
      lo.items[8].second = k + 1 < len ? items[static_cast<size_t>(k + 1)] : Value::undefined("there is no next item");
      inner->vars.clear();  // Jinja2: what the body sets lasts one iteration
      bind(n.targets, items[static_cast<size_t>(k)], *inner);
      inner->set("loop", loop);
      if (exec(n.body, inner, out) == Flow::break_) break;
    }
    return Flow::normal;
  }

  // A macro (or a call block's caller) as a callable; it renders into its own buffer.
  Value make_macro(const Node &n, const ScopePtr &scope, std::string name = {}) {
    if (name.empty()) name = n.name;
    const Node *def = &n;
    macro_scopes_.push_back(scope);
    return Value::function(name, [this, def, scope, name](Args &a) {
      if (call_depth_ >= kMaxCallDepth) throw Error(fmt::format("macro calls nest deeper than {} (a recursion without end?)", kMaxCallDepth));
      ++call_depth_;
      struct Leave {
        int &d;
        ~Leave() { --d; }
      } leave{call_depth_};
      auto local = std::make_shared<Scope>();
      local->parent = scope;
      size_t k = 0;
      for (const auto &[pname, pdef] : def->params) {
        if (k < a.pos.size()) {
          local->set(pname, a.pos[k]);
        } else {
          bool found = false;
          for (const auto &[kk, kv] : a.kw)
            if (kk == pname) {
              local->set(pname, kv);
              found = true;
            }
          if (!found) local->set(pname, pdef ? eval(*pdef, local) : Value::undefined(fmt::format("parameter '{}' was not provided", pname)));
        }
        ++k;
      }
      List extra;
      for (; k < a.pos.size(); ++k) extra.push_back(a.pos[k]);
      local->set("varargs", Value::make_tuple(std::move(extra)));
      Value kwargs = Value::make_dict();
      for (const auto &[kk, kv] : a.kw) {
        bool is_param = kk == "caller";
        for (const auto &p : def->params) is_param = is_param || p.first == kk;
        if (!is_param) kwargs.obj->set(kk, kv);
        if (kk == "caller") local->set("caller", kv);
      }
      local->set("kwargs", kwargs);
      std::string out;
      exec(def->body, local, out);
      return Value::string(std::move(out));
    });
  }

  Value lookup(const std::string &name, const ScopePtr &scope) const {
    if (const Value *v = scope->find(name)) return *v;
    if (const Value *v = context_.obj->find(name)) return *v;
    Value g = global_value(name);
    if (!g.is_undefined()) return g;
    return Value::undefined(fmt::format("'{}' is undefined", name));
  }

  // The filters of a filter block or set block, applied to the captured text.
  Value eval_captured(const Node &chain, const Value &captured, const ScopePtr &scope) {
    const Value *saved = captured_;
    captured_ = &captured;
    Value r = eval(chain, scope);
    captured_ = saved;
    return r;
  }

  Args eval_args(const Node &n, size_t first, const ScopePtr &scope) {
    Args a;
    for (size_t k = first; k < n.kids.size(); ++k) a.pos.push_back(eval(*n.kids[k], scope));
    for (const auto &[name, e] : n.kwargs) a.kw.emplace_back(name, eval(*e, scope));
    return a;
  }

  static void check_defined(const Value &v) {
    if (v.is_undefined()) throw Error(v.s.empty() ? "undefined value" : v.s);
  }

  // {{ a + b + c }} where every operand is a string (the usual chat-template line): appended piece
  // by piece instead of building each partial sum. False (nothing written) for anything else.
  bool append_concat(const Node &n, const ScopePtr &scope, std::string &out) {
    if (n.kind != Node::Kind::binary || n.name != "+") return false;
    std::vector<const Node *> parts;
    const Node *x = &n;
    for (; x->kind == Node::Kind::binary && x->name == "+"; x = x->kids[0].get()) parts.push_back(x->kids[1].get());
    parts.push_back(x);
    std::vector<Value> tmps(parts.size());
    std::vector<const Value *> vals(parts.size());
    for (size_t k = parts.size(); k-- > 0;) {  // left to right, as Python evaluates them
      vals[k] = &ref(*parts[k], scope, tmps[k]);
      if (!vals[k]->is_string()) {
        if (k + 1 == parts.size()) return false;  // the first operand: nothing evaluated twice yet
        Value sum = *vals[parts.size() - 1];
        for (size_t j = parts.size() - 1; j-- > k;)
          sum = at(n, [&] {
            check_defined(*vals[j]);
            return arithmetic("+", sum, *vals[j]);
          });
        for (size_t j = k; j-- > 0;) {
          const Value &v = ref(*parts[j], scope, tmps[j]);
          sum = at(n, [&] { check_defined(v); return arithmetic("+", sum, v); });
        }
        out += to_str(sum);
        return true;
      }
    }
    for (size_t k = parts.size(); k-- > 0;) out += vals[k]->s;
    return true;
  }

  // The value of a name, an attribute or an item where it is stored, without copying it (a
  // message's content is read many times per render); anything else is computed into `tmp`.
  const Value &ref(const Node &n, const ScopePtr &scope, Value &tmp) {
    switch (n.kind) {
      case Node::Kind::literal: return n.value;
      case Node::Kind::name:
        if (const Value *v = scope->find(n.name)) return *v;
        if (const Value *v = context_.obj->find(n.name)) return *v;
        break;
      case Node::Kind::attr:
      case Node::Kind::item: {
        Value t;
        const Value &obj = ref(*n.kids[0], scope, t);
        if (&obj != &t && (obj.is_mapping() || obj.type == Value::Type::ns)) {
          const Value *key = n.kind == Node::Kind::item && n.kids[1]->kind == Node::Kind::literal ? &n.kids[1]->value : nullptr;
          const std::string *name = n.kind == Node::Kind::attr ? &n.name : key && key->is_string() ? &key->s : nullptr;
          if (name && !(n.kind == Node::Kind::attr && has_method(obj, *name)))
            if (const Value *v = obj.obj->find(*name)) return *v;
        }
        tmp = at(n, [&] {
          check_defined(obj);
          return n.kind == Node::Kind::attr ? get_attr(obj, n.name) : get_item(obj, eval(*n.kids[1], scope));
        });
        return tmp;
      }
      default: break;
    }
    tmp = eval(n, scope);
    return tmp;
  }

  Value call_node(const Node &n, const ScopePtr &scope, const Value *caller = nullptr) {
    const Node &callee = *n.kids[0];
    Args a = eval_args(n, 1, scope);
    if (caller) a.kw.emplace_back("caller", *caller);
    if (callee.kind == Node::Kind::attr) {  // obj.method(...) without making a bound method
      Value obj = eval(*callee.kids[0], scope);
      check_defined(obj);
      if (has_method(obj, callee.name)) return call_method(obj, callee.name, a);
      Value f = get_attr(obj, callee.name);
      return call_value(f, a);
    }
    return call_value(eval(callee, scope), a);
  }

  static Value call_value(const Value &f, Args &a) {
    if (f.is_undefined()) throw Error(f.s.empty() ? "undefined value is not callable" : f.s);
    if (f.type != Value::Type::callable) throw Error(fmt::format("'{}' object is not callable", type_name(f)));
    return f.fn->call(a);
  }

  Value eval(const Node &n, const ScopePtr &scope) {
    tick();
    return at(n, [&]() -> Value {
      switch (n.kind) {
        case Node::Kind::literal: return n.value;
        case Node::Kind::name: return lookup(n.name, scope);
        case Node::Kind::captured: return *captured_;
        case Node::Kind::list:
        case Node::Kind::tuple: {
          List items;
          items.reserve(n.kids.size());
          for (const auto &k : n.kids) items.push_back(eval(*k, scope));
          return n.kind == Node::Kind::list ? Value::make_list(std::move(items)) : Value::make_tuple(std::move(items));
        }
        case Node::Kind::dict: {
          Value d = Value::make_dict();
          for (size_t k = 0; k + 1 < n.kids.size(); k += 2) {
            Value key = eval(*n.kids[k], scope);
            if (!key.is_string()) throw Error("dict keys other than strings are not supported");
            d.obj->set(key.s, eval(*n.kids[k + 1], scope));
          }
          return d;
        }
        case Node::Kind::attr: {
          Value obj = eval(*n.kids[0], scope);
          check_defined(obj);
          return get_attr(obj, n.name);
        }
        case Node::Kind::item: {
          Value obj = eval(*n.kids[0], scope);
          check_defined(obj);
          return get_item(obj, eval(*n.kids[1], scope));
        }
        case Node::Kind::slice: {
          Value obj = eval(*n.kids[0], scope);
          check_defined(obj);
          Args a;
          for (size_t k = 1; k < 4; ++k) a.pos.push_back(n.kids[k] ? eval(*n.kids[k], scope) : Value::none());
          return call_method(obj, "__slice__", a);
        }
        case Node::Kind::call: return call_node(n, scope);
        case Node::Kind::filter: {
          Value tmp;
          const Value &v = ref(*n.kids[0], scope, tmp);
          Args a = eval_args(n, 1, scope);
          return apply_filter(n.name, v, a);
        }
        case Node::Kind::test: {
          Value tmp;
          const Value &v = ref(*n.kids[0], scope, tmp);
          Args a = eval_args(n, 1, scope);
          return Value::boolean(apply_test(n.name, v, a) != n.negated);
        }
        case Node::Kind::not_: {
          Value tmp;
          return Value::boolean(!truthy(ref(*n.kids[0], scope, tmp)));
        }
        case Node::Kind::neg:
        case Node::Kind::pos: {
          Value v = eval(*n.kids[0], scope);
          check_defined(v);
          if (!v.is_number()) throw Error(fmt::format("bad operand type for unary {}: '{}'", n.kind == Node::Kind::neg ? '-' : '+', type_name(v)));
          if (n.kind == Node::Kind::pos) return v.type == Value::Type::boolean ? Value::integer(v.b) : v;
          if (v.type == Value::Type::floating) return Value::floating(-v.f);
          if (v.type == Value::Type::integer && v.i == INT64_MIN) throw integer_overflow("unary -");
          return Value::integer(-(v.type == Value::Type::boolean ? v.b : v.i));
        }
        case Node::Kind::binary: {
          Value ta, tb;
          const Value &a = ref(*n.kids[0], scope, ta);
          const Value &b = ref(*n.kids[1], scope, tb);
          if (n.name == "~") {
            std::string joined = to_str(a), right = to_str(b);
            check_string_size(joined.size() + right.size());
            joined += right;
            return Value::string(std::move(joined));
          }
          check_defined(a);
          check_defined(b);
          return arithmetic(n.name, a, b);
        }
        case Node::Kind::compare: {
          Value tl, tr;
          const Value *left = &ref(*n.kids[0], scope, tl);
          for (size_t k = 0; k < n.ops.size(); ++k) {
            const Value &right = ref(*n.kids[k + 1], scope, tr);
            const std::string &op = n.ops[k];
            bool r;
            if (op == "==") r = equal(*left, right);
            else if (op == "!=") r = !equal(*left, right);
            else if (op == "in" || op == "notin") r = contains(right, *left) == (op == "in");
            else {
              check_defined(*left);
              check_defined(right);
              if (op == "<") r = less(*left, right);
              else if (op == ">") r = less(right, *left);
              else if (op == "<=") r = !less(right, *left);
              else r = !less(*left, right);
            }
            if (!r) return Value::boolean(false);
            if (&right == &tr) std::swap(tl, tr);  // keep the right operand alive as the next left
            left = &right == &tl || &right == &tr ? &tl : &right;
          }
          return Value::boolean(true);
        }
        case Node::Kind::and_: {
          Value a = eval(*n.kids[0], scope);
          return truthy(a) ? eval(*n.kids[1], scope) : a;
        }
        case Node::Kind::or_: {
          Value a = eval(*n.kids[0], scope);
          return truthy(a) ? a : eval(*n.kids[1], scope);
        }
        case Node::Kind::cond:
          if (truthy(eval(*n.kids[1], scope))) return eval(*n.kids[0], scope);
          return n.kids[2] ? eval(*n.kids[2], scope) : Value::undefined("the condition was false and there is no else");
        default: throw Error("internal error: a statement where an expression belongs");
      }
    });
  }

  const Value &context_;
  Rendered &out_;
  std::vector<ScopePtr> macro_scopes_;  // the scopes macros were defined in (see ~Renderer)
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  const Value *captured_ = nullptr;
};

}  // namespace

Template Template::parse(std::string_view source) {
  Template t;
  auto root = std::make_shared<Node>();
  root->kind = Node::Kind::if_;  // a holder: the body is the template
  root->body = parse_template(source, t.has_generation_);
  t.root_ = std::move(root);
  return t;
}

Rendered Template::render(const Value &context) const {
  if (context.type != Value::Type::dict) throw Error("the render context must be a dict");
  Rendered out;
  Renderer r(context, out);
  r.run(root_->body);
  return out;
}

}  // namespace keel::jinja
