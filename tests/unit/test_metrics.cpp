// The collapse metrics (distinct_ngrams, self_bleu, entropy, mode_share), loaded through the ABI from
// build/lib/keel/plugins and checked against computations written here from each definition.
// Self-BLEU against NLTK itself is tests/metrics/self_bleu_vs_nltk.py (through keel score).
#include <doctest/doctest.h>

#include "temp_path.hpp"

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "common/errors.hpp"
#include "config/pipeline_config.hpp"
#include "plugin_host/pipeline.hpp"
#include "plugin_host/registry.hpp"

namespace fs = std::filesystem;
using namespace keel;

namespace {

const PluginRegistry &plugins() {
  static PluginRegistry reg({fs::path(KEEL_PLUGIN_DIR)});
  return reg;
}

PipelineConfig one_plugin(const std::string &tag, const std::string &entry) {
  fs::path p = temp_path("metrics-" + tag + ".toml");
  std::ofstream(p) << "[[pipeline]]\n" << entry << "\n";
  return load_pipeline_config(p, {});
}

// An eval batch over `texts` (and optional token ids), kept alive with its storage.
struct Batch {
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> tokens;
  std::vector<keel_eval_sample_t> samples;
  std::vector<const keel_eval_sample_t *> ptrs;
  keel_eval_batch_t c{};
  explicit Batch(std::vector<std::string> t, std::vector<std::vector<int64_t>> tok = {})
      : texts(std::move(t)), tokens(std::move(tok)) {
    tokens.resize(texts.size());
    samples.resize(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      samples[i] = {sizeof(keel_eval_sample_t), "prompt", texts[i].c_str(), tokens[i].data(), tokens[i].size()};
      ptrs.push_back(&samples[i]);
    }
    c = {sizeof(keel_eval_batch_t), 0, 0.7, ptrs.data(), static_cast<uint32_t>(ptrs.size())};
  }
};

// Runs one metric on `batch`; returns the host's metric table.
std::map<std::string, MetricValue> score(const std::string &entry, const Batch &batch, HostServices &s) {
  PluginPipeline p(one_plugin("score", entry), plugins(), s);
  p.on_eval(batch.c);
  return s.metrics;
}
std::map<std::string, MetricValue> score(const std::string &entry, const Batch &batch) {
  HostServices s;
  return score(entry, batch, s);
}

std::vector<std::string> words(const std::string &s) {
  std::istringstream in(s);
  std::vector<std::string> w;
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}

// distinct-n from its definition: a set of n-gram vectors.
double naive_distinct(const std::vector<std::vector<std::string>> &gens, size_t n) {
  std::set<std::vector<std::string>> uniq;
  size_t total = 0;
  for (const auto &g : gens)
    for (size_t p = 0; p + n <= g.size(); ++p, ++total) uniq.insert({g.begin() + p, g.begin() + p + n});
  return total ? double(uniq.size()) / double(total) : 0.0;
}

std::vector<std::string> random_texts(std::mt19937 &rng, size_t count, size_t max_len, size_t vocab) {
  std::vector<std::string> out;
  for (size_t i = 0; i < count; ++i) {
    std::string t;
    for (size_t k = 0, len = rng() % (max_len + 1); k < len; ++k)
      t += (k ? (rng() % 5 == 0 ? "\t " : " ") : "") + std::string("w") + std::to_string(rng() % vocab);
    out.push_back(t);
  }
  return out;
}

}  // namespace

