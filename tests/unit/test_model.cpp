// The model: KV-cache decoding against a full forward, left padding, save/load round trips.
#include <doctest/doctest.h>

#include "temp_path.hpp"

#include <filesystem>

#include "checkpoint/model_folder.hpp"
#include "checkpoint/safetensors.hpp"
#include "generate/generate.hpp"
#include "model/transformer.hpp"

namespace fs = std::filesystem;
using namespace keel;
using torch::indexing::Slice;

static ModelConfig tiny_config(const std::string &type, bool tied) {
  nlohmann::json j = {{"model_type", type},        {"vocab_size", 97},  {"hidden_size", 32},
                      {"intermediate_size", 48},   {"num_hidden_layers", 2}, {"num_attention_heads", 4},
                      {"num_key_value_heads", 2},  {"max_position_embeddings", 128},
                      {"tie_word_embeddings", tied}, {"eos_token_id", 2}, {"head_dim", 16}};
  return ModelConfig::from_json(j, "test");
}

static Transformer random_model(const std::string &type, bool tied, uint64_t seed) {
  Transformer m(tiny_config(type, tied), torch::kCPU, torch::kFloat);
  torch::NoGradGuard g;
  torch::manual_seed(static_cast<int64_t>(seed));
  for (auto &[name, t] : m.parameters()) t.copy_(torch::randn_like(t) * 0.3 + (name.find("norm") != std::string::npos ? 1.0 : 0.0));
  return m;
}

TEST_CASE("KV-cache decoding equals a full forward over the whole sequence (fp32, <= 1e-5)") {
  for (const char *type : {"llama", "qwen2", "qwen3"}) {
    Transformer m = random_model(type, std::string(type) == "qwen3", 7);
    torch::NoGradGuard g;
    auto ids = torch::randint(3, 97, {2, 20}, torch::kInt64);
    auto pos = torch::arange(20, torch::kInt64).unsqueeze(0).expand({2, 20});
    auto full = m.logits(m.hidden(ids, pos));
    KVCache cache = m.make_cache(2, 20);
    auto pre = m.logits(m.hidden(ids.index({Slice(), Slice(0, 8)}), pos.index({Slice(), Slice(0, 8)}), {}, &cache));
    CHECK((pre - full.index({Slice(), Slice(0, 8)})).abs().max().item<double>() <= 1e-5);
    for (int64_t t = 8; t < 20; ++t) {
      auto step = m.logits(m.hidden(ids.index({Slice(), Slice(t, t + 1)}), pos.index({Slice(), Slice(t, t + 1)}), {}, &cache));
      CHECK((step.index({Slice(), 0}) - full.index({Slice(), t})).abs().max().item<double>() <= 1e-5);
    }
    CHECK(cache.length == 20);
  }
}

TEST_CASE("a left-padded batch generates what each prompt generates alone") {
  Transformer m = random_model("llama", false, 11);
  SamplingSettings s;
  s.temperature = 0;
  s.max_new_tokens = 12;
  std::vector<int64_t> a = {5, 9, 14, 3, 60, 61, 7}, b = {40, 41};
  auto both = generate(m, {a, b}, s);
  auto alone_a = generate(m, {a}, s), alone_b = generate(m, {b}, s);
  CHECK(both[0].tokens == alone_a[0].tokens);
  CHECK(both[1].tokens == alone_b[0].tokens);
  // Sampling is reproducible with a seed, and different seeds differ.
  s.temperature = 1.0;
  s.seed = 3;
  auto x = generate(m, {a, b}, s), y = generate(m, {a, b}, s);
  s.seed = 4;
  auto z = generate(m, {a, b}, s);
  CHECK(x[0].tokens == y[0].tokens);
  CHECK((x[0].tokens != z[0].tokens || x[1].tokens != z[1].tokens));
}

TEST_CASE("top-k 1 is greedy, and stop ids end a row") {
  Transformer m = random_model("qwen2", false, 5);
  SamplingSettings greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 10;
  SamplingSettings k1 = greedy;
  k1.temperature = 0.9;
  k1.top_k = 1;
  std::vector<int64_t> p = {4, 8, 15, 16, 23, 42};
  auto g = generate(m, {p}, greedy)[0];
  CHECK(generate(m, {p}, k1)[0].tokens == g.tokens);
  REQUIRE(g.tokens.size() >= 3);
  SamplingSettings stop = greedy;
  stop.stop_ids = {g.tokens[2]};
  auto st = generate(m, {p}, stop)[0];
  CHECK(st.stopped);
  CHECK(st.tokens.size() <= 2);
}

