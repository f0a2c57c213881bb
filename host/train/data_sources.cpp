#include "train/data_sources.hpp"

#include <random>

#include "common/errors.hpp"

namespace keel {

std::vector<uint32_t> DataSources::make_order(size_t n, uint64_t seed, uint64_t epoch) {
  std::vector<uint32_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
  // Fisher-Yates with our own draws, so the order is the same on every standard library.
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + epoch);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

void DataSources::add(Dataset data, uint64_t seed) {
  if (data.examples.empty()) throw UserError("data source '" + data.name + "' has no usable examples");
  Source s;
  s.seed = seed;
  s.order = make_order(data.examples.size(), seed, 0);
  s.data = std::move(data);
  sources_.push_back(std::move(s));
}

size_t DataSources::index_of(const std::string &name) const {
  for (size_t i = 0; i < sources_.size(); ++i)
    if (sources_[i].data.name == name) return i;
  throw UserError("no data source named '" + name + "'");
}

const Example &DataSources::next(size_t i) {
  Source &s = sources_[i];
  if (s.cursor >= s.order.size()) {
    s.epoch++;
    s.cursor = 0;
    s.order = make_order(s.order.size(), s.seed, s.epoch);
  }
  return s.data.examples[s.order[s.cursor++]];
}

void DataSources::reshuffle(size_t i, uint64_t seed) {
  Source &s = sources_[i];
  s.seed = seed;
  s.cursor = 0;
  s.order = make_order(s.order.size(), s.seed, s.epoch);
}

std::vector<keel_source_info_t> DataSources::infos() const {
  std::vector<keel_source_info_t> out;
  for (const Source &s : sources_)
    out.push_back({sizeof(keel_source_info_t), s.data.name.c_str(), s.order.size(), s.epoch, s.cursor});
  return out;
}

nlohmann::json DataSources::state() const {
  nlohmann::json j = nlohmann::json::object();
  for (const Source &s : sources_) j[s.data.name] = {{"seed", s.seed}, {"epoch", s.epoch}, {"cursor", s.cursor}};
  return j;
}

void DataSources::load_state(const nlohmann::json &j) {
  for (Source &s : sources_) {
    if (!j.contains(s.data.name)) continue;
    const auto &e = j[s.data.name];
    s.seed = e.at("seed").get<uint64_t>();
    s.epoch = e.at("epoch").get<uint64_t>();
    s.cursor = e.at("cursor").get<uint64_t>();
    s.order = make_order(s.order.size(), s.seed, s.epoch);
  }
}

}  // namespace keel
