// The training data as the loop consumes it: each [data.<name>] source walks its own shuffled
// order, starting a new epoch (and a new order) on its own. Cursors, epochs and seeds are the
// state a checkpoint keeps, so a resumed run draws the same examples.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.hpp"
#include "keel/keel_plugin.h"

namespace keel {

class DataSources {
 public:
  void add(Dataset data, uint64_t seed);
  size_t size() const { return sources_.size(); }
  const Dataset &dataset(size_t i) const { return sources_[i].data; }
  size_t index_of(const std::string &name) const;  // throws UserError for an unknown name

  // The next example of source i (advancing its cursor; a new epoch reshuffles).
  const Example &next(size_t i);
  // A new order from `seed`, starting a new pass over the source.
  void reshuffle(size_t i, uint64_t seed);
  uint64_t epoch(size_t i) const { return sources_[i].epoch; }

  std::vector<keel_source_info_t> infos() const;  // names borrowed from this object
  nlohmann::json state() const;
  void load_state(const nlohmann::json &state);

 private:
  struct Source {
    Dataset data;
    uint64_t seed = 0, epoch = 0, cursor = 0;
    std::vector<uint32_t> order;
  };
  static std::vector<uint32_t> make_order(size_t n, uint64_t seed, uint64_t epoch);
  std::vector<Source> sources_;
};

}  // namespace keel