TEST_CASE("save -> load round-trips bit-exactly; a sharded folder loads the same as one file") {
  Transformer m = random_model("qwen3", true, 2);
  fs::path dir = temp_path("test-roundtrip");
  fs::remove_all(dir);
  save_model(dir / "one", m, {}, torch::kFloat);
  save_model(dir / "sharded", m, {}, torch::kFloat, /*max_shard_bytes=*/20000);
  CHECK(fs::exists(dir / "sharded" / "model.safetensors.index.json"));
  CHECK(!fs::exists(dir / "sharded" / "model.safetensors"));
  auto one = load_model(dir / "one", torch::kCPU, torch::kFloat);
  auto sharded = load_model(dir / "sharded", torch::kCPU, torch::kFloat);
  for (size_t i = 0; i < m.parameters().size(); ++i) {
    CHECK(torch::equal(m.parameters()[i].second, one->parameters()[i].second));
    CHECK(torch::equal(one->parameters()[i].second, sharded->parameters()[i].second));
  }
  // bf16 saves and loads as bf16
  save_model(dir / "bf16", m, {}, torch::kBFloat16);
  SafetensorsFile f(dir / "bf16" / "model.safetensors");
  CHECK(f.entries().at("model.norm.weight").dtype == "BF16");
  auto b = load_model(dir / "bf16", torch::kCPU, torch::kBFloat16);
  CHECK(torch::equal(b->parameters()[0].second, m.parameters()[0].second.to(torch::kBFloat16)));
}

