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
