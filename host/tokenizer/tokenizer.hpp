// A Hugging Face tokenizer read from tokenizer.json (+ tokenizer_config.json beside it), encoding
// to exactly the ids the `tokenizers` library gives: added tokens matched first, then normalizer,
// pre-tokenizer and BPE; post-processor BOS/EOS on request. Torch-free.
//
//   Tokenizer tok = Tokenizer::load("models/qwen3");          // a folder or a tokenizer.json
//   std::vector<int32_t> ids = tok.encode("Hello world");      // no BOS/EOS
//   std::string text = tok.decode(ids);                        // == "Hello world"
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace keel {

class Bpe;
class Normalizer;
class PreTokenizer;
class Decoder;
class AddedTokens;

struct Encoding {
  std::vector<int32_t> ids;
  // Byte range of each token in the encoded text ({0, 0} for post-processor tokens). Where the
  // normalizer changed the text, a token inside a changed stretch (a character with the marks
  // composed onto it) starts where that stretch starts.
  std::vector<std::pair<uint32_t, uint32_t>> offsets;
};

class Tokenizer {
 public:
  // dir_or_json: a folder with tokenizer.json (and optionally tokenizer_config.json), or the
  // tokenizer.json file itself. Throws UserError: missing file, malformed JSON, unsupported component.
  static Tokenizer load(const std::filesystem::path &dir_or_json);
  // From tokenizer.json's and tokenizer_config.json's contents (config may be null).
  static Tokenizer from_json(nlohmann::json tokenizer, nlohmann::json config, std::string source = "tokenizer.json");

  // 256 byte tokens (ids 0-255) plus `specials` (ids 256...), no merges: for tiny models trained from
  // scratch. eos defaults to the first special and pad to eos; bos is unset unless given.
  static Tokenizer byte_level(const std::vector<std::string> &specials, const std::string &bos = "",
                              const std::string &eos = "", const std::string &pad = "");

  Tokenizer(Tokenizer &&) noexcept;
  Tokenizer &operator=(Tokenizer &&) noexcept;
  ~Tokenizer();

  // add_special: the post-processor's tokens (BOS/EOS). Throws UserError on invalid UTF-8.
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;
  Encoding encode_with_offsets(std::string_view text, bool add_special = false) const;
  std::string decode(const std::vector<int32_t> &ids, bool skip_special = false) const;

  // Id of a token (added tokens included); throws UserError if there is none.
  int32_t token_to_id(std::string_view token) const;
  std::optional<int32_t> find_token(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // "" when out of range
  bool is_special(int32_t id) const;
  size_t vocab_size() const;  // one past the largest id, added tokens included

  std::optional<int32_t> bos_id, eos_id, pad_id;
  std::string bos_token, eos_token, pad_token;  // "" when unset
  // The post-processor's tokens around a single sequence (what add_special adds).
  const std::vector<int32_t> &special_prefix() const { return prefix_; }
  const std::vector<int32_t> &special_suffix() const { return suffix_; }
  // The model's chat template named `name` ("default": the plain string form), "" when there is
  // none: chat_template.jinja beside tokenizer.json, else tokenizer_config.json's chat_template.
  std::string chat_template(std::string_view name = "default") const {
    for (const auto &[n, t] : chat_templates_)
      if (n == name) return t;
    return "";
  }
  const std::vector<std::pair<std::string, std::string>> &chat_templates() const { return chat_templates_; }
  // The file the chat template came from (for error messages).
  const std::string &chat_template_file() const { return chat_template_file_; }
  // What transformers gives a chat template as special tokens: bos_token, eos_token, ... (name, text).
  const std::vector<std::pair<std::string, std::string>> &special_tokens() const { return special_tokens_; }
  // A hash of tokenizer.json and tokenizer_config.json, for caches keyed by the tokenizer.
  const std::string &fingerprint() const { return fingerprint_; }

  // Writes tokenizer.json and tokenizer_config.json into dir (created if needed).
  void save(const std::filesystem::path &dir) const;

 private:
  Tokenizer();
  void encode_into(std::string_view text, bool add_special, std::vector<int32_t> &ids,
                   std::vector<std::pair<uint32_t, uint32_t>> *offsets) const;

  nlohmann::json json_, config_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pretok_;
  std::unique_ptr<Bpe> bpe_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<AddedTokens> added_;
  std::vector<int32_t> prefix_, suffix_;
  std::vector<std::pair<std::string, std::string>> chat_templates_, special_tokens_;
  std::string chat_template_file_, fingerprint_;
};

}  // namespace keel
