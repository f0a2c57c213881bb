// data_mix, loaded through the ABI: exact shares per batch and in the long run, state round-trips.
#include <doctest/doctest.h>

#include "temp_path.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/errors.hpp"
#include "config/pipeline_config.hpp"
#include "plugin_host/pipeline.hpp"
#include "plugin_host/registry.hpp"

namespace fs = std::filesystem;
using namespace keel;

namespace {

const PluginRegistry &registry() {
  static PluginRegistry reg({fs::path(KEEL_PLUGIN_DIR)});
  return reg;
}

PipelineConfig mix_config(const std::string &params) {
  fs::path p = temp_path("data-mix.toml");
  std::ofstream(p) << "[[pipeline]]\nplugin = \"data_mix\"\n" << params << "\n";
  return load_pipeline_config(p, {});
}

// A host with named data sources (the order differs from the plugin's sorted names on purpose).
struct SourcesHost : HostServices {
  std::vector<std::string> names;
  std::vector<keel_source_info_t> sources() override {
    std::vector<keel_source_info_t> out;
    for (const auto &n : names) out.push_back({sizeof(keel_source_info_t), n.c_str(), 1000, 0, 0});
    return out;
  }
};

// Composes `batches` batches of `n` slots; checks each batch's counts are floor or ceil of share·n
// and the running totals stay within one slot of share·slots; returns every slot's source.
std::vector<uint32_t> run(PluginPipeline &p, SourcesHost &h, const std::vector<double> &shares, int64_t first,
                          int64_t batches, uint32_t n, std::vector<uint64_t> &totals, uint64_t &slots) {
  std::vector<uint32_t> all;
  const auto sources = h.sources();
  for (int64_t b = first; b < first + batches; ++b) {
    std::vector<uint32_t> got = p.compose_batch(b, n, sources);
    std::vector<uint64_t> count(shares.size(), 0);
    for (uint32_t s : got) ++count.at(s);
    slots += n;
    for (size_t k = 0; k < shares.size(); ++k) {
      const double q = shares[k] * n;
      CHECK(count[k] >= std::floor(q - 1e-9));
      CHECK(count[k] <= std::ceil(q + 1e-9));
      totals[k] += count[k];
      CHECK(std::fabs(double(totals[k]) - shares[k] * double(slots)) < 1.0);
    }
    all.insert(all.end(), got.begin(), got.end());
  }
  return all;
}

}  // namespace

TEST_CASE("data_mix: 0.9 / 0.1 holds in every batch of 16 and 32 and exactly over 1,000 batches") {
  for (uint32_t n : {16u, 32u}) {
    SourcesHost h;
    h.names = {"general", "target"};  // host order: general is index 0
    PluginPipeline p(mix_config(""), registry(), h);
    p.on_start();
    std::vector<uint64_t> totals(2, 0);
    uint64_t slots = 0;
    const std::vector<double> shares = {0.1, 0.9};  // by host index
    std::vector<uint32_t> seq = run(p, h, shares, 0, 1000, n, totals, slots);
    CHECK(totals[1] == 900 * n);
    CHECK(totals[0] == 100 * n);
    // Every 5 batches of 16 (80 slots) hold exactly 72 + 8; every 5 of 32 hold 144 + 16.
    for (size_t b = 0; b + 5 <= 1000; b += 5) {
      uint64_t general = 0;
      for (size_t s = b * n; s < (b + 5) * n; ++s) general += seq[s] == 0;
      CHECK(general == n / 2);
    }
    // The general slots are spread through the batch, not bunched at one end.
    CHECK(seq[0] == 1);
  }
}

TEST_CASE("data_mix: three sources, odd batch sizes, and resume continues the same order") {
  const std::string params = "sources = { a = 0.5, b = 0.3, c = 0.2 }";
  const std::vector<double> shares = {0.5, 0.3, 0.2};
  SourcesHost h;
  h.names = {"a", "b", "c"};
  std::vector<uint32_t> straight;
  {
    PluginPipeline p(mix_config(params), registry(), h);
    p.on_start();
    std::vector<uint64_t> totals(3, 0);
    uint64_t slots = 0;
    straight = run(p, h, shares, 0, 1000, 7, totals, slots);
    CHECK(totals[0] == 3500);
    CHECK(totals[1] == 2100);
    CHECK(totals[2] == 1400);
  }
  // Stop after 400 batches, save, resume in a new instance: the same slots follow.
  std::vector<uint32_t> resumed;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> state;
  std::vector<uint64_t> totals(3, 0);
  uint64_t slots = 0;
  {
    PluginPipeline p(mix_config(params), registry(), h);
    p.on_start();
    resumed = run(p, h, shares, 0, 400, 7, totals, slots);
    state = p.save_states();
  }
  PluginPipeline q(mix_config(params), registry(), h);
  q.on_start();
  q.load_states(state);
  std::vector<uint32_t> rest = run(q, h, shares, 400, 600, 7, totals, slots);
  resumed.insert(resumed.end(), rest.begin(), rest.end());
  CHECK(resumed == straight);
  // A state saved for another mix is refused.
  PluginPipeline other(mix_config("sources = { a = 0.5, b = 0.5 }"), registry(), h);
  CHECK_THROWS_WITH_AS(other.load_states({{"data_mix#0", state[0].second}}),
                       doctest::Contains("saved state has 3 sources, this run has 2"), PluginError);
}

TEST_CASE("data_mix: shares must sum to 1 and name sources of the run") {
  SourcesHost h;
  h.names = {"target"};
  CHECK_THROWS_WITH_AS(PluginPipeline(mix_config("sources = { target = 0.9, general = 0.2 }"), registry(), h),
                       doctest::Contains("the shares sum to 1.1"), UserError);
  PluginPipeline p(mix_config(""), registry(), h);
  CHECK_THROWS_WITH_AS(p.on_start(), doctest::Contains("sources.general: no [data.general] source in this run (sources: target)"),
                       UserError);  // a setting to fix: exit 2
}
