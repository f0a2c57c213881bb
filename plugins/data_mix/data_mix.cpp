// data_mix: which data source fills each slot of a global batch, by fixed shares
// (sources = { target = 0.9, general = 0.1 }). Every batch holds each source's share of its slots
// rounded down or up (largest-remainder rounding), and which sources get the slots left over after
// rounding down rotates by how far each source is behind its ideal cumulative count, so long-run
// counts stay within one slot of share × slots (and are exact whenever share × slots is whole).
// The slots of one batch are interleaved (smooth weighted round-robin), not in blocks, so a host that
// splits the batch into micro-batches sees the mix in each. Which example a source yields next is
// the host's (each source walks its own shuffled order); this plugin's state is the counters.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "keel/plugin.hpp"

namespace {

class DataMix : public keel::Plugin {
 public:
  DataMix(const keel_host_t *h, const keel_params_t *p) : Plugin(h, p) {
    names_ = params.keys("sources");
    if (names_.empty()) throw keel::Error("sources: name at least one source, e.g. { target = 0.9, general = 0.1 }",
                                          KEEL_INVALID_ARGUMENT);
    double sum = 0;
    for (const std::string &n : names_) {
      if (n.find('.') != std::string::npos)
        throw keel::Error("sources: source name '" + n + "' may not contain '.'", KEEL_INVALID_ARGUMENT);
      const double s = params.get_double("sources." + n);
      if (!(s >= 0 && s <= 1))
        throw keel::Error("sources." + n + " = " + std::to_string(s) + ": a share must be in [0, 1]",
                          KEEL_INVALID_ARGUMENT);
      shares_.push_back(s);
      sum += s;
    }
    if (std::fabs(sum - 1.0) > 1e-9)
      throw keel::Error("sources: the shares sum to " + std::to_string(sum) + ", they must sum to 1",
                        KEEL_INVALID_ARGUMENT);
    counts_.assign(names_.size(), 0);
  }

  void on_start() override {
    const auto offered = host.sources();
    for (const std::string &n : names_) {
      bool found = false;
      for (const auto &s : offered) found = found || (s.name && n == s.name);
      if (!found) {
        std::string known;
        for (const auto &s : offered) known += (known.empty() ? "" : ", ") + std::string(s.name ? s.name : "");
        throw keel::Error("sources." + n + ": no [data." + n + "] source in this run (sources: " +
                              (known.empty() ? "none" : known) + ")",
                          KEEL_INVALID_ARGUMENT);
      }
    }
  }

  void compose_batch(int64_t /*batch_no*/, const std::vector<keel_source_info_t> &sources,
                     std::vector<uint32_t> &slot_source) override {
    const size_t K = names_.size(), n = slot_source.size();
    // Where each of our sources is in the host's list.
    std::vector<uint32_t> index(K);
    for (size_t k = 0; k < K; ++k) {
      size_t i = 0;
      while (i < sources.size() && !(sources[i].name && names_[k] == sources[i].name)) ++i;
      if (i == sources.size()) throw keel::Error("compose_batch: the host offers no source '" + names_[k] + "'");
      index[k] = static_cast<uint32_t>(i);
    }
    // Per batch: floor of each share of n, then the left-over slots to the sources furthest behind
    // their ideal cumulative count (ties: the first named). Each source gets floor or ceil.
    std::vector<uint64_t> take(K);
    std::vector<double> behind(K);
    std::vector<bool> fractional(K);  // may take one slot more than its floor
    uint64_t given = 0;
    for (size_t k = 0; k < K; ++k) {
      double q = shares_[k] * static_cast<double>(n);
      if (std::fabs(q - std::round(q)) < 1e-9 * static_cast<double>(n + 1)) q = std::round(q);  // 0.29*100
      take[k] = static_cast<uint64_t>(std::floor(q));
      fractional[k] = q != std::floor(q);
      given += take[k];
      behind[k] = shares_[k] * static_cast<double>(total_ + n) - static_cast<double>(counts_[k] + take[k]);
    }
    for (uint64_t extra = n - given; extra > 0; --extra) {
      size_t best = K;
      for (size_t k = 0; k < K; ++k)
        if (fractional[k] && (best == K || behind[k] > behind[best]))
          best = k;
      if (best == K) throw keel::Error("compose_batch: cannot place the left-over slots");  // shares sum < 1
      ++take[best];
      fractional[best] = false;
    }
    // Interleave: slot s goes to the source whose quota is most ahead of what it has so far.
    std::vector<uint64_t> placed(K, 0);
    for (size_t s = 0; s < n; ++s) {
      size_t best = K;
      double best_lead = 0;
      for (size_t k = 0; k < K; ++k) {
        if (placed[k] == take[k]) continue;
        const double lead = static_cast<double>(take[k]) * static_cast<double>(s + 1) / static_cast<double>(n) -
                            static_cast<double>(placed[k]);
        if (best == K || lead > best_lead) best = k, best_lead = lead;
      }
      ++placed[best];
      slot_source[s] = index[best];
    }
    for (size_t k = 0; k < K; ++k) counts_[k] += take[k];
    total_ += n;
  }

