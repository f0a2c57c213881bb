#include "tokenizer/tokenizer.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <xxhash.h>

#include "common/errors.hpp"
#include "tokenizer/added_tokens.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/decoder.hpp"
#include "tokenizer/normalizer.hpp"
#include "tokenizer/pretokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace keel {
namespace {

std::string read_file(const fs::path &p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw UserError(fmt::format("{}: cannot read the file", p.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json parse_json(const std::string &text, const std::string &where) {
  try {
    return json::parse(text);
  } catch (const json::exception &e) {
    throw UserError(fmt::format("{}: malformed JSON ({})", where, e.what()));
  }
}

// tokenizer_config.json writes a special token as a string or as {"content": ...}.
std::string token_text(const json &config, const char *key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const json &v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

// The post-processor's tokens before and after a single sequence.
void post_tokens(const json &pp, std::vector<int32_t> &pre, std::vector<int32_t> &post) {
  if (pp.is_null()) return;
  std::string type = pp.value("type", "");
  if (type == "ByteLevel") return;  // it only trims offsets
  if (type == "Sequence") {
    for (const json &p : pp.at("processors")) post_tokens(p, pre, post);
    return;
  }
  if (type == "TemplateProcessing") {
    bool seen_a = false;
    for (const json &item : pp.at("single")) {
      if (item.contains("Sequence")) {
        seen_a = true;
        continue;
      }
      const std::string id = item.at("SpecialToken").at("id").get<std::string>();
      const json &st = pp.at("special_tokens").at(id);
      for (const json &v : st.at("ids")) (seen_a ? post : pre).push_back(token_id(v, "post_processor special token id"));
    }
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    pre.push_back(token_id(pp.at("cls").at(1), "post_processor cls id"));
    post.push_back(token_id(pp.at("sep").at(1), "post_processor sep id"));
    return;
  }
  throw UserError(fmt::format("tokenizer.json: post-processor '{}' is not supported (keel supports TemplateProcessing, "
                              "ByteLevel, RobertaProcessing, BertProcessing, Sequence)",
                              type));
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer &&) noexcept = default;
Tokenizer &Tokenizer::operator=(Tokenizer &&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const fs::path &dir_or_json) {
  fs::path file = fs::is_directory(dir_or_json) ? dir_or_json / "tokenizer.json" : dir_or_json;
  if (!fs::exists(file)) throw UserError(fmt::format("{}: no such file (expected a tokenizer.json or a folder with one)", file.string()));
  std::string text = read_file(file);
  json cfg;
  std::string cfg_text;
  fs::path cfg_file = file.parent_path() / "tokenizer_config.json";
  if (fs::exists(cfg_file)) {
    cfg_text = read_file(cfg_file);
    cfg = parse_json(cfg_text, cfg_file.string());
  }
  // transformers v5 saves the chat template beside the config, as chat_template.jinja; where both
  // exist, transformers takes the file.
  fs::path jinja = file.parent_path() / "chat_template.jinja";
  fs::path template_file = cfg_file;
  if (fs::exists(jinja)) {
    std::string tmpl = read_file(jinja);
    if (!cfg.is_object()) cfg = json::object();
    cfg["chat_template"] = tmpl;
    cfg_text += tmpl;
    template_file = jinja;
  }
  try {
    Tokenizer t = from_json(parse_json(text, file.string()), std::move(cfg), file.string());
    t.chat_template_file_ = template_file.string();
    XXH3_state_t *st = XXH3_createState();
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, text.data(), text.size());
    XXH3_128bits_update(st, cfg_text.data(), cfg_text.size());
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    t.fingerprint_ = fmt::format("{:016x}{:016x}", h.high64, h.low64);
    return t;
  } catch (const json::exception &e) {  // a field of the wrong shape
    throw UserError(fmt::format("{}: unexpected structure ({})", file.string(), e.what()));
  }
}

Tokenizer Tokenizer::from_json(json tj, json config, std::string source) {
  Tokenizer t;
  try {
    t.normalizer_ = Normalizer::from_json(tj.value("normalizer", json()));
    t.pretok_ = PreTokenizer::from_json(tj.value("pre_tokenizer", json()));
    bool byte_level = t.pretok_ && t.pretok_->byte_level();
    t.bpe_ = std::make_unique<Bpe>(tj.at("model"), byte_level);
    t.decoder_ = Decoder::from_json(tj.value("decoder", json()));
    std::vector<AddedToken> added;
    for (const json &a : tj.value("added_tokens", json::array())) {
      AddedToken x;
      x.id = token_id(a.at("id"), "added_tokens id");
      x.content = a.at("content").get<std::string>();
      x.single_word = a.value("single_word", false);
      x.lstrip = a.value("lstrip", false);
      x.rstrip = a.value("rstrip", false);
      x.normalized = a.value("normalized", !a.value("special", false));
      x.special = a.value("special", false);
      added.push_back(std::move(x));
    }
    t.added_ = std::make_unique<AddedTokens>(std::move(added));
    if (!tj.value("truncation", json()).is_null() || !tj.value("padding", json()).is_null()) {
      // keel truncates and pads itself; tokenizer.json's settings would only change ids silently.
      tj["truncation"] = nullptr;
      tj["padding"] = nullptr;
    }

    t.bos_token = token_text(config, "bos_token");
    t.eos_token = token_text(config, "eos_token");
    t.pad_token = token_text(config, "pad_token");
    if (!t.bos_token.empty()) t.bos_id = t.find_token(t.bos_token);
    if (!t.eos_token.empty()) t.eos_id = t.find_token(t.eos_token);
    if (!t.pad_token.empty()) t.pad_id = t.find_token(t.pad_token);

    // transformers (v5) rebuilds the post-processor from add_bos_token/add_eos_token when the config
    // names either; otherwise tokenizer.json's post-processor stands.
    if (config.is_object() && (config.contains("add_bos_token") || config.contains("add_eos_token"))) {
      if (config.value("add_bos_token", false) && t.bos_id) t.prefix_.push_back(*t.bos_id);
      if (config.value("add_eos_token", false) && t.eos_id) t.suffix_.push_back(*t.eos_id);
    } else {
      post_tokens(tj.value("post_processor", json()), t.prefix_, t.suffix_);
    }

    if (config.is_object() && config.contains("chat_template")) {
      const json &ct = config["chat_template"];
      if (ct.is_string()) t.chat_templates_.emplace_back("default", ct.get<std::string>());
      else if (ct.is_array())
        for (const json &c : ct)
          if (c.is_object() && c.contains("name") && c["name"].is_string() && c.contains("template") && c["template"].is_string())
            t.chat_templates_.emplace_back(c["name"].get<std::string>(), c["template"].get<std::string>());
    }
    // transformers passes these to the template: the named special tokens, any other *_token
    // string of the config, and the named extra_special_tokens.
    if (config.is_object()) {
      for (auto it = config.begin(); it != config.end(); ++it) {
        const std::string &k = it.key();
        if (k.size() > 6 && k.compare(k.size() - 6, 6, "_token") == 0) {
          std::string v = token_text(config, k.c_str());
          if (!v.empty() || (it->is_string())) t.special_tokens_.emplace_back(k, v);
        }
      }
      if (config.contains("extra_special_tokens") && config["extra_special_tokens"].is_object())
        for (auto it = config["extra_special_tokens"].begin(); it != config["extra_special_tokens"].end(); ++it) {
          if (it->is_string()) t.special_tokens_.emplace_back(it.key(), it->get<std::string>());
          else if (it->is_object() && it->contains("content")) t.special_tokens_.emplace_back(it.key(), (*it)["content"].get<std::string>());
        }
    }
  } catch (const json::exception &e) {
    throw UserError(fmt::format("{}: unexpected structure ({})", source, e.what()));
  }
  t.json_ = std::move(tj);
  t.config_ = std::move(config);
  if (t.fingerprint_.empty()) {
    std::string all = t.json_.dump() + t.config_.dump();
    XXH128_hash_t h = XXH3_128bits(all.data(), all.size());
    t.fingerprint_ = fmt::format("{:016x}{:016x}", h.high64, h.low64);
  }
  return t;
}

Tokenizer Tokenizer::byte_level(const std::vector<std::string> &specials, const std::string &bos, const std::string &eos,
                                const std::string &pad) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level::char_of(static_cast<unsigned char>(b))] = b;
  json added = json::array();
  int32_t id = 256;
  for (const std::string &s : specials)
    added.push_back({{"id", id++}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  json tj = {{"version", "1.0"},
             {"truncation", nullptr},
             {"padding", nullptr},
             {"added_tokens", added},
             {"normalizer", nullptr},
             {"pre_tokenizer", bl},
             {"post_processor", bl},
             {"decoder", bl},
             {"model",
              {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
               {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
               {"vocab", vocab}, {"merges", json::array()}}}};
  std::string e = !eos.empty() ? eos : specials.empty() ? "" : specials.front();
  std::string p = !pad.empty() ? pad : e;
  json added_decoder = json::object();
  for (const json &a : added)
    added_decoder[std::to_string(a["id"].get<int>())] = {{"content", a["content"]}, {"lstrip", false}, {"normalized", false},
                                                         {"rstrip", false}, {"single_word", false}, {"special", true}};
  json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"model_max_length", 1000000000},
              {"clean_up_tokenization_spaces", false}, {"added_tokens_decoder", added_decoder}};
  cfg["bos_token"] = bos.empty() ? json(nullptr) : json(bos);
  cfg["eos_token"] = e.empty() ? json(nullptr) : json(e);
  cfg["pad_token"] = p.empty() ? json(nullptr) : json(p);
  return from_json(std::move(tj), std::move(cfg), "byte-level tokenizer");
}

void Tokenizer::save(const fs::path &dir) const {
  fs::create_directories(dir);
  auto write = [&](const fs::path &p, const json &j) {
    std::ofstream out(p, std::ios::binary);
    out << j.dump(2, ' ', false, json::error_handler_t::strict) << "\n";
    if (!out) throw UserError(fmt::format("{}: cannot write the file", p.string()));
  };
  write(dir / "tokenizer.json", json_);
  if (!config_.is_null()) write(dir / "tokenizer_config.json", config_);
}

std::optional<int32_t> Tokenizer::find_token(std::string_view token) const {
  if (const AddedToken *a = added_->by_content(token)) return a->id;
  auto it = json_["model"]["vocab"].find(std::string(token));
  if (it != json_["model"]["vocab"].end()) return it->get<int32_t>();
  return std::nullopt;
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = find_token(token)) return *id;
  throw UserError(fmt::format("tokenizer has no token '{}'", token));
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (const AddedToken *a = added_->by_id(id)) return a->content;
  if (id >= 0 && static_cast<size_t>(id) < bpe_->size()) return bpe_->key(id);
  return "";
}

bool Tokenizer::is_special(int32_t id) const {
  const AddedToken *a = added_->by_id(id);
  return a && a->special;
}

size_t Tokenizer::vocab_size() const {
  size_t n = bpe_->size();
  for (const AddedToken &a : added_->all()) n = std::max(n, static_cast<size_t>(a.id) + 1);
  return n;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  encode_into(text, add_special, ids, nullptr);
  return ids;
}

Encoding Tokenizer::encode_with_offsets(std::string_view text, bool add_special) const {
  Encoding e;
  encode_into(text, add_special, e.ids, &e.offsets);
  return e;
}

void Tokenizer::encode_into(std::string_view text, bool add_special, std::vector<int32_t> &ids,
                            std::vector<std::pair<uint32_t, uint32_t>> *offsets) const {
  if (size_t bad = utf8::find_invalid(text); bad != std::string_view::npos)
    throw UserError(fmt::format("text is not valid UTF-8 (byte {})", bad));
  if (text.size() >= UINT32_MAX) throw UserError("text is too long to tokenize (4 GiB or more)");
  ids.reserve(ids.size() + text.size() / 3 + 4);
  if (add_special)
    for (int32_t id : prefix_) {
      ids.push_back(id);
      if (offsets) offsets->push_back({0, 0});
    }

  PieceArena arena;
  std::vector<Piece> pieces;
  std::vector<uint32_t> lens;
  std::vector<AddedTokens::Match> raw_matches, norm_matches;
  const bool want = offsets != nullptr;

  auto emit_added = [&](int32_t id, uint32_t b, uint32_t e) {
    ids.push_back(id);
    if (offsets) offsets->push_back({b, e});
  };
  // One stretch of text with no added token in it: pre-tokenize, then BPE each piece.
  auto model_part = [&](Piece whole) {
    pieces.clear();
    pieces.push_back(whole);
    if (pretok_) pretok_->split(pieces, arena, want);
    for (const Piece &p : pieces) {
      size_t first = ids.size();
      lens.clear();
      bpe_->tokenize(p.text, ids, want ? &lens : nullptr);
      if (!offsets) continue;
      size_t pos = 0;
      for (size_t k = first; k < ids.size(); ++k) {
        size_t end = pos + lens[k - first];
        offsets->push_back({p.at(pos), p.at(end)});
        pos = end;
      }
    }
  };
  // A stretch between raw-matched added tokens: normalize, then split on normalized added tokens.
  auto segment = [&](uint32_t b, uint32_t e) {
    if (b == e) return;
    std::string_view seg = text.substr(b, e - b);
    bool changed = false;
    const uint32_t *map = nullptr;  // normalized byte → input offset, when the normalizer changed it
    if (normalizer_) {
      std::string out;
      std::vector<uint32_t> *m = want ? &arena.maps.emplace_back() : nullptr;
      if (normalizer_->apply(seg, out, m)) {
        seg = arena.texts.emplace_back(std::move(out));
        changed = true;
        if (m) {
          for (uint32_t &x : *m) x += b;
          map = m->data();
        }
      }
    }
    auto piece = [&](size_t pb, size_t pe) {
      Piece p;
      p.text = seg.substr(pb, pe - pb);
      if (changed && map) {
        p.map = map + pb;
        p.begin = map[pb];
        p.end = map[pe];
      } else {
        p.begin = b + static_cast<uint32_t>(pb);
        p.end = b + static_cast<uint32_t>(pe);
      }
      return p;
    };
    norm_matches.clear();
    added_->find(seg, true, norm_matches);
    size_t pos = 0;
    for (const auto &m : norm_matches) {
      if (m.begin > pos) model_part(piece(pos, m.begin));
      Piece a = piece(m.begin, m.end);
      emit_added(m.id, a.begin, a.end);
      pos = m.end;
    }
    if (pos < seg.size()) model_part(piece(pos, seg.size()));
  };

  raw_matches.clear();
  added_->find(text, false, raw_matches);
  uint32_t pos = 0;
  for (const auto &m : raw_matches) {
    segment(pos, static_cast<uint32_t>(m.begin));
    emit_added(m.id, static_cast<uint32_t>(m.begin), static_cast<uint32_t>(m.end));
    pos = static_cast<uint32_t>(m.end);
  }
  segment(pos, static_cast<uint32_t>(text.size()));

  if (add_special)
    for (int32_t id : suffix_) {
      ids.push_back(id);
      if (offsets) offsets->push_back({0, 0});
    }
}

std::string Tokenizer::decode(const std::vector<int32_t> &ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const AddedToken *a = added_->by_id(id);
    if (a) {
      if (skip_special && a->special) continue;
      tokens.push_back(a->content);
    } else if (id >= 0 && static_cast<size_t>(id) < bpe_->size() && !bpe_->key(id).empty()) {
      tokens.push_back(bpe_->key(id));
    }
    // Unknown ids are dropped, as tokenizers does.
  }
  if (!decoder_) {  // tokenizers joins with spaces when there is no decoder
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  decoder_->apply(tokens);
  std::string out;
  for (const std::string &t : tokens) out += t;
  return utf8::lossy(out);
}

}  // namespace keel
