// Pipeline files: parsing, overrides, host-section schema, parameter checking.
#include <doctest/doctest.h>

#include "temp_path.hpp"

#include <filesystem>
#include <fstream>

#include "common/errors.hpp"
#include "config/pipeline_config.hpp"
#include "plugin_host/params.hpp"

namespace fs = std::filesystem;
using namespace keel;

static fs::path write_toml(const std::string &name, const std::string &text) {
  fs::path p = temp_path("test-" + name + ".toml");
  std::ofstream(p) << text;
  return p;
}

static std::string error_of(const fs::path &p, const std::vector<std::string> &sets = {}) {
  try {
    load_pipeline_config(p, sets);
  } catch (const UserError &e) {
    return e.what();
  }
  return "";
}

TEST_CASE("defaults fill every host section and the run name comes from the file") {
  PipelineConfig c = load_pipeline_config(write_toml("defaults", "[run]\nsteps = 7\n"), {});
  CHECK(c.run_name() == "keel-test-defaults");
  CHECK(*c.doc["run"]["steps"].value<int64_t>() == 7);
  CHECK(*c.doc["run"]["checkpoint_every"].value<int64_t>() == 500);
  CHECK(*c.doc["optim"]["lr"].value<double>() == doctest::Approx(1e-5));
  CHECK(*c.doc["eval"]["max_new_tokens"].value<int64_t>() == 96);
  CHECK(c.run_dir() == fs::path("runs") / "keel-test-defaults");
}

TEST_CASE("--set overrides are typed, reach pipeline entries, and bare words are strings") {
  fs::path p = write_toml("sets", "[run]\nsteps = 7\n[[pipeline]]\nplugin = \"a\"\nx = 1\n[[pipeline]]\nplugin = \"b\"\n");
  PipelineConfig c = load_pipeline_config(
      p, {"run.steps=200", "run.name=my-run", "optim.betas=[0.8, 0.9]", "pipeline.a.x=0.05", "pipeline.1.y=true"});
  CHECK(*c.doc["run"]["steps"].value<int64_t>() == 200);
  CHECK(c.run_name() == "my-run");
  CHECK(*c.doc["optim"]["betas"][0].value<double>() == doctest::Approx(0.8));
  REQUIRE(c.entries.size() == 2);
  CHECK(*c.entries[0].params["x"].value<double>() == doctest::Approx(0.05));
  CHECK(*c.entries[1].params["y"].value<bool>());
  CHECK(error_of(p, {"run.steps"}).find("expected key=value") != std::string::npos);
  CHECK(error_of(p, {"run.steps=abc"}).find("--set: [run]: parameter 'steps': expected an integer") != std::string::npos);
}

TEST_CASE("host sections reject unknown keys with file:line:col and the accepted keys") {
  std::string e = error_of(write_toml("unknown-key", "[run]\nsteps = 7\nstepz = 3\n"));
  CHECK(e.find("keel-test-unknown-key.toml:3:9: [run]: unknown parameter 'stepz'") != std::string::npos);
  CHECK(e.find("accepts name, output_dir, steps") != std::string::npos);
  CHECK(error_of(write_toml("betas", "[optim]\nbetas = [0.9]\n")).find("betas: expected two numbers") != std::string::npos);
  CHECK(error_of(write_toml("dtype", "[model]\ndtype = \"fp8\"\n")).find("expected one of \"fp32\", \"bf16\", \"fp16\", got \"fp8\"") != std::string::npos);
  CHECK(error_of(write_toml("data", "[data.target]\nformat = \"text\"\n")).find("[data.target]: missing required parameter 'path'") != std::string::npos);
  CHECK(error_of(write_toml("entry", "[[pipeline]]\nepsilon = 0.1\n")).find("has no plugin") != std::string::npos);
}

TEST_CASE("parameter specs: mismatch messages and defaults") {
  keel_param_spec_t f{sizeof(keel_param_spec_t), "eps", KEEL_PARAM_FLOAT, "0.1", 0, 1, nullptr, ""};
  toml::table t = toml::parse("a = 2\nb = 0.5\nc = \"x\"\nd = [\"a\", 3]\nn = nan");
  CHECK(param_mismatch(f, *t.get("a")) == "expected a number in [0, 1], got 2");
  CHECK(param_mismatch(f, *t.get("b")) == "");
  CHECK(param_mismatch(f, *t.get("c")) == "expected a number in [0, 1], got a string");
  CHECK(param_mismatch(f, *t.get("n")).find("got nan") != std::string::npos);
  keel_param_spec_t l{sizeof(keel_param_spec_t), "on", KEEL_PARAM_STRING_LIST, "[]", 0, 0, nullptr, ""};
  CHECK(param_mismatch(l, *t.get("d")) == "expected an array of strings, got an element that is an integer");
  keel_param_spec_t bad{sizeof(keel_param_spec_t), "x", KEEL_PARAM_INT, "0.5", 0, 0, nullptr, ""};
  CHECK_THROWS_WITH_AS(check_param_spec(bad), doctest::Contains("default 0.5 does not fit"), UserError);
  keel_param_spec_t req{sizeof(keel_param_spec_t), "path", KEEL_PARAM_STRING, nullptr, 0, 0, nullptr, ""};
  std::vector<const keel_param_spec_t *> specs{&f, &req};
  auto where = [](const std::string &) { return std::string("f:1:1"); };
  CHECK_THROWS_WITH_AS(resolve_params("p", specs, toml::table{}, where),
                       doctest::Contains("f:1:1: p: missing required parameter 'path' (a string)"), UserError);
  toml::table given = toml::parse("path = \"x\"");
  toml::table r = resolve_params("p", specs, given, where);
  CHECK(*r["eps"].value<double>() == doctest::Approx(0.1));
}

TEST_CASE("the params view reads paths into arrays and tables, and JSON") {
  ParamsView v(toml::parse("stages = [{until = 10, lr = 1e-6}, {lr = 2e-6}]\nsources = {target = 0.9, general = 0.1}\nname = \"x\""));
  const keel_params_t *p = v.c();
  int64_t until = 0;
  double lr = 0;
  uint64_t n = 0;
  const char *s = nullptr;
  CHECK(p->get_int(p, "stages.0.until", &until) == KEEL_OK);
  CHECK(until == 10);
  CHECK(p->get_double(p, "stages.1.lr", &lr) == KEEL_OK);
  CHECK(lr == doctest::Approx(2e-6));
  CHECK(p->has(p, "stages.1.until") == 0);
  CHECK(p->get_int(p, "stages.7.until", &until) == KEEL_NOT_FOUND);
  CHECK(p->get_int(p, "name", &until) == KEEL_INVALID_ARGUMENT);
  CHECK(p->size(p, "sources", &n) == KEEL_OK);
  CHECK(n == 2);
  CHECK(p->key_at(p, "sources", 1, &s) == KEEL_OK);
  CHECK(std::string(s) == "target");  // sorted order
  CHECK(p->get_json(p, "sources", &s) == KEEL_OK);
  CHECK(std::string(s) == R"({"general":0.1,"target":0.9})");
  CHECK(p->get_json(p, "name", &s) == KEEL_OK);
  CHECK(std::string(s) == "\"x\"");
}
