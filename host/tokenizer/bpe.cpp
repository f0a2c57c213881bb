#include "tokenizer/bpe.hpp"

#include <algorithm>
#include <queue>

#include <fmt/format.h>
#include <xxhash.h>

#include "common/errors.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/utf8.hpp"

namespace keel {

size_t StringHash::operator()(std::string_view s) const { return XXH3_64bits(s.data(), s.size()); }

namespace {

constexpr size_t kCacheMaxWords = 1 << 19;  // words longer than kCacheMaxLen are not cached
constexpr size_t kCacheMaxLen = 256;

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
uint64_t mix(uint64_t k) {  // splitmix64 finaliser: ids are small and sequential
  k ^= k >> 30;
  k *= 0xbf58476d1ce4e5b9ULL;
  k ^= k >> 27;
  k *= 0x94d049bb133111ebULL;
  return k ^ (k >> 31);
}
constexpr uint64_t kEmpty = ~0ULL;

}  // namespace

void Bpe::MergeTable::build(const std::vector<std::pair<uint64_t, Merge>> &items) {
  size_t cap = 16;
  while (cap < items.size() * 2) cap <<= 1;
  keys.assign(cap, kEmpty);
  vals.assign(cap, Merge{0, 0});
  mask = cap - 1;
  for (const auto &[k, v] : items) {
    for (uint64_t h = mix(k) & mask;; h = (h + 1) & mask) {
      if (keys[h] == kEmpty) {
        keys[h] = k;
        vals[h] = v;
        break;
      }
      if (keys[h] == k) break;  // a repeated merge keeps its first (best) rank
    }
  }
}

const Bpe::Merge *Bpe::MergeTable::get(int32_t a, int32_t b) const {
  uint64_t k = pair_key(a, b);
  for (uint64_t h = mix(k) & mask;; h = (h + 1) & mask) {
    if (keys[h] == k) return &vals[h];
    if (keys[h] == kEmpty) return nullptr;
  }
}

int32_t token_id(const nlohmann::json &v, std::string_view what) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= kMaxTokenId)
    throw UserError(fmt::format("tokenizer.json: {} = {} is not a token id (an integer in [0, {}))", what,
                                v.dump(), kMaxTokenId));
  return static_cast<int32_t>(v.get<int64_t>());
}