TEST_CASE("distinct_ngrams: hand-made sets and the definition") {
  // All identical: the ratio is as low as it gets for that text, and the alarm is raised.
  auto m = score("plugin = \"distinct_ngrams\"", Batch({"a b c d", "a b c d", "a b c d", "a b c d"}));
  CHECK(m["distinct_ngrams"].value == doctest::Approx(2.0 / 8));
  CHECK(m["distinct_ngrams"].alarm);
  CHECK(m["distinct_ngrams"].reason == "distinct_3 0.25 < alarm_below 0.3");
  CHECK(m["distinct_ngrams.distinct_1"].value == doctest::Approx(4.0 / 16));
  CHECK(m["distinct_ngrams.distinct_2"].value == doctest::Approx(3.0 / 12));
  CHECK(m["distinct_ngrams.distinct_3"].value == doctest::Approx(2.0 / 8));
  // "a b a b" + "a b c": unigrams 3/7, bigrams {ab, ba, bc} of 5, trigrams 3/3; n-grams never span
  // two generations.
  m = score("plugin = \"distinct_ngrams\"", Batch({"a b a b", "a  b\nc"}));
  CHECK(m["distinct_ngrams.distinct_1"].value == doctest::Approx(3.0 / 7));
  CHECK(m["distinct_ngrams.distinct_2"].value == doctest::Approx(3.0 / 5));
  CHECK(m["distinct_ngrams"].value == doctest::Approx(1.0));
  CHECK_FALSE(m["distinct_ngrams"].alarm);
  // The same with token ids as units.
  m = score("plugin = \"distinct_ngrams\"\nunits = \"tokens\"\nn = 2", Batch({"", ""}, {{1, 2, 1, 2}, {1, 2, 3}}));
  CHECK(m["distinct_ngrams"].value == doctest::Approx(3.0 / 5));
  CHECK(m["distinct_ngrams.distinct_1"].value == doctest::Approx(3.0 / 7));
  CHECK(m.count("distinct_ngrams.distinct_3") == 0);
  // Random sets against the set-of-vectors definition.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const size_t n = 1 + trial % 4;
    std::vector<std::string> texts = random_texts(rng, 1 + rng() % 40, 12, 6 + trial);
    std::vector<std::vector<std::string>> gens;
    for (const auto &t : texts) gens.push_back(words(t));
    m = score("plugin = \"distinct_ngrams\"\nn = " + std::to_string(n), Batch(texts));
    CHECK(m["distinct_ngrams"].value == doctest::Approx(naive_distinct(gens, n)).epsilon(1e-12));
    CHECK(m["distinct_ngrams.distinct_1"].value == doctest::Approx(naive_distinct(gens, 1)).epsilon(1e-12));
    CHECK(m["distinct_ngrams.distinct_2"].value == doctest::Approx(naive_distinct(gens, 2)).epsilon(1e-12));
  }
}

TEST_CASE("self_bleu: identical generations score 1, a hand-computed pair, too few generations") {
  auto m = score("plugin = \"self_bleu\"", Batch({"the cat sat down", "the cat sat down", "the cat sat down"}));
  CHECK(m["self_bleu"].value == doctest::Approx(1.0).epsilon(1e-15));
  CHECK(m["self_bleu"].alarm);
  // "a b" vs "a c": p1 = 1/2, p2 = 0 -> 0.1/1, p3 = no trigram -> 0.1/1, equal lengths (BP 1).
  m = score("plugin = \"self_bleu\"", Batch({"a b", "a c"}));
  CHECK(m["self_bleu"].value == doctest::Approx(std::cbrt(0.5 * 0.1 * 0.1)).epsilon(1e-14));
  CHECK_FALSE(m["self_bleu"].alarm);
  // No unigram in common: 0. An empty generation: 0 for it.
  m = score("plugin = \"self_bleu\"", Batch({"x y z", "p q r", ""}));
  CHECK(m["self_bleu"].value == 0.0);
  m = score("plugin = \"self_bleu\"", Batch({"one"}));
  CHECK(m.count("self_bleu") == 0);  // undefined for one generation: a warning, nothing published
}

TEST_CASE("mode_share: whitespace-normalised share of the most common generation") {
  auto m = score("plugin = \"mode_share\"", Batch({"I agree.", "I agree.", " I  agree.\n", "I agree."}));
  CHECK(m["mode_share"].value == 1.0);
  CHECK(m["mode_share"].alarm);
  m = score("plugin = \"mode_share\"", Batch({"yes", " yes ", "yes\tno", "no"}));
  CHECK(m["mode_share"].value == 0.5);
  CHECK_FALSE(m["mode_share"].alarm);  // the alarm is strictly above 0.5
  CHECK(m["mode_share.distinct"].value == 3);
}

