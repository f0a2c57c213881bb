// The Jinja engine against jinja2: tests/jinja/cases.jsonl holds snippets rendered by jinja2 in
// transformers' chat-template environment (tests/jinja/cases.py writes it; the ctest
// jinja.cases_current checks it is what the pinned jinja2 renders today).
#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "jinja/template.hpp"

using keel::jinja::Error;
using keel::jinja::Template;
using keel::jinja::Value;

TEST_CASE("jinja: every reference snippet renders as jinja2 renders it, or fails where jinja2 fails") {
  std::ifstream in(KEEL_SOURCE_DIR "/tests/jinja/cases.jsonl");
  REQUIRE(in.good());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto c = nlohmann::ordered_json::parse(line);
    const std::string name = c["name"];
    CAPTURE(name);
    Value ctx = Value::from_json(c["context"]);
    bool failed = false;
    std::string got, why;
    try {
      got = Template::parse(c["template"].get<std::string>()).render(ctx).text;
    } catch (const Error &e) {
      failed = true;
      why = e.what();
    }
    CAPTURE(why);
    if (c.contains("error")) {
      CHECK(failed);
    } else {
      REQUIRE_FALSE(failed);
      CHECK(got == c["expected"].get<std::string>());
    }
    ++n;
  }
  CHECK(n >= 60);
}

TEST_CASE("jinja: {% generation %} spans are the bytes the block wrote, in order") {
  Template t = Template::parse(
      "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}!"
      "{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}");
  CHECK(t.has_generation());
  Value ctx = Value::from_json(nlohmann::ordered_json::parse(
      R"({"messages": [{"role": "user", "content": "é"}, {"role": "assistant", "content": "ab"},
                       {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})"));
  auto r = t.render(ctx);
  REQUIRE(r.generation.size() == 2);
  CHECK(r.text.substr(r.generation[0].first, r.generation[0].second - r.generation[0].first) == "ab!");
  CHECK(r.text.substr(r.generation[1].first, r.generation[1].second - r.generation[1].first) == "d!");
  CHECK_FALSE(Template::parse("{{ 1 }}").has_generation());
}

TEST_CASE("jinja: errors carry the template's line and column and name what failed") {
  auto error_of = [](const std::string &src) {
    try {
      Template::parse(src).render(Value::make_dict());
    } catch (const Error &e) {
      return std::make_tuple(e.line, e.column, std::string(e.what()), e.raised);
    }
    return std::make_tuple(0, 0, std::string(), false);
  };
  auto [l1, c1, m1, r1] = error_of("line one\n  {{ raise_exception('no system role') }}");
  CHECK(l1 == 2);
  CHECK(c1 == 6);
  CHECK(m1 == "no system role");
  CHECK(r1);
  auto [l2, c2, m2, r2] = error_of("a\nb\n{% include 'x' %}");
  CHECK(l2 == 3);
  CHECK(m2.find("'include' tag is not supported") != std::string::npos);
  CHECK_FALSE(r2);
  auto [l3, c3, m3, r3] = error_of("{{ x | frobnicate }}");
  CHECK(m3.find("no filter named 'frobnicate'") != std::string::npos);
  auto [l4, c4, m4, r4] = error_of("{% set l = [1] %}\n{{ l.append(2) }}");
  CHECK(l4 == 2);
  CHECK(m4.find("'append' of 'list' object is unsafe") != std::string::npos);
}

TEST_CASE("jinja: a hostile template fails with an Error within the sandbox's bounds") {
  auto error_of = [](const std::string &src) -> std::string {
    try {
      Template::parse(src).render(Value::make_dict());
    } catch (const Error &e) {
      return e.what();
    }
    return "";
  };
  auto repeat = [](const std::string &s, int n) {
    std::string out;
    for (int k = 0; k < n; ++k) out += s;
    return out;
  };
  // Nesting: the parser's stack is bounded (found by the chat_template fuzz target's inputs).
  CHECK(error_of("{{ " + repeat("(", 5000) + "1" + repeat(")", 5000) + " }}").find("nest deeper than 200") != std::string::npos);
  CHECK(error_of(repeat("{% if true %}", 5000) + repeat("{% endif %}", 5000)).find("nest deeper than 200") != std::string::npos);
  CHECK(error_of("{{ " + repeat("not ", 5000) + "1 }}").find("nest deeper than 200") != std::string::npos);
  CHECK(error_of("{{ " + repeat("(", 150) + "1" + repeat(")", 150) + " }}").empty());  // within the bound
  // Recursion, run time, size, integer overflow.
  CHECK(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("macro calls nest deeper than 200") != std::string::npos);
  CHECK(error_of("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}").find("more than 5000000 steps") != std::string::npos);
  CHECK(error_of("{{ 'a' * 10000000000 }}").find("exceeds the sandbox's 16 MiB") != std::string::npos);
  CHECK(error_of("{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}").find("16 MiB") != std::string::npos);
  CHECK(error_of("{{ [1, 2] * 10000000 }}").find("more than 1048576 items") != std::string::npos);
  CHECK(error_of("{{ 9223372036854775807 + 1 }}").find("integer overflow in +") != std::string::npos);
  CHECK(error_of("{{ 2 ** 1000000000000 }}").find("integer overflow in **") != std::string::npos);
  CHECK(error_of("{{ -(-9223372036854775807 - 1) }}").find("integer overflow") != std::string::npos);
  // What Python gives where a C++ conversion would throw or be undefined.
  CHECK(Template::parse("{{ 1e999 }} {{ 1.5e-99999 }} {{ '1e999' | float }} {{ ' 12 ' | int }} {{ 3 ** 4 }}")
            .render(Value::make_dict()).text == "inf 0.0 inf 12 81");
  CHECK(error_of("{{ [1, 2][1:, 0] }}").find("slice inside a tuple subscript") != std::string::npos);
}