Bpe::Bpe(const nlohmann::json &m, bool byte_level) : byte_level_(byte_level) {
  if (m.value("type", "BPE") != "BPE")
    throw UserError(fmt::format("tokenizer.json: model '{}' is not supported, expected BPE", m.value("type", "")));
  if (m.contains("dropout") && !m["dropout"].is_null())
    throw UserError("tokenizer.json: BPE dropout is not supported, expected \"dropout\": null");
  if (!m.value("continuing_subword_prefix", nlohmann::json()).is_null() && !m["continuing_subword_prefix"].get<std::string>().empty())
    throw UserError("tokenizer.json: BPE continuing_subword_prefix is not supported, expected an empty one");
  if (!m.value("end_of_word_suffix", nlohmann::json()).is_null() && !m["end_of_word_suffix"].get<std::string>().empty())
    throw UserError("tokenizer.json: BPE end_of_word_suffix is not supported, expected an empty one");
  byte_fallback_ = m.value("byte_fallback", false);
  ignore_merges_ = m.value("ignore_merges", false);
  fuse_unk_ = m.value("fuse_unk", false);

  const auto &vocab = m.at("vocab");
  int32_t max_id = -1;
  for (const auto &[k, v] : vocab.items()) {
    const int32_t id = token_id(v, fmt::format("vocab['{}']", k));  // ids index tables here
    max_id = std::max(max_id, id);
  }
  keys_.resize(max_id + 1);
  ids_.reserve(vocab.size() * 2);
  auto raw = [&](const std::string &key) -> std::string {
    if (!byte_level_) return key;
    auto b = byte_level::to_bytes(key);
    return b ? *b : key;  // a key outside the byte map (rare) stays as written
  };
  for (const auto &[k, v] : vocab.items()) {
    int32_t id = v.get<int32_t>();  // checked above
    keys_[id] = k;
    ids_.emplace(raw(k), id);
  }
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    auto it = vocab.find(m["unk_token"].get<std::string>());
    if (it != vocab.end()) unk_ = token_id(*it, "unk/byte-fallback token");
  }
  for (int b = 0; b < 256; ++b) {
    auto id = find(std::string(1, static_cast<char>(b)));
    byte_ids_[b] = byte_level_ && id ? *id : -1;
    auto it = vocab.find(fmt::format("<0x{:02X}>", b));
    fallback_ids_[b] = it != vocab.end() ? token_id(*it, "unk/byte-fallback token") : -1;
  }

  // Merges: "a b" (older files) or ["a", "b"]; rank = position in the list.
  std::vector<std::pair<uint64_t, Merge>> items;
  const auto &merges = m.at("merges");
  items.reserve(merges.size());
  int32_t rank = 0;
  for (const auto &mj : merges) {
    std::string a, b;
    if (mj.is_string()) {
      const std::string &s = mj.get_ref<const std::string &>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        throw UserError(fmt::format("tokenizer.json: merge {} '{}' is not two tokens separated by one space", rank, s));
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (mj.is_array() && mj.size() == 2) {
      a = mj[0].get<std::string>();
      b = mj[1].get<std::string>();
    } else {
      throw UserError(fmt::format("tokenizer.json: merge {} is neither \"a b\" nor [\"a\", \"b\"]", rank));
    }
    auto ia = vocab.find(a), ib = vocab.find(b), ic = vocab.find(a + b);
    if (ia == vocab.end() || ib == vocab.end() || ic == vocab.end())
      throw UserError(fmt::format("tokenizer.json: merge {} ('{}', '{}') uses a token missing from the vocabulary", rank, a, b));
    items.push_back({pair_key(ia->get<int32_t>(), ib->get<int32_t>()), Merge{rank, ic->get<int32_t>()}});
    ++rank;
  }
  merges_.build(items);
}

std::optional<int32_t> Bpe::find(std::string_view bytes) const {
  auto it = ids_.find(bytes);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

void Bpe::tokenize(std::string_view word, std::vector<int32_t> &ids, std::vector<uint32_t> *lens) const {
  if (word.empty()) return;
  if (word.size() <= kCacheMaxLen) {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      ids.insert(ids.end(), pool_ids_.begin() + it->second.start, pool_ids_.begin() + it->second.start + it->second.n);
      if (lens)
        lens->insert(lens->end(), pool_lens_.begin() + it->second.start, pool_lens_.begin() + it->second.start + it->second.n);
      return;
    }
  }
  thread_local std::vector<int32_t> wids;
  thread_local std::vector<uint32_t> wlens;
  wids.clear();
  wlens.clear();
  merge_word(word, wids, wlens);
  ids.insert(ids.end(), wids.begin(), wids.end());
  if (lens) lens->insert(lens->end(), wlens.begin(), wlens.end());
  if (word.size() <= kCacheMaxLen) {
    std::lock_guard lock(cache_mu_);
    if (cache_.size() >= kCacheMaxWords) {
      cache_.clear();
      pool_ids_.clear();
      pool_lens_.clear();
    }
    cache_.emplace(std::string(word), Cached{static_cast<uint32_t>(pool_ids_.size()), static_cast<uint32_t>(wids.size())});
    pool_ids_.insert(pool_ids_.end(), wids.begin(), wids.end());
    pool_lens_.insert(pool_lens_.end(), wlens.begin(), wlens.end());
  }
}