  // State: total slots, then per source its name and count (so a resume checks it is the same mix).
  keel::Bytes save_state() override {
    keel::Bytes b;
    put(b, total_);
    put(b, static_cast<uint64_t>(names_.size()));
    for (size_t k = 0; k < names_.size(); ++k) {
      put(b, static_cast<uint64_t>(names_[k].size()));
      const size_t at = b.size();
      b.resize(at + names_[k].size());
      std::memcpy(b.data() + at, names_[k].data(), names_[k].size());
      put(b, counts_[k]);
    }
    return b;
  }
  void load_state(const keel::Bytes &b) override {
    size_t at = 0;
    auto get = [&](uint64_t &v) {
      if (at + sizeof v > b.size()) throw keel::Error("data_mix: saved state is truncated", KEEL_INVALID_ARGUMENT);
      std::memcpy(&v, b.data() + at, sizeof v);
      at += sizeof v;
    };
    uint64_t total = 0, k_saved = 0;
    get(total);
    get(k_saved);
    if (k_saved != names_.size())
      throw keel::Error("data_mix: saved state has " + std::to_string(k_saved) + " sources, this run has " +
                            std::to_string(names_.size()),
                        KEEL_INVALID_ARGUMENT);
    std::vector<uint64_t> counts(names_.size());
    for (size_t k = 0; k < names_.size(); ++k) {
      uint64_t len = 0;
      get(len);
      if (at + len > b.size()) throw keel::Error("data_mix: saved state is truncated", KEEL_INVALID_ARGUMENT);
      const std::string name(reinterpret_cast<const char *>(b.data() + at), len);
      at += len;
      if (name != names_[k])
        throw keel::Error("data_mix: saved state is for source '" + name + "', this run names '" + names_[k] + "'",
                          KEEL_INVALID_ARGUMENT);
      get(counts[k]);
    }
    total_ = total;
    counts_ = counts;
  }

 private:
  static void put(keel::Bytes &b, uint64_t v) {
    const size_t at = b.size();
    b.resize(at + sizeof v);
    std::memcpy(b.data() + at, &v, sizeof v);
  }

  std::vector<std::string> names_;  // sorted (the host's key order)
  std::vector<double> shares_;
  std::vector<uint64_t> counts_;    // slots given to each source so far
  uint64_t total_ = 0;              // slots composed so far
};

}  // namespace

KEEL_PLUGIN(DataMix, keel::Descriptor{
    .id = "org.keel.data_mix",
    .name = "data_mix",
    .kind = KEEL_KIND_DATA,
    .version = "1.0.0",
    .description = "fixed shares of data sources in every global batch, exact in the long run too",
    .vendor = "keel",
    .hooks = KEEL_HOOK_ON_START | KEEL_HOOK_COMPOSE_BATCH | KEEL_HOOK_STATE,
    .params = {
        {"sources", KEEL_PARAM_TABLE, "{ target = 0.9, general = 0.1 }",
         "share of each [data.<name>] source in every batch; shares sum to 1"},
    }})
