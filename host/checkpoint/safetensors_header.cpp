#include "checkpoint/safetensors_header.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/errors.hpp"

namespace keel {
namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MB, as the reference implementation

size_t dtype_size(const std::string &d) {
  if (d == "F32") return 4;
  if (d == "BF16" || d == "F16") return 2;
  return 0;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t *bytes, size_t size, const std::string &f) {
  auto bad = [&](const std::string &why) { return UserError(f + ": " + why); };
  if (size < 8) throw bad("truncated: shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > kMaxHeader) throw bad("header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > size - 8) throw bad("truncated: header length " + std::to_string(n) + " runs past the end of the file");
  SafetensorsHeader out;
  out.data_offset = 8 + n;
  const uint64_t data_size = size - 8 - n;
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(bytes + 8, bytes + 8 + n);
  } catch (const nlohmann::json::exception &e) {
    throw bad(std::string("header is not valid JSON: ") + e.what());
  }
  if (!h.is_object()) throw bad("header is not a JSON object");
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<std::string> range_names;
  for (auto &item : h.items()) {
    const std::string &name = item.key();  // not a structured binding: lambdas capture it
    const nlohmann::json &e = item.value();
    if (name == "__metadata__") continue;
    auto tbad = [&](const std::string &why) { return UserError(f + ": tensor '" + name + "': " + why); };
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      throw tbad("entry needs dtype, shape and data_offsets");
    if (!e["dtype"].is_string()) throw tbad("dtype is not a string");
    SafetensorsEntry ent;
    ent.dtype = e["dtype"].get<std::string>();
    const size_t es = dtype_size(ent.dtype);
    if (es == 0) throw tbad("dtype " + ent.dtype + " is not supported (F32, BF16, F16)");
    if (!e["shape"].is_array()) throw tbad("shape is not an array");
    uint64_t count = 1;
    for (const auto &d : e["shape"]) {
      if (!d.is_number_unsigned()) throw tbad("shape has a negative or non-integer dimension");
      const uint64_t v = d.get<uint64_t>();
      // Each dimension must fit an int64 (torch's sizes), and the byte count a uint64.
      if (v > static_cast<uint64_t>(INT64_MAX) || (v != 0 && count > UINT64_MAX / v / es))
        throw tbad("shape is too large");
      count *= v;
      ent.shape.push_back(static_cast<int64_t>(v));
    }
    const auto &o = e["data_offsets"];
    if (!o.is_array() || o.size() != 2 || !o[0].is_number_unsigned() || !o[1].is_number_unsigned())
      throw tbad("data_offsets must be two non-negative integers");
    ent.begin = o[0].get<uint64_t>();
    ent.end = o[1].get<uint64_t>();
    if (ent.begin > ent.end) throw tbad("data_offsets begin after they end");
    if (ent.end > data_size)
      throw tbad("data_offsets [" + std::to_string(ent.begin) + ", " + std::to_string(ent.end) +
                 ") run past the end of the data (" + std::to_string(data_size) + " bytes)");
    if (ent.end - ent.begin != count * es)
      throw tbad("holds " + std::to_string(ent.end - ent.begin) + " bytes but its shape and dtype need " +
                 std::to_string(count * es));
    ranges.emplace_back(ent.begin, ent.end);
    range_names.push_back(name);
    out.entries.emplace(name, std::move(ent));
  }
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  for (size_t i = 1; i < order.size(); ++i)
    if (ranges[order[i]].first < ranges[order[i - 1]].second)
      throw bad("tensor '" + range_names[order[i]] + "' overlaps tensor '" + range_names[order[i - 1]] + "'");
  return out;
}

std::vector<std::string> parse_safetensors_index(std::string_view text, const std::string &f) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception &e) {
    throw UserError(f + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw UserError(f + ": no weight_map object");
  std::vector<std::string> files;
  for (const auto &[name, file] : j["weight_map"].items()) {
    if (!file.is_string()) throw UserError(f + ": weight_map['" + name + "'] is not a file name");
    const std::string fname = file.get<std::string>();
    if (fname.empty() || fname == "." || fname == ".." || fname.find('/') != std::string::npos ||
        fname.find('\0') != std::string::npos)
      throw UserError(f + ": shard name '" + fname + "' must be a plain file name");
    if (std::find(files.begin(), files.end(), fname) == files.end()) files.push_back(fname);
  }
  return files;
}

}  // namespace keel