void Bpe::merge_word(std::string_view word, std::vector<int32_t> &out_ids, std::vector<uint32_t> &out_lens) const {
  if (ignore_merges_) {
    if (auto id = find(word)) {
      out_ids.push_back(*id);
      out_lens.push_back(static_cast<uint32_t>(word.size()));
      return;
    }
  }
  // Initial symbols: bytes (byte-level) or characters, with byte fallback or unk for unknown ones.
  thread_local std::vector<int32_t> sid;
  thread_local std::vector<uint32_t> slen;
  sid.clear();
  slen.clear();
  bool last_unk = false;
  auto unknown = [&](std::string_view ch) {
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : ch) all = all && fallback_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : ch) {
          sid.push_back(fallback_ids_[b]);
          slen.push_back(1);
        }
        last_unk = false;
        return;
      }
    }
    if (!unk_) return;  // tokenizers drops a character it cannot represent when there is no unk
    if (fuse_unk_ && last_unk) {
      slen.back() += static_cast<uint32_t>(ch.size());
      return;
    }
    sid.push_back(*unk_);
    slen.push_back(static_cast<uint32_t>(ch.size()));
    last_unk = true;
  };
  if (byte_level_) {
    for (size_t i = 0; i < word.size(); ++i) {
      int32_t id = byte_ids_[static_cast<unsigned char>(word[i])];
      if (id >= 0) {
        sid.push_back(id);
        slen.push_back(1);
        last_unk = false;
      } else {
        unknown(word.substr(i, 1));
      }
    }
  } else {
    for (size_t i = 0; i < word.size();) {
      size_t n = std::min(utf8::seq_len(static_cast<unsigned char>(word[i])), word.size() - i);
      std::string_view ch = word.substr(i, n);
      if (auto id = find(ch)) {
        sid.push_back(*id);
        slen.push_back(static_cast<uint32_t>(n));
        last_unk = false;
      } else {
        unknown(ch);
      }
      i += n;
    }
  }
  const size_t n = sid.size();
  if (n <= 1) {
    out_ids.insert(out_ids.end(), sid.begin(), sid.end());
    out_lens.insert(out_lens.end(), slen.begin(), slen.end());
    return;
  }

  // Merge the lowest-ranked adjacent pair first (leftmost on ties), as tokenizers' Word::merge_all:
  // a heap of candidate pairs over a linked list of symbols; stale entries are skipped when popped.
  struct Cand {
    int32_t rank;
    uint32_t pos;
    int32_t new_id;
    bool operator>(const Cand &o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<int32_t> prev, next;
  thread_local std::vector<Cand> heap_store;
  prev.resize(n);
  next.resize(n);
  heap_store.clear();
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap(std::greater<Cand>(), std::move(heap_store));
  for (size_t i = 0; i + 1 < n; ++i)
    if (const Merge *mg = merges_.get(sid[i], sid[i + 1])) heap.push({mg->rank, static_cast<uint32_t>(i), mg->id});
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    if (slen[c.pos] == 0 || next[c.pos] < 0) continue;  // merged away, or now last
    int32_t r = next[c.pos];
    const Merge *mg = merges_.get(sid[c.pos], sid[r]);
    if (!mg || mg->id != c.new_id) continue;  // the pair changed since this entry was pushed
    sid[c.pos] = c.new_id;
    slen[c.pos] += slen[r];
    slen[r] = 0;
    next[c.pos] = next[r];
    if (next[r] >= 0) prev[next[r]] = static_cast<int32_t>(c.pos);
    if (prev[c.pos] >= 0)
      if (const Merge *m2 = merges_.get(sid[prev[c.pos]], sid[c.pos]))
        heap.push({m2->rank, static_cast<uint32_t>(prev[c.pos]), m2->id});
    if (next[c.pos] >= 0)
      if (const Merge *m2 = merges_.get(sid[c.pos], sid[next[c.pos]])) heap.push({m2->rank, c.pos, m2->id});
  }
  for (int32_t i = 0; i >= 0; i = next[i]) {
    out_ids.push_back(sid[i]);
    out_lens.push_back(slen[i]);
  }
}

}  // namespace keel
