// Lexer and parser. Both follow Jinja2 3.1 (lexer.py, parser.py) rule for rule where chat
// templates can tell the difference: whitespace control (`-`, `+`, trim_blocks, lstrip_blocks as
// transformers sets them), newline normalisation, the dropped trailing newline, operator
// precedence, where filters and tests bind.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "jinja/ast.hpp"
#include "jinja/template.hpp"
#include "tokenizer/utf8.hpp"

namespace keel::jinja {
namespace {

enum class Tok { data, var_begin, var_end, block_begin, block_end, name, string, integer, floating, op, eof };

struct Token {
  Tok type;
  std::string text;  // data, name, string (decoded), operator
  int64_t i = 0;
  double f = 0;
  size_t offset = 0;
};

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Python's str.rstrip() (Unicode White_Space).
std::string_view rstrip(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start;
    char32_t c = utf8::prev(s, end, start);
    if (!utf8::is_space(c)) break;
    end = start;
  }
  return s.substr(0, end);
}
size_t skip_space(std::string_view s, size_t p) {
  while (p < s.size()) {
    size_t q = p;
    if (!utf8::is_space(utf8::next(s, q))) break;
    p = q;
  }
  return p;
}

const char *const kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(",
                                  ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"};

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    const size_t n = src_.size();
    while (pos < n) {
      size_t tag = find_tag(pos);
      if (tag == std::string_view::npos) {
        emit_data(src_.substr(pos), pos);
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      size_t p = tag + 2;
      char sign = 0;
      if (p < n && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      std::string_view text = src_.substr(pos, tag - pos);
      if (sign == '-') {
        text = rstrip(text);
      } else if (sign != '+' && kind != '{') {  // lstrip_blocks: not for {{ }}
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string_view::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size() &&
            skip_space(text, l_pos) == text.size())
          text = text.substr(0, l_pos);
      }
      emit_data(text, pos);
      if (kind == '#') {
        size_t j = src_.find("#}", p);
        if (j == std::string_view::npos) throw error("missing end of comment tag", tag);
        char esign = j > p && (src_[j - 1] == '-' || src_[j - 1] == '+') ? src_[j - 1] : 0;
        pos = end_of_tag(j + 2, esign, true);
      } else if (kind == '%' && raw_at(p)) {
        pos = lex_raw(p);
      } else {
        tokens_.push_back({kind == '{' ? Tok::var_begin : Tok::block_begin, {}, 0, 0, tag});
        pos = lex_tag(p, kind == '%', tag);
      }
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    tokens_.push_back({Tok::eof, {}, 0, 0, n});
    return std::move(tokens_);
  }

  Error error(std::string msg, size_t offset) const;

 private:
  size_t find_tag(size_t from) const {
    for (size_t k = src_.find('{', from); k != std::string_view::npos; k = src_.find('{', k + 1))
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    return std::string_view::npos;
  }

  void emit_data(std::string_view text, size_t offset) {
    if (!text.empty()) tokens_.push_back({Tok::data, std::string(text), 0, 0, offset});
  }

  // After a block or comment end at `p`: `-` eats the whitespace after it, trim_blocks one newline.
  size_t end_of_tag(size_t p, char sign, bool block) const {
    if (sign == '-') return skip_space(src_, p);
    if (sign != '+' && block && p < src_.size() && src_[p] == '\n') return p + 1;
    return p;
  }

  bool raw_at(size_t p) const {
    size_t q = skip_space(src_, p);
    if (src_.compare(q, 3, "raw") != 0) return false;
    q = skip_space(src_, q + 3);
    return src_.compare(q, 2, "%}") == 0 || src_.compare(q, 3, "-%}") == 0;
  }

  size_t lex_raw(size_t p) {
    size_t q = skip_space(src_, skip_space(src_, p) + 3);
    q = src_[q] == '-' ? skip_space(src_, q + 3) : q + 2;  // the raw opening tag takes no trim_blocks newline
    for (size_t k = src_.find("{%", q); k != std::string_view::npos; k = src_.find("{%", k + 1)) {
      size_t r = k + 2;
      char sign = r < src_.size() && (src_[r] == '-' || src_[r] == '+') ? src_[r++] : 0;
      r = skip_space(src_, r);
      if (src_.compare(r, 6, "endraw") != 0) continue;
      r = skip_space(src_, r + 6);
      char esign = 0;
      if (src_.compare(r, 3, "-%}") == 0 || src_.compare(r, 3, "+%}") == 0) esign = src_[r++];
      if (src_.compare(r, 2, "%}") != 0) continue;
      std::string_view text = src_.substr(q, k - q);
      if (sign == '-') text = rstrip(text);
      else if (sign != '+') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string_view::npos ? 0 : l_pos + 1;
        if (l_pos > 0 && l_pos < text.size() && skip_space(text, l_pos) == text.size()) text = text.substr(0, l_pos);
      }
      emit_data(text, q);
      return end_of_tag(r + 2, esign, true);
    }
    throw error("missing end of raw directive", p);
  }

  size_t lex_tag(size_t p, bool block, size_t begin) {
    std::vector<char> balance;
    const size_t n = src_.size();
    while (true) {
      if (p >= n) throw error(block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'", begin);
      if (balance.empty()) {
        const char *close = block ? "%}" : "}}";
        if ((src_[p] == '-' || (block && src_[p] == '+')) && src_.compare(p + 1, 2, close) == 0) {
          tokens_.push_back({block ? Tok::block_end : Tok::var_end, {}, 0, 0, p});
          return src_[p] == '-' ? skip_space(src_, p + 3) : p + 3;
        }
        if (src_.compare(p, 2, close) == 0) {
          tokens_.push_back({block ? Tok::block_end : Tok::var_end, {}, 0, 0, p});
          return block ? end_of_tag(p + 2, 0, true) : p + 2;
        }
      }
      char c = src_[p];
      if (is_ws(c)) {
        ++p;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        p = lex_number(p);
      } else if (is_name_start(c)) {
        size_t q = p;
        while (q < n && is_name_char(src_[q])) ++q;
        tokens_.push_back({Tok::name, std::string(src_.substr(p, q - p)), 0, 0, p});
        p = q;
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        const char *op = nullptr;
        for (const char *o : kOperators)
          if (src_.compare(p, std::strlen(o), o) == 0) {
            op = o;
            break;
          }
        if (!op) throw error(fmt::format("unexpected character '{}'", c), p);
        if (*op == '(' || *op == '[' || *op == '{') balance.push_back(*op == '(' ? ')' : *op == '[' ? ']' : '}');
        else if (*op == ')' || *op == ']' || *op == '}') {
          if (balance.empty()) throw error(fmt::format("unexpected '{}'", op), p);
          if (balance.back() != *op) throw error(fmt::format("unexpected '{}', expected '{}'", op, balance.back()), p);
          balance.pop_back();
        }
        tokens_.push_back({Tok::op, op, 0, 0, p});
        p += std::strlen(op);
      }
    }
  }

  size_t lex_number(size_t p) {
    const size_t n = src_.size();
    auto digits = [&](size_t q) {
      while (q < n && (std::isdigit(static_cast<unsigned char>(src_[q])) ||
                       (src_[q] == '_' && q + 1 < n && std::isdigit(static_cast<unsigned char>(src_[q + 1])))))
        ++q;
      return q;
    };
    size_t q = digits(p);
    bool is_float = false;
    if (q + 1 < n && src_[q] == '.' && std::isdigit(static_cast<unsigned char>(src_[q + 1]))) {
      q = digits(q + 1);
      is_float = true;
    }
    if (q < n && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t r = q + 1;
      if (r < n && (src_[r] == '+' || src_[r] == '-')) ++r;
      if (r < n && std::isdigit(static_cast<unsigned char>(src_[r]))) {
        q = digits(r);
        is_float = true;
      }
    }
    std::string s;
    for (size_t k = p; k < q; ++k)
      if (src_[k] != '_') s += src_[k];
    Token t{is_float ? Tok::floating : Tok::integer, s, 0, 0, p};
    if (is_float) t.f = std::strtod(s.c_str(), nullptr);  // as Python: 1e999 is inf, 1e-999 is 0.0
    else {
      try {
        t.i = std::stoll(s);
      } catch (const std::exception &) {
        throw error("integer literal too large", p);
      }
    }
    tokens_.push_back(std::move(t));
    return q;
  }

  // A quoted string with Python's escapes (Jinja2 decodes them as unicode-escape).
  size_t lex_string(size_t p) {
    const char q = src_[p];
    std::string out;
    size_t k = p + 1;
    const size_t n = src_.size();
    while (true) {
      if (k >= n) throw error("unterminated string", p);
      char c = src_[k];
      if (c == q) break;
      if (c != '\\') {
        out += c;
        ++k;
        continue;
      }
      if (k + 1 >= n) throw error("unterminated string", p);
      char e = src_[k + 1];
      k += 2;
      auto hex = [&](size_t len) {
        if (k + len > n) throw error("truncated escape in string", k);
        char32_t v = 0;
        for (size_t d = 0; d < len; ++d) {
          char h = src_[k + d];
          if (!std::isxdigit(static_cast<unsigned char>(h))) throw error("truncated escape in string", k);
          v = v * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
        }
        k += len;
        return v;
      };
      switch (e) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': utf8::append(out, hex(2)); break;
        case 'u': utf8::append(out, hex(4)); break;
        case 'U': utf8::append(out, hex(8)); break;
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = static_cast<char32_t>(e - '0');
            for (int d = 0; d < 2 && k < n && src_[k] >= '0' && src_[k] <= '7'; ++d) v = v * 8 + static_cast<char32_t>(src_[k++] - '0');
            utf8::append(out, v);
          } else {  // Python keeps an unknown escape as it is
            out += '\\';
            out += e;
          }
      }
    }
    tokens_.push_back({Tok::string, std::move(out), 0, 0, p});
    return k + 1;
  }

