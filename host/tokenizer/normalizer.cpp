#include "tokenizer/normalizer.hpp"

#include <algorithm>

#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/bytestream.h>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace keel {
namespace {

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

// Unicode normalization forms through ICU's UTF-8 API. ASCII text is invariant under all four, so
// it is skipped before ICU is asked; ICU's quick check rejects most other unchanged text cheaply.
class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(const std::string &form) {
    UErrorCode e = U_ZERO_ERROR;
    if (form == "NFC") n_ = icu::Normalizer2::getNFCInstance(e);
    else if (form == "NFD") n_ = icu::Normalizer2::getNFDInstance(e);
    else if (form == "NFKC") n_ = icu::Normalizer2::getNFKCInstance(e);
    else n_ = icu::Normalizer2::getNFKDInstance(e);
    if (U_FAILURE(e)) throw UserError(fmt::format("tokenizer.json: normalizer {}: ICU has no data for it ({})", form, u_errorName(e)));
  }
  bool apply(std::string_view in, std::string &out, std::vector<uint32_t> *map) const override {
    if (is_ascii(in)) return false;
    UErrorCode e = U_ZERO_ERROR;
    icu::StringPiece sp(in.data(), static_cast<int32_t>(in.size()));
    if (n_->isNormalizedUTF8(sp, e) && U_SUCCESS(e)) return false;
    std::string r = normalize(in);
    if (r == in) return false;
    if (map) align(in, r, *map);
    out = std::move(r);
    return true;
  }

 private:
  std::string normalize(std::string_view in) const {
    UErrorCode e = U_ZERO_ERROR;
    std::string r;
    icu::StringByteSink<std::string> sink(&r);
    n_->normalizeUTF8(0, icu::StringPiece(in.data(), static_cast<int32_t>(in.size())), sink, nullptr, e);
    if (U_FAILURE(e)) throw UserError(fmt::format("normalizer: ICU failed ({})", u_errorName(e)));
    return r;
  }
  // Normalization never reaches across the start of an ASCII character (none composes with what is
  // before it, none reorders), so the text is normalized in chunks: an ASCII character with the
  // non-ASCII run after it. A changed chunk maps all its bytes to its start; the rest is identity.
  void align(std::string_view in, const std::string &whole, std::vector<uint32_t> &map) const {
    map.clear();
    std::string built;
    size_t i = 0;
    while (i < in.size()) {
      size_t j = i;
      while (j < in.size() && static_cast<unsigned char>(in[j]) < 0x80) ++j;
      if (j == in.size()) break;
      size_t start = j > i ? j - 1 : j, k = j;
      while (k < in.size() && static_cast<unsigned char>(in[k]) >= 0x80) ++k;
      for (size_t q = i; q < start; ++q) map.push_back(static_cast<uint32_t>(q));
      built.append(in.substr(i, start - i));
      std::string_view orig = in.substr(start, k - start);
      std::string chunk = normalize(orig);
      // Bytes the chunk shares with its normalized form at either end map to themselves; the
      // changed middle maps to where it starts.
      size_t pre = 0, suf = 0, lim = std::min(orig.size(), chunk.size());
      while (pre < lim && orig[pre] == chunk[pre]) ++pre;
      while (pre > 0 && pre < orig.size() && (static_cast<unsigned char>(orig[pre]) & 0xC0) == 0x80) --pre;
      while (suf < lim - pre && orig[orig.size() - 1 - suf] == chunk[chunk.size() - 1 - suf]) ++suf;
      while (suf > 0 && (static_cast<unsigned char>(orig[orig.size() - suf]) & 0xC0) == 0x80) --suf;
      for (size_t q = 0; q < chunk.size(); ++q) {
        size_t from = q < pre ? q : q >= chunk.size() - suf ? orig.size() - (chunk.size() - q) : pre;
        map.push_back(static_cast<uint32_t>(start + from));
      }
      built += chunk;
      i = k;
    }
    for (size_t q = i; q < in.size(); ++q) map.push_back(static_cast<uint32_t>(q));
    built.append(in.substr(i));
    map.push_back(static_cast<uint32_t>(in.size()));
    if (built != whole) map.assign(whole.size() + 1, 0), map.back() = static_cast<uint32_t>(in.size());  // coarse
  }

 public:

 private:
  const icu::Normalizer2 *n_ = nullptr;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : p_(std::move(p)) {}
  bool apply(std::string_view in, std::string &out, std::vector<uint32_t> *map) const override {
    if (in.empty()) return false;  // HF prepends only to non-empty text
    out = p_;
    out.append(in);
    if (map) {
      map->assign(p_.size(), 0);
      for (size_t i = 0; i <= in.size(); ++i) map->push_back(static_cast<uint32_t>(i));
    }
    return true;
  }

 private:
  std::string p_;
};

class Replace : public Normalizer {
 public:
  Replace(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  bool apply(std::string_view in, std::string &out, std::vector<uint32_t> *map) const override {
    if (from_.empty() || in.find(from_) == std::string_view::npos) return false;
    std::string r;
    if (map) map->clear();
    auto keep = [&](size_t b, size_t e) {
      r.append(in.substr(b, e - b));
      if (map)
        for (size_t q = b; q < e; ++q) map->push_back(static_cast<uint32_t>(q));
    };
    size_t i = 0;
    for (size_t k; (k = in.find(from_, i)) != std::string_view::npos; i = k + from_.size()) {
      keep(i, k);
      r += to_;
      if (map) map->insert(map->end(), to_.size(), static_cast<uint32_t>(k));
    }
    keep(i, in.size());
    if (map) map->push_back(static_cast<uint32_t>(in.size()));
    out = std::move(r);
    return true;
  }

 private:
  std::string from_, to_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  bool apply(std::string_view in, std::string &out, std::vector<uint32_t> *map) const override {
    bool changed = false;
    std::string cur, next;
    std::vector<uint32_t> total, step;
    for (const auto &p : parts_) {
      if (p->apply(changed ? std::string_view(cur) : in, next, map ? &step : nullptr)) {
        if (map) {  // compose: output byte → previous text → input
          if (changed)
            for (uint32_t &x : step) x = total[x];
          total.swap(step);
        }
        cur = std::move(next);
        changed = true;
      }
    }
    if (changed) {
      out = std::move(cur);
      if (map) *map = std::move(total);
    }
    return changed;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> Normalizer::from_json(const nlohmann::json &j) {
  if (j.is_null()) return nullptr;
  std::string type = j.value("type", "");
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") return std::make_unique<UnicodeForm>(type);
  if (type == "Prepend") return std::make_unique<Prepend>(j.at("prepend").get<std::string>());
  if (type == "Replace") {
    const auto &pat = j.at("pattern");
    if (!pat.contains("String"))
      throw UserError("tokenizer.json: normalizer Replace with a Regex pattern is not supported, expected a String pattern");
    return std::make_unique<Replace>(pat.at("String").get<std::string>(), j.at("content").get<std::string>());
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto &n : j.at("normalizers"))
      if (auto p = from_json(n)) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  throw UserError(fmt::format("tokenizer.json: normalizer '{}' is not supported (keel supports NFC, NFD, NFKC, NFKD, "
                              "Prepend, Replace, Sequence)", type));
}

}  // namespace keel
