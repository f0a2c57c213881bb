// The plugin host: loading and refusing libraries, pipelines, hook order, host services, remedies.
#include <doctest/doctest.h>

#include "temp_path.hpp"

#include <filesystem>
#include <fstream>

#include "common/errors.hpp"
#include "config/pipeline_config.hpp"
#include "plugin_host/pipeline.hpp"
#include "plugin_host/registry.hpp"

namespace fs = std::filesystem;
using namespace keel;

static const fs::path kFixtures = KEEL_FIXTURE_DIR;
static const fs::path kPlugins = KEEL_PLUGIN_DIR;

static std::string load_error(const std::string &name) {
  try {
    load_plugin_library(kFixtures / (name + ".so"));
  } catch (const UserError &e) {
    return e.what();
  }
  return "";
}

static PipelineConfig config(const std::string &name, const std::string &text) {
  fs::path p = temp_path("host-" + name + ".toml");
  std::ofstream(p) << text;
  return load_pipeline_config(p, {});
}

static const PluginRegistry &registry() {
  static PluginRegistry reg({kFixtures, kPlugins});
  return reg;
}

TEST_CASE("a valid library loads once and its descriptor is read without creating it") {
  const PluginLibrary &a = load_plugin_library(kFixtures / "fixture_ok.so");
  const PluginLibrary &b = load_plugin_library(kFixtures / "fixture_ok.so");
  CHECK(&a == &b);  // cached: never loaded twice, never unloaded
  CHECK(a.name() == "fixture_ok");
  CHECK(a.descriptor->kind == KEEL_KIND_SCHEDULER);
  REQUIRE(a.params().size() == 2);
  CHECK(std::string(a.params()[0]->name) == "scale");
}

TEST_CASE("broken libraries are refused with the reason") {
  CHECK(load_error("fixture_no_entry").find("no 'keel_plugin_entry' symbol") != std::string::npos);
  const std::string abi = std::to_string(KEEL_ABI_MAJOR) + "." + std::to_string(KEEL_ABI_MINOR);
  CHECK(load_error("fixture_abi_major").find("ABI 2.0 is not supported: this keel speaks ABI " + abi) != std::string::npos);
  CHECK(load_error("fixture_abi_minor").find("ABI 1.99 is newer than this keel's ABI " + abi) != std::string::npos);
  CHECK(load_error("fixture_no_description").find("required field 'description'") != std::string::npos);
  CHECK(load_error("fixture_short_entry").find("keel_plugin_entry has no create function") != std::string::npos);
  CHECK(load_error("fixture_torch").find("built against torch 1.0.0, but this keel uses torch " + host_torch_version()) !=
        std::string::npos);
}

TEST_CASE("the registry finds plugins, keeps broken ones with their reason, and lists names on a miss") {
  const PluginRegistry &reg = registry();
  auto names = reg.names();
  CHECK(std::find(names.begin(), names.end(), "staged_lr") != names.end());
  CHECK(std::find(names.begin(), names.end(), "fixture_ok") != names.end());
  bool broken_listed = false;
  for (const auto &f : reg.found())
    if (f.path.filename() == "fixture_abi_major.so") broken_listed = !f.error.empty() && f.library == nullptr;
  CHECK(broken_listed);
  CHECK_THROWS_WITH_AS(reg.resolve("nope"), doctest::Contains("unknown plugin 'nope'. known plugins: "), UserError);
}