  std::string_view src_;
  std::vector<Token> tokens_;
};

// Line and column (1-based) of a byte offset.
std::pair<int, int> place(std::string_view src, size_t offset) {
  offset = std::min(offset, src.size());
  int line = 1 + static_cast<int>(std::count(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
  size_t nl = offset == 0 ? std::string_view::npos : src.rfind('\n', offset - 1);
  size_t start = nl == std::string_view::npos ? 0 : nl + 1;
  return {line, static_cast<int>(char_count(src.substr(start, offset - start))) + 1};
}

Error Lexer::error(std::string msg, size_t offset) const {
  auto [l, c] = place(src_, offset);
  return Error(std::move(msg), l, c);
}

class Parser {
 public:
  Parser(std::string_view src, std::vector<Token> tokens) : src_(src), t_(std::move(tokens)) {}

  Body parse_all(bool &has_generation) {
    Body b = subparse({});
    if (cur().type != Tok::eof) throw fail("unexpected tag");
    has_generation = has_generation_;
    return b;
  }

 private:
  const Token &cur() const { return t_[k_]; }
  const Token &look(size_t d = 1) const { return t_[std::min(k_ + d, t_.size() - 1)]; }
  Token next() { return t_[k_ < t_.size() - 1 ? k_++ : k_]; }
  bool is_op(const char *op) const { return cur().type == Tok::op && cur().text == op; }
  bool is_name(const char *name) const { return cur().type == Tok::name && cur().text == name; }
  bool skip_op(const char *op) {
    if (!is_op(op)) return false;
    ++k_;
    return true;
  }
  bool skip_name(const char *name) {
    if (!is_name(name)) return false;
    ++k_;
    return true;
  }
  std::string describe(const Token &t) const {
    switch (t.type) {
      case Tok::data: return "template data";
      case Tok::var_begin: return "'{{'";
      case Tok::var_end: return "'}}'";
      case Tok::block_begin: return "'{%'";
      case Tok::block_end: return "'%}'";
      case Tok::eof: return "end of template";
      case Tok::string: return "string";
      case Tok::integer:
      case Tok::floating: return "number";
      default: return "'" + t.text + "'";
    }
  }
  Error fail(const std::string &msg, size_t offset) const {
    auto [l, c] = place(src_, offset);
    return Error(msg, l, c);
  }
  Error fail(const std::string &msg) const { return fail(msg, cur().offset); }
  void expect_op(const char *op) {
    if (!skip_op(op)) throw fail(fmt::format("expected '{}', got {}", op, describe(cur())));
  }
  void expect(Tok type, const char *what) {
    if (cur().type != type) throw fail(fmt::format("expected {}, got {}", what, describe(cur())));
    ++k_;
  }
  std::string expect_name() {
    if (cur().type != Tok::name) throw fail(fmt::format("expected a name, got {}", describe(cur())));
    return next().text;
  }
  NodePtr node(Node::Kind kind, size_t offset) const {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    auto [l, c] = place(src_, offset);
    n->line = l;
    n->column = c;
    return n;
  }

  // Statements until a block whose first name is one of `ends` (left unconsumed, after its '{%').
  Body subparse(const std::vector<std::string_view> &ends) {
    Body body;
    while (cur().type != Tok::eof) {
      const Token &t = cur();
      if (t.type == Tok::data) {
        auto n = node(Node::Kind::text, t.offset);
        n->name = t.text;
        body.push_back(std::move(n));
        ++k_;
      } else if (t.type == Tok::var_begin) {
        auto n = node(Node::Kind::output, t.offset);
        ++k_;
        n->kids.push_back(parse_tuple(false, true, {}, false));
        expect(Tok::var_end, "'}}'");
        body.push_back(std::move(n));
      } else if (t.type == Tok::block_begin) {
        ++k_;
        if (cur().type == Tok::name && std::find(ends.begin(), ends.end(), cur().text) != ends.end()) return body;
        body.push_back(parse_statement());
        expect(Tok::block_end, "'%}'");
      } else {
        throw fail(fmt::format("unexpected {}", describe(t)));
      }
    }
    if (!ends.empty()) {
      std::string want;
      for (auto e : ends) want += (want.empty() ? "'" : " or '") + std::string(e) + "'";
      throw fail(fmt::format("unexpected end of template: a block is not closed (expected {})", want));
    }
    return body;
  }

  // After a statement's opening tag: its '%}', the body, and the end name (consumed).
  Body statements(const std::vector<std::string_view> &ends, bool drop_end) {
    expect(Tok::block_end, "'%}'");
    Body b = subparse(ends);
    if (drop_end) ++k_;
    return b;
  }

  NodePtr parse_statement() {
    const Nesting nest(*this, cur().offset);
    if (cur().type != Tok::name) throw fail(fmt::format("expected a tag name, got {}", describe(cur())));
    const std::string tag = cur().text;
    const size_t at = cur().offset;
    if (tag == "for") return parse_for();
    if (tag == "if") return parse_if();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "call") return parse_call_block();
    if (tag == "filter") {
      ++k_;
      auto n = node(Node::Kind::filter_block, at);
      n->kids.push_back(parse_filter(node(Node::Kind::captured, at), true));
      n->body = statements({"endfilter"}, true);
      return n;
    }
    if (tag == "break" || tag == "continue") {
      ++k_;
      return node(tag == "break" ? Node::Kind::break_ : Node::Kind::continue_, at);
    }
    if (tag == "generation") {
      ++k_;
      has_generation_ = true;
      auto n = node(Node::Kind::generation, at);
      n->body = statements({"endgeneration"}, true);
      return n;
    }
    static const char *const unsupported[] = {"extends", "include", "import", "from", "block", "with", "autoescape", "do", "trans"};
    for (const char *u : unsupported)
      if (tag == u) throw fail(fmt::format("the '{}' tag is not supported in chat templates", tag));
    throw fail(fmt::format("unknown tag '{}'", tag));
  }

  NodePtr parse_for() {
    auto n = node(Node::Kind::for_, next().offset);
    n->targets = parse_targets({"in"});
    if (!skip_name("in")) throw fail(fmt::format("expected 'in', got {}", describe(cur())));
    n->kids.push_back(parse_tuple(false, false, {"recursive"}, false));
    n->kids.push_back(skip_name("if") ? parse_expression(true) : nullptr);
    if (is_name("recursive")) throw fail("recursive for loops are not supported");
    n->body = statements({"endfor", "else"}, false);
    if (next().text == "else") n->else_body = statements({"endfor"}, true);
    return n;
  }

  NodePtr parse_if() {
    auto n = node(Node::Kind::if_, next().offset);
    n->kids.push_back(parse_tuple(false, false, {}, false));
    n->body = statements({"elif", "else", "endif"}, false);
    Token t = next();
    if (t.text == "elif") {
      --k_;  // parse the elif as a nested if (its own end is the shared endif)
      n->else_body.push_back(parse_if());
    } else if (t.text == "else") {
      n->else_body = statements({"endif"}, true);
    }
    return n;
  }

  NodePtr parse_set() {
    const size_t at = next().offset;
    std::vector<std::string> targets;
    std::string attr;
    if (cur().type == Tok::name && look().type == Tok::op && look().text == ".") {
      targets.push_back(next().text);
      ++k_;
      attr = expect_name();
    } else {
      targets = parse_targets({});
    }
    if (skip_op("=")) {
      auto n = node(Node::Kind::set, at);
      n->targets = std::move(targets);
      n->attr = std::move(attr);
      n->kids.push_back(parse_tuple(false, true, {}, false));
      return n;
    }
    auto n = node(Node::Kind::set_block, at);
    n->targets = std::move(targets);
    n->attr = std::move(attr);
    n->kids.push_back(is_op("|") ? parse_filter(node(Node::Kind::captured, at), false) : nullptr);
    n->body = statements({"endset"}, true);
    return n;
  }

  void parse_signature(Node &n) {
    expect_op("(");
    bool defaults = false;
    while (!is_op(")")) {
      if (!n.params.empty()) expect_op(",");
      std::string name = expect_name();
      NodePtr def;
      if (skip_op("=")) {
        def = parse_expression(true);
        defaults = true;
      } else if (defaults) {
        throw fail("non-default argument follows default argument");
      }
      n.params.emplace_back(std::move(name), std::move(def));
    }
    expect_op(")");
  }

  NodePtr parse_macro() {
    auto n = node(Node::Kind::macro, next().offset);
    n->name = expect_name();
    parse_signature(*n);
    n->body = statements({"endmacro"}, true);
    return n;
  }

  NodePtr parse_call_block() {
    auto n = node(Node::Kind::call_block, next().offset);
    if (is_op("(")) parse_signature(*n);
    NodePtr call = parse_expression(true);
    if (call->kind != Node::Kind::call) throw fail("expected a call after 'call'");
    n->kids.push_back(std::move(call));
    n->body = statements({"endcall"}, true);
    return n;
  }

  // Assignment targets: a name or a tuple of names.
  std::vector<std::string> parse_targets(const std::vector<std::string_view> &ends) {
    std::vector<std::string> names;
    bool paren = skip_op("(");
    while (true) {
      if (!names.empty()) {
        if (!skip_op(",")) break;
      }
      if (cur().type == Tok::name && std::find(ends.begin(), ends.end(), cur().text) != ends.end()) break;
      if (paren && is_op(")")) break;
      names.push_back(expect_name());
    }
    if (paren) expect_op(")");
    if (names.empty()) throw fail("expected an assignment target");
    return names;
  }

  bool tuple_end(const std::vector<std::string_view> &extra) const {
    const Token &t = cur();
    if (t.type == Tok::var_end || t.type == Tok::block_end || t.type == Tok::eof) return true;
    if (t.type == Tok::op && t.text == ")") return true;
    return t.type == Tok::name && std::find(extra.begin(), extra.end(), t.text) != extra.end();
  }

  NodePtr parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string_view> &extra, bool explicit_parens) {
    const size_t at = cur().offset;
    std::vector<NodePtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_end(extra)) break;
      items.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) throw fail(fmt::format("expected an expression, got {}", describe(cur())));
    }
    auto n = node(Node::Kind::tuple, at);
    n->kids = std::move(items);
    return n;
  }

  NodePtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  NodePtr parse_condexpr() {
    NodePtr e = parse_or();
    while (is_name("if")) {
      const size_t at = next().offset;
      auto n = node(Node::Kind::cond, at);
      NodePtr test = parse_or();
      NodePtr other = skip_name("else") ? parse_condexpr() : nullptr;
      n->kids.push_back(std::move(e));
      n->kids.push_back(std::move(test));
      n->kids.push_back(std::move(other));
      e = std::move(n);
    }
    return e;
  }

  NodePtr binary(Node::Kind kind, std::string op, NodePtr a, NodePtr b, size_t at) {
    auto n = node(kind, at);
    n->name = std::move(op);
    n->kids.push_back(std::move(a));
    n->kids.push_back(std::move(b));
    return n;
  }

  NodePtr parse_or() {
    NodePtr e = parse_and();
    while (is_name("or")) {
      size_t at = next().offset;
      e = binary(Node::Kind::or_, "or", std::move(e), parse_and(), at);
    }
    return e;
  }
  NodePtr parse_and() {
    NodePtr e = parse_not();
    while (is_name("and")) {
      size_t at = next().offset;
      e = binary(Node::Kind::and_, "and", std::move(e), parse_not(), at);
    }
    return e;
  }
  NodePtr parse_not() {
    if (is_name("not")) {
      const Nesting nest(*this, cur().offset);
      auto n = node(Node::Kind::not_, next().offset);
      n->kids.push_back(parse_not());
      return n;
    }
    return parse_compare();
  }
  NodePtr parse_compare() {
    const size_t at = cur().offset;
    NodePtr e = parse_math1();
    std::vector<NodePtr> operands;
    std::vector<std::string> ops;
    while (true) {
      if (cur().type == Tok::op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
                                    cur().text == ">" || cur().text == ">=")) {
        ops.push_back(next().text);
      } else if (is_name("in")) {
        ++k_;
        ops.push_back("in");
      } else if (is_name("not") && look().type == Tok::name && look().text == "in") {
        k_ += 2;
        ops.push_back("notin");
      } else {
        break;
      }
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return e;
    auto n = node(Node::Kind::compare, at);
    n->kids.push_back(std::move(e));
    for (auto &o : operands) n->kids.push_back(std::move(o));
    n->ops = std::move(ops);
    return n;
  }
  NodePtr parse_math1() {
    NodePtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      Token t = next();
      e = binary(Node::Kind::binary, t.text, std::move(e), parse_concat(), t.offset);
    }
    return e;
  }
  NodePtr parse_concat() {
    NodePtr e = parse_math2();
    while (is_op("~")) {
      Token t = next();
      e = binary(Node::Kind::binary, "~", std::move(e), parse_math2(), t.offset);
    }
    return e;
  }
  NodePtr parse_math2() {
    NodePtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      Token t = next();
      e = binary(Node::Kind::binary, t.text, std::move(e), parse_pow(), t.offset);
    }
    return e;
  }
  NodePtr parse_pow() {
    NodePtr e = parse_unary(true);
    while (is_op("**")) {
      Token t = next();
      e = binary(Node::Kind::binary, "**", std::move(e), parse_unary(true), t.offset);
    }
    return e;
  }
  NodePtr parse_unary(bool with_filter) {
    NodePtr e;
    if (is_op("-") || is_op("+")) {
      const Nesting nest(*this, cur().offset);
      Token t = next();
      e = node(t.text == "-" ? Node::Kind::neg : Node::Kind::pos, t.offset);
      e->kids.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  NodePtr parse_primary() {
    const Nesting nest(*this, cur().offset);
    const Token t = cur();
    if (t.type == Tok::name) {
      ++k_;
      auto n = node(Node::Kind::literal, t.offset);
      if (t.text == "true" || t.text == "True") n->value = Value::boolean(true);
      else if (t.text == "false" || t.text == "False") n->value = Value::boolean(false);
      else if (t.text == "none" || t.text == "None") n->value = Value::none();
      else {
        n->kind = Node::Kind::name;
        n->name = t.text;
      }
      return n;
    }
    if (t.type == Tok::string) {
      std::string s;
      while (cur().type == Tok::string) s += next().text;
      auto n = node(Node::Kind::literal, t.offset);
      n->value = Value::string(std::move(s));
      return n;
    }
    if (t.type == Tok::integer || t.type == Tok::floating) {
      ++k_;
      auto n = node(Node::Kind::literal, t.offset);
      n->value = t.type == Tok::integer ? Value::integer(t.i) : Value::floating(t.f);
      return n;
    }
    if (is_op("(")) {
      ++k_;
      NodePtr e = parse_tuple(false, true, {}, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      auto n = node(Node::Kind::list, next().offset);
      while (!is_op("]")) {
        if (!n->kids.empty()) expect_op(",");
        if (is_op("]")) break;
        n->kids.push_back(parse_expression(true));
      }
      expect_op("]");
      return n;
    }
    if (is_op("{")) {
      auto n = node(Node::Kind::dict, next().offset);
      while (!is_op("}")) {
        if (!n->kids.empty()) expect_op(",");
        if (is_op("}")) break;
        n->kids.push_back(parse_expression(true));
        expect_op(":");
        n->kids.push_back(parse_expression(true));
      }
      expect_op("}");
      return n;
    }
    throw fail(fmt::format("unexpected {}", describe(t)));
  }

  NodePtr parse_postfix(NodePtr e) {
    while (true) {
      if (is_op(".") || is_op("[")) e = parse_subscript(std::move(e));
      else if (is_op("(")) e = parse_call(std::move(e));
      else return e;
    }
  }

  NodePtr parse_filter_expr(NodePtr e) {
    while (true) {
      if (is_op("|")) e = parse_filter(std::move(e), false);
      else if (is_name("is")) e = parse_test(std::move(e));
      else if (is_op("(")) e = parse_call(std::move(e));
      else return e;
    }
  }

  NodePtr parse_subscript(NodePtr e) {
    Token t = next();
    if (t.text == ".") {
      Token a = next();
      if (a.type == Tok::name) {
        auto n = node(Node::Kind::attr, t.offset);
        n->name = a.text;
        n->kids.push_back(std::move(e));
        return n;
      }
      if (a.type != Tok::integer) throw fail("expected a name or a number after '.'", a.offset);
      auto n = node(Node::Kind::item, t.offset);
      auto idx = node(Node::Kind::literal, a.offset);
      idx->value = Value::integer(a.i);
      n->kids.push_back(std::move(e));
      n->kids.push_back(std::move(idx));
      return n;
    }
    std::vector<NodePtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    if (args.size() == 1 && args[0]->kind == Node::Kind::slice) {
      args[0]->kids.insert(args[0]->kids.begin(), std::move(e));
      return std::move(args[0]);
    }
    for (const NodePtr &a : args)  // x[1:, 2]: a tuple of slices, which no list or dict accepts
      if (a->kind == Node::Kind::slice) throw fail("a slice inside a tuple subscript is not supported", t.offset);
    auto n = node(Node::Kind::item, t.offset);
    n->kids.push_back(std::move(e));
    if (args.size() == 1) {
      n->kids.push_back(std::move(args[0]));
    } else {
      auto tup = node(Node::Kind::tuple, t.offset);
      tup->kids = std::move(args);
      n->kids.push_back(std::move(tup));
    }
    return n;
  }

  NodePtr parse_subscribed() {
    const size_t at = cur().offset;
    std::vector<NodePtr> parts;
    if (is_op(":")) {
      ++k_;
      parts.push_back(nullptr);
    } else {
      NodePtr e = parse_expression(true);
      if (!is_op(":")) return e;
      ++k_;
      parts.push_back(std::move(e));
    }
    if (is_op(":") || is_op("]") || is_op(",")) parts.push_back(nullptr);
    else parts.push_back(parse_expression(true));
    if (skip_op(":")) parts.push_back(is_op("]") || is_op(",") ? nullptr : parse_expression(true));
    else parts.push_back(nullptr);
    auto n = node(Node::Kind::slice, at);
    n->kids = std::move(parts);
    return n;
  }

  void parse_call_args(Node &n) {
    expect_op("(");
    bool need_comma = false;
    while (!is_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) throw fail("*args and **kwargs in calls are not supported");
      if (cur().type == Tok::name && look().type == Tok::op && look().text == "=") {
        std::string key = next().text;
        ++k_;
        n.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!n.kwargs.empty()) throw fail("a positional argument follows a keyword argument");
        n.kids.push_back(parse_expression(true));
      }
      need_comma = true;
    }
    expect_op(")");
  }

  NodePtr parse_call(NodePtr e) {
    auto n = node(Node::Kind::call, cur().offset);
    n->line = e->line;  // a failing call is reported where its callee is written
    n->column = e->column;
    n->kids.push_back(std::move(e));
    parse_call_args(*n);
    return n;
  }

  NodePtr parse_filter(NodePtr e, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) ++k_;
      start_inline = false;
      const size_t at = cur().offset;
      std::string name = expect_name();
      while (is_op(".")) {
        ++k_;
        name += "." + expect_name();
      }
      // An unknown filter fails when it is used, not here: Jinja2 (3.x) lets a template name one in
      // a branch it never takes.
      auto n = node(Node::Kind::filter, at);
      n->name = std::move(name);
      n->kids.push_back(std::move(e));
      if (is_op("(")) parse_call_args(*n);
      e = std::move(n);
    }
    return e;
  }

  NodePtr parse_test(NodePtr e) {
    ++k_;  // is
    bool negated = skip_name("not");
    const size_t at = cur().offset;
    std::string name = expect_name();
    while (is_op(".")) {
      ++k_;
      name += "." + expect_name();
    }
    auto n = node(Node::Kind::test, at);
    n->name = std::move(name);
    n->negated = negated;
    n->kids.push_back(std::move(e));
    if (is_op("(")) {
      parse_call_args(*n);
    } else if ((cur().type == Tok::name || cur().type == Tok::string || cur().type == Tok::integer ||
                cur().type == Tok::floating || is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) throw fail("you cannot chain multiple tests with 'is'");
      n->kids.push_back(parse_postfix(parse_primary()));
    }
    return n;
  }

  std::string_view src_;
  std::vector<Token> t_;
  size_t k_ = 0;
  // How deep blocks and expressions nest: bounded, so a hostile template cannot overflow the stack
  // (CPython's parser stops at 200 nested parentheses, too).
  static constexpr int kMaxNesting = 200;
  int nesting_ = 0;
  struct Nesting {
    Parser &p;
    Nesting(Parser &parser, size_t offset) : p(parser) {
      if (++p.nesting_ > kMaxNesting) {
        --p.nesting_;
        throw p.fail(fmt::format("blocks and expressions nest deeper than {} levels", kMaxNesting), offset);
      }
    }
    ~Nesting() { --p.nesting_; }
  };
  bool has_generation_ = false;
};

}  // namespace

Body parse_template(std::string_view source, bool &has_generation) {
  // Jinja2 normalises every newline to \n and drops one trailing newline (keep_trailing_newline=False).
  std::string src;
  src.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      src += '\n';
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      src += source[k];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  if (size_t bad = utf8::find_invalid(src); bad != std::string::npos) {
    auto [l, c] = place(src, bad);
    throw Error("invalid UTF-8 in the template", l, c);
  }
  Lexer lexer(src);
  Parser parser(src, lexer.run());
  return parser.parse_all(has_generation);
}

}  // namespace keel::jinja