namespace {

// A host that has evaluation logits: one [n, V] fp32 matrix per sample.
struct LogitsHost : HostServices {
  std::vector<std::vector<float>> logits;
  std::vector<std::array<int64_t, 2>> shapes;
  DLTensor eval_logits(uint32_t i) override {
    if (i >= logits.size()) throw ServiceError{KEEL_NOT_FOUND, "no such sample"};
    DLTensor t{};
    t.data = logits[i].data();
    t.device = {kDLCPU, 0};
    t.ndim = 2;
    t.dtype = {kDLFloat, 32, 1};
    t.shape = shapes[i].data();
    return t;
  }
  void set(std::vector<std::vector<float>> l, int64_t V) {
    logits = std::move(l);
    shapes.clear();
    for (const auto &x : logits) shapes.push_back({static_cast<int64_t>(x.size()) / V, V});
  }
};

double naive_entropy(const std::vector<std::vector<float>> &logits, int64_t V) {
  double sum = 0;
  int64_t rows = 0;
  for (const auto &x : logits)
    for (size_t r = 0; r * V < x.size(); ++r, ++rows) {
      double m = -INFINITY, z = 0, h = 0;
      for (int64_t j = 0; j < V; ++j) m = std::max<double>(m, x[r * V + j]);
      for (int64_t j = 0; j < V; ++j) z += std::exp(double(x[r * V + j]) - m);
      for (int64_t j = 0; j < V; ++j) {
        double p = std::exp(double(x[r * V + j]) - m) / z;
        if (p > 0) h -= p * std::log(p);
      }
      sum += h;
    }
  return sum / double(rows);
}

}  // namespace

TEST_CASE("entropy: mean over generated positions, baseline from the first evaluation, kept in state") {
  const int64_t V = 1000;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0, 2);
  auto random_logits = [&](int64_t rows, float scale) {
    std::vector<float> x(rows * V);
    for (float &v : x) v = scale * normal(rng);
    x[5] = -INFINITY;  // a masked token has probability 0
    return x;
  };
  LogitsHost s;
  Batch three({"a", "b", "c"});
  PipelineConfig cfg = one_plugin("entropy", "plugin = \"entropy\"");
  std::vector<std::pair<std::string, std::vector<uint8_t>>> state;
  double baseline = 0;
  {
    PluginPipeline p(cfg, plugins(), s);
    s.set({std::vector<float>(4 * V, 0.5f), random_logits(7, 1), random_logits(1, 3)}, V);
    p.on_eval(three.c);
    const double first = naive_entropy(s.logits, V);
    CHECK(s.metrics["entropy"].value == doctest::Approx(first).epsilon(1e-6));
    CHECK(s.metrics["entropy.baseline"].value == s.metrics["entropy"].value);
    CHECK_FALSE(s.metrics["entropy"].alarm);
    baseline = s.metrics["entropy"].value;
    // Uniform logits: log V exactly (up to the float exponential).
    s.set({std::vector<float>(2 * V, -1.0f)}, V);
    Batch one({"x"});
    p.on_eval(one.c);
    CHECK(s.metrics["entropy"].value == doctest::Approx(std::log(double(V))).epsilon(1e-6));
    state = p.save_states();
  }
  // A new instance resumes with the saved baseline: sharply peaked logits raise the alarm.
  PluginPipeline q(cfg, plugins(), s);
  q.load_states(state);
  s.set({random_logits(6, 40)}, V);
  Batch one({"x"});
  q.on_eval(one.c);
  const double peaked = naive_entropy(s.logits, V);
  CHECK(s.metrics["entropy"].value == doctest::Approx(peaked).epsilon(1e-6));
  CHECK(peaked < 0.5 * s.metrics["entropy.baseline"].value);
  CHECK(s.metrics["entropy.baseline"].value == baseline);
  CHECK(s.metrics["entropy"].alarm);
  // A sample without logits: the plugin fails with the host's reason.
  CHECK_THROWS_WITH_AS(q.on_eval(three.c), doctest::Contains("the host gives no logits for sample 1 (no such sample)"), PluginError);
  // Without the resumed state the same logits set a new baseline and raise nothing.
  LogitsHost fresh;
  PluginPipeline r(cfg, plugins(), fresh);
  fresh.set(s.logits, V);
  r.on_eval(one.c);
  CHECK_FALSE(fresh.metrics["entropy"].alarm);
}