TEST_CASE("hooks run in pipeline order, on_end in reverse, and the trace records them") {
  PipelineConfig c = config("order", R"(
[run]
steps = 100
[optim]
lr = 1.0
[[pipeline]]
plugin = "fixture_ok"
scale = 0.5
[[pipeline]]
plugin = "staged_lr"
stages = [{until = 10, lr = 0.1}, {lr = 0.2}]
ramp_steps = 4
[[pipeline]]
plugin = "warmup_cosine"
warmup_steps = 0
min_lr_ratio = 0.5
[[pipeline]]
plugin = "fixture_ok"
enabled = false
)");
  HostServices s;
  s.total_steps = 100;
  PluginPipeline p(c, registry(), s);
  REQUIRE(p.plugins().size() == 3);  // the disabled entry is left out
  p.record_trace(true);
  p.on_start();
  // staged sets the LR outright (ignoring fixture_ok's 0.5), warmup_cosine scales it.
  CHECK(p.lr(0, 1.0) == doctest::Approx(0.1));
  CHECK(p.lr(10, 1.0) == doctest::Approx((0.1 + 0.1 * 1 / 4.0) * (0.5 + 0.25 * (1 + std::cos(M_PI * 10 / 99.0)))));
  CHECK(p.lr(99, 1.0) == doctest::Approx(0.2 * 0.5));
  CHECK(s.lr == doctest::Approx(0.1));
  p.on_end();
  const std::vector<std::string> want = {"on_start:fixture_ok", "lr:fixture_ok", "lr:staged_lr", "lr:warmup_cosine",
                                         "lr:fixture_ok", "lr:staged_lr", "lr:warmup_cosine", "lr:fixture_ok",
                                         "lr:staged_lr", "lr:warmup_cosine", "on_end:fixture_ok"};
  CHECK(p.trace() == want);
  toml::table resolved = p.resolved_config();
  CHECK(*resolved["pipeline"][1]["ramp_steps"].value<int64_t>() == 4);
  CHECK(*resolved["pipeline"][0]["mode"].value<std::string>() == "a");  // default filled in
}

TEST_CASE("warmup_cosine: linear warmup over 30% then cosine to the floor") {
  PipelineConfig c = config("cosine", "[[pipeline]]\nplugin = \"warmup_cosine\"\n");
  HostServices s;
  s.total_steps = 1000;
  PluginPipeline p(c, registry(), s);
  CHECK(p.lr(0, 1.0) == doctest::Approx(1.0 / 300));
  CHECK(p.lr(149, 1.0) == doctest::Approx(0.5));
  CHECK(p.lr(299, 1.0) == doctest::Approx(1.0));
  CHECK(p.lr(300, 1.0) == doctest::Approx(1.0));
  CHECK(p.lr(300 + 699 / 2.0, 1.0) == doctest::Approx(0.5).epsilon(0.01));
  CHECK(p.lr(999, 1.0) == doctest::Approx(0.0));
}

TEST_CASE("staged_lr defaults are the 1e-6 -> 3e-6 -> 1e-5 stages") {
  PipelineConfig c = config("staged", "[[pipeline]]\nplugin = \"staged_lr\"\n");
  HostServices s;
  PluginPipeline p(c, registry(), s);
  CHECK(p.lr(0, 5.0) == doctest::Approx(1e-6));
  CHECK(p.lr(999, 5.0) == doctest::Approx(1e-6));
  CHECK(p.lr(1000, 5.0) == doctest::Approx(3e-6));
  CHECK(p.lr(2000, 5.0) == doctest::Approx(1e-5));
  CHECK(p.lr(123456, 5.0) == doctest::Approx(1e-5));
}

TEST_CASE("a failing hook names the plugin; a C++ exception never crosses the boundary") {
  HostServices s;
  PluginPipeline a(config("throws", "[[pipeline]]\nplugin = \"fixture_throws\"\n"), registry(), s);
  CHECK(a.lr(2, 1.0) == doctest::Approx(1.0));
  s.step = 3;
  CHECK_THROWS_WITH_AS(a.lr(3, 1.0), doctest::Contains("plugin 'fixture_throws' failed in lr at step 3: deliberate failure"),
                       PluginError);
  PluginPipeline b(config("cpp", "[[pipeline]]\nplugin = \"fixture_cpp_throws\"\n"), registry(), s);
  CHECK_THROWS_WITH_AS(b.lr(0, 1.0), doctest::Contains("a C++ exception from a hook"), PluginError);
}