TEST_CASE("unsupported config fields are errors, not silently ignored") {
  nlohmann::json j = {{"model_type", "llama"},  {"vocab_size", 10},       {"hidden_size", 8},
                      {"intermediate_size", 8}, {"num_hidden_layers", 1}, {"num_attention_heads", 2}};
  auto err = [&](nlohmann::json x) {
    try {
      ModelConfig::from_json(x, "c.json");
    } catch (const std::exception &e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(err(j) == "");
  auto k = j;
  k["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  CHECK(err(k).find("rope type 'yarn' is not supported") != std::string::npos);
  k = j;
  k["hidden_act"] = "gelu";
  CHECK(err(k).find("hidden_act: 'gelu' is not supported") != std::string::npos);
  k = j;
  k["model_type"] = "gpt2";
  CHECK(err(k).find("'gpt2' is not supported") != std::string::npos);
  k = j;
  k["num_key_value_heads"] = 3;
  CHECK(err(k).find("must divide") != std::string::npos);
  // A window shorter than the sequence is refused when the sequence arrives.
  nlohmann::json mj = j;
  mj["model_type"] = "mistral";
  mj["sliding_window"] = 4;
  Transformer m(ModelConfig::from_json(mj, "c.json"), torch::kCPU, torch::kFloat);
  auto ids = torch::zeros({1, 6}, torch::kInt64);
  CHECK_THROWS_WITH(m.hidden(ids, torch::arange(6).unsqueeze(0)), doctest::Contains("sliding window"));
}

// ---- the dropout plugin, loaded through the ABI, acting on a real model --------------------------
#include <fstream>

#include "config/pipeline_config.hpp"
#include "plugin_host/pipeline.hpp"
#include "plugin_host/registry.hpp"

namespace {
struct ModelServices : HostServices {
  Transformer *m;
  double &site(keel_dropout_site_t s) {
    return s == KEEL_DROPOUT_EMBEDDING ? m->dropout.embedding : s == KEEL_DROPOUT_ATTENTION ? m->dropout.attention : m->dropout.ffn;
  }
  void set_dropout(keel_dropout_site_t s, double p) override { site(s) = p; }
  double dropout(keel_dropout_site_t s) override { return site(s); }
  void set_embedding_noise(double a) override { m->dropout.neftune_alpha = a; }
};

// A pipeline of one [[pipeline]] entry (TOML text) whose host services act on model `m`.
struct ModelPipeline {
  ModelServices services;
  PipelineConfig cfg;
  PluginRegistry reg{{KEEL_PLUGIN_DIR}};
  std::unique_ptr<PluginPipeline> pipe;
  ModelPipeline(Transformer &m, const std::string &name, const std::string &entry) {
    fs::path p = temp_path(name + ".toml");
    std::ofstream(p) << "[[pipeline]]\n" << entry;
    cfg = load_pipeline_config(p, {});
    services.m = &m;
    pipe = std::make_unique<PluginPipeline>(cfg, reg, services);
  }
};
}  // namespace

TEST_CASE("dropout plugin: training forwards differ, and after on_export they are identical") {
  Transformer m = random_model("llama", true, 3);
  ModelPipeline mp(m, "dropout", "plugin = \"dropout\"\n");
  PluginPipeline &pipe = *mp.pipe;
  pipe.on_model_ready();
  CHECK(m.dropout.embedding == doctest::Approx(0.1));
  CHECK(m.dropout.attention == doctest::Approx(0.2));
  CHECK(m.dropout.ffn == doctest::Approx(0.1));
  torch::NoGradGuard g;
  auto ids = torch::randint(3, 97, {2, 16}, torch::kInt64);
  auto pos = torch::arange(16).unsqueeze(0).expand({2, 16});
  m.training = true;
  auto a = m.logits(m.hidden(ids, pos)), b = m.logits(m.hidden(ids, pos));
  CHECK(!torch::allclose(a, b));
  pipe.on_export();
  CHECK(m.dropout.embedding == 0.0);
  CHECK(m.dropout.attention == 0.0);
  CHECK(m.dropout.ffn == 0.0);
  auto c = m.logits(m.hidden(ids, pos)), d = m.logits(m.hidden(ids, pos));  // still training mode
  CHECK(torch::equal(c, d));
}

TEST_CASE("neftune plugin: noise in training forwards only, scaled by the real length, off after export") {
  Transformer m = random_model("qwen2", false, 4);
  // A small alpha keeps the model in its linear regime, so output deviations scale with the noise.
  ModelPipeline mp(m, "neftune", "plugin = \"neftune\"\nalpha = 0.001\n");
  PluginPipeline &pipe = *mp.pipe;
  pipe.on_model_ready();
  CHECK(m.dropout.neftune_alpha == doctest::Approx(0.001));
  torch::NoGradGuard g;
  auto ids = torch::randint(3, 97, {1, 16}, torch::kInt64);
  auto pos = torch::arange(16).unsqueeze(0);
  m.training = false;
  auto clean = m.hidden(ids, pos);
  CHECK(torch::equal(clean, m.hidden(ids, pos)));  // evaluation: no noise
  m.training = true;
  auto short_len = torch::tensor({4}, torch::kInt64), full_len = torch::tensor({16}, torch::kInt64);
  // A shorter real length means stronger noise (alpha / sqrt(L d)): 4 of 16 tokens -> 2x.
  double d_full = 0, d_short = 0;
  for (int i = 0; i < 20; ++i) {
    d_full += (m.hidden(ids, pos, {}, nullptr, full_len) - clean).abs().mean().item<double>();
    d_short += (m.hidden(ids, pos, {}, nullptr, short_len) - clean).abs().mean().item<double>();
  }
  CHECK(d_full > 0);
  CHECK(d_short / d_full == doctest::Approx(2.0).epsilon(0.15));
  pipe.on_export();
  CHECK(m.dropout.neftune_alpha == 0.0);
  CHECK(torch::equal(clean, m.hidden(ids, pos)));  // still training mode, no noise left
}

// Gradients of every parameter (and adapter) for one training forward and backward.
static std::map<std::string, torch::Tensor> grads_of(Transformer &m, const torch::Tensor &ids) {
  std::map<std::string, torch::Tensor> out;
  m.for_each_tensor([](const std::string &, const torch::Tensor &t) {
    t.set_requires_grad(true);
    t.mutable_grad() = torch::Tensor();
  });
  torch::manual_seed(7);  // the same dropout masks in both runs
  auto pos = torch::arange(ids.size(1)).repeat({ids.size(0), 1});
  auto h = m.hidden(ids, pos);
  auto loss = torch::nn::functional::cross_entropy(m.logits(h).view({-1, m.config().vocab_size}).slice(0, 0, -1),
                                                   ids.view({-1}).slice(0, 1));
  loss.backward();
  m.for_each_tensor([&](const std::string &n, const torch::Tensor &t) {
    if (t.grad().defined()) out[n] = t.grad().clone();
  });
  return out;
}

TEST_CASE("activation checkpointing gives the same gradients (dropout and LoRA dropout on, <= 1e-6 relative)") {
  for (bool lora : {false, true}) {
    CAPTURE(lora);
    Transformer m = random_model("qwen2", false, 11);
    if (lora) {
      m.attach_lora({4, 8.0, 0.1, "q_proj|v_proj|down_proj", 3});
      torch::NoGradGuard g;
      for (auto &[n, t] : m.adapter_parameters()) t.copy_(torch::randn_like(t) * 0.2);  // B non-zero
    }
    m.training = true;
    m.dropout.attention = 0.1;
    m.dropout.ffn = 0.1;
    auto ids = torch::randint(0, 97, {3, 40}, torch::kInt64);
    auto plain = grads_of(m, ids);
    m.activation_checkpointing = true;
    auto recomputed = grads_of(m, ids);
    REQUIRE(plain.size() == recomputed.size());
    REQUIRE(plain.size() == (lora ? m.parameters().size() + m.adapter_parameters().size() : m.parameters().size()));
    for (const auto &[n, g] : plain) {
      CAPTURE(n);
      const double rel = (g - recomputed.at(n)).abs().max().item<double>() / (g.abs().max().item<double>() + 1e-12);
      CHECK(rel <= 1e-6);
    }
  }
}

TEST_CASE("activation checkpointing with a frozen base: the adapters still get their gradients") {
  Transformer m = random_model("llama", true, 12);
  m.attach_lora({4, 8.0, 0.0, "o_proj", 1});
  m.training = true;
  m.activation_checkpointing = true;
  for (auto &[n, t] : m.parameters()) t.set_requires_grad(false);
  for (auto &[n, t] : m.adapter_parameters()) t.set_requires_grad(true);
  auto ids = torch::randint(0, 97, {2, 16}, torch::kInt64);
  auto h = m.hidden(ids, torch::arange(16).repeat({2, 1}));
  m.logits(h).logsumexp(-1).sum().backward();
  for (auto &[n, t] : m.adapter_parameters()) {
    CAPTURE(n);
    CHECK(t.grad().defined());
  }
}