TEST_CASE("metrics publish through the host; alarms reach remedies with on, cooldown and max_fires") {
  PipelineConfig c = config("remedy", R"(
[[pipeline]]
plugin = "fixture_metric"
[[pipeline]]
plugin = "fixture_remedy"
on = ["fixture_metric"]
cooldown = 100
max_fires = 2
)");
  HostServices s;
  s.base_lr = 1.0;
  s.lr = 1.0;
  PluginPipeline p(c, registry(), s);
  keel_eval_batch_t empty{sizeof(keel_eval_batch_t), 5, 0.7, nullptr, 0};
  p.on_eval(empty);
  REQUIRE(s.metrics.count("fixture_metric") == 1);
  CHECK(s.metrics["fixture_metric"].alarm);
  CHECK(s.metrics["fixture_metric"].publisher == "fixture_metric");
  auto fire = [&](int64_t step, const char *metric) {
    keel_alarm_t a{sizeof(keel_alarm_t), metric, 0.0, step, "test"};
    return p.alarm(a).size();
  };
  CHECK(fire(10, "nonfinite") == 0);       // not in `on`
  CHECK(fire(10, "fixture_metric") == 1);  // fires: the fixture halves the base LR via set_base_lr
  CHECK(s.base_lr == doctest::Approx(0.5));
  CHECK(fire(50, "fixture_metric") == 0);  // cooldown
  s.lr = 0.5;
  CHECK(fire(110, "fixture_metric") == 1);
  CHECK(fire(400, "fixture_metric") == 0);  // max_fires reached
  CHECK(s.base_lr == doctest::Approx(0.25));
}

TEST_CASE("services a command lacks fail with UNSUPPORTED and a reason, not a crash") {
  HostServices s;
  s.context = "the test";
  PluginPipeline p(config("svc", "[[pipeline]]\nplugin = \"fixture_ok\"\n"), registry(), s);
  const keel_host_t *h = &p.plugins()[0]->host;
  double v = 0;
  CHECK(h->set_dropout(h, KEEL_DROPOUT_ATTENTION, 0.2) == KEEL_UNSUPPORTED);
  CHECK(p.plugins()[0]->service_error == "dropout sites are not available in the test");
  CHECK(h->set_dropout(h, 7, 0.2) == KEEL_INVALID_ARGUMENT);
  CHECK(h->read_metric(h, "nope", &v, nullptr) == KEEL_NOT_FOUND);
  CHECK(h->parameter_count(h) == 0);
  keel_generation_settings_t g{};
  g.struct_size = sizeof g;
  CHECK(h->get_generation(h, &g) == KEEL_OK);
  g.temperature = 1.1;
  CHECK(h->set_generation(h, &g) == KEEL_OK);
  CHECK(s.generation.temperature == doctest::Approx(1.1));
  g.top_p = 0;
  CHECK(h->set_generation(h, &g) == KEEL_INVALID_ARGUMENT);
  // An old plugin's smaller struct: the host writes only what fits.
  struct {
    uint32_t struct_size;
    int64_t step;
  } small{sizeof small, -1};
  CHECK(h->run_info(h, reinterpret_cast<keel_run_info_t *>(&small)) == KEEL_INVALID_ARGUMENT);
  CHECK(small.step == -1);
  CHECK(h->request_stop(h, "enough") == KEEL_OK);
  CHECK(*s.stop_reason == "fixture_ok: enough");
}

TEST_CASE("an instance built against a shorter keel_plugin_t runs when it covers its declared hooks") {
  HostServices s;
  s.total_steps = 10;
  PluginPipeline p(config("short", "[[pipeline]]\nplugin = \"fixture_short_instance\"\nscale = 0.5\n"), registry(), s);
  p.on_start();
  CHECK(p.lr(0, 1.0) == doctest::Approx(0.5));
  p.on_end();
  // The same instance size declaring on_alarm, whose field lies past the end: refused, and why.
  CHECK_THROWS_WITH_AS(
      PluginPipeline(config("short_bad", "[[pipeline]]\nplugin = \"fixture_short_instance_bad\"\n"), registry(), s),
      doctest::Contains("lacks hooks on_alarm that its descriptor declares"), PluginError);
}
