// The tokenizer: byte-level tokenizer round trips and save/load, component errors, merge forms,
// offsets, long words, and (when ../shared has it) the real Qwen3 tokenizer.
#include <doctest/doctest.h>

#include "temp_path.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/errors.hpp"
#include "tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace keel;

namespace {

std::string error_of(const std::function<void()> &f) {
  try {
    f();
  } catch (const UserError &e) {
    return e.what();
  }
  return "";
}

// A tiny BPE over characters: a, b, ab, aa, aaaa, with merges in the given form.
json tiny(bool string_merges) {
  json merges = string_merges ? json::array({"a b", "a a", "aa aa"})
                              : json::array({json::array({"a", "b"}), json::array({"a", "a"}), json::array({"aa", "aa"})});
  return {{"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model",
           {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}, {"aa", 3}, {"aaaa", 4}}}, {"merges", merges}}}};
}

// ../shared beside the checkout (this file is tests/unit/ in it).
fs::path qwen3_dir() {
  return fs::path(__FILE__).parent_path() / ".." / ".." / ".." / "shared" / "data" / "tokenizers" / "qwen3";
}

}  // namespace

TEST_CASE("writes a byte-level fixture (for the tokenizer CLI and transformers tests)") {
  const char *out = std::getenv("KEEL_BYTE_LEVEL_OUT");
  fs::path dir = out ? fs::path(out) : temp_path("test-byte-level");
  Tokenizer::byte_level({"<|endoftext|>", "<|im_start|>", "<|im_end|>"}).save(dir);
  CHECK(fs::exists(dir / "tokenizer.json"));
  CHECK(fs::exists(dir / "tokenizer_config.json"));
}

TEST_CASE("byte-level tokenizer: bytes and specials, exact round trip, save and load") {
  Tokenizer t = Tokenizer::byte_level({"<|endoftext|>", "<|im_start|>", "<|im_end|>"});
  CHECK(t.vocab_size() == 259);
  CHECK(t.eos_id == 256);
  CHECK(t.pad_id == 256);
  CHECK(!t.bos_id);
  std::string text = "h\xC3\xA9<|im_end|> \xF0\x9F\x99\x82";  // "hé<|im_end|> 🙂"
  auto ids = t.encode(text);
  CHECK(ids == std::vector<int32_t>{'h', 0xC3, 0xA9, 258, ' ', 0xF0, 0x9F, 0x99, 0x82});
  CHECK(t.decode(ids) == text);
  CHECK(t.decode(ids, true) == "h\xC3\xA9 \xF0\x9F\x99\x82");
  fs::path dir = temp_path("test-byte-level-2");
  t.save(dir);
  Tokenizer u = Tokenizer::load(dir);
  CHECK(u.encode(text) == ids);
  CHECK(u.eos_id == 256);
  CHECK(u.fingerprint() != "");
}

TEST_CASE("decode repairs invalid UTF-8 as tokenizers does (U+FFFD)") {
  Tokenizer t = Tokenizer::byte_level({});
  CHECK(t.decode({'a', 0xF0, 0x9F, 'b'}) == "a\xEF\xBF\xBD" "b");
}

TEST_CASE("encode refuses invalid UTF-8") {
  Tokenizer t = Tokenizer::byte_level({});
  CHECK(error_of([&] { t.encode("ok \xFF"); }).find("not valid UTF-8 (byte 3)") != std::string::npos);
}

TEST_CASE("merges in the \"a b\" and [\"a\", \"b\"] forms give the same ids; long words stay fast") {
  Tokenizer s = Tokenizer::from_json(tiny(true), nullptr);
  Tokenizer a = Tokenizer::from_json(tiny(false), nullptr);
  CHECK(s.encode("aaaaab") == std::vector<int32_t>{4, 2});  // a b (rank 0) first, then a a, then aa aa
  CHECK(a.encode("aaaaab") == s.encode("aaaaab"));
  CHECK(s.encode("ab") == std::vector<int32_t>{2});
  std::string long_word(200000, 'a');
  auto t0 = std::chrono::steady_clock::now();
  auto ids = s.encode(long_word);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(ids.size() == 50000);
  CHECK(secs < 2.0);
}

TEST_CASE("unsupported components are named in the error") {
  json j = tiny(true);
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  CHECK(error_of([&] { Tokenizer::from_json(j, nullptr); }).find("pre-tokenizer 'BertPreTokenizer' is not supported") !=
        std::string::npos);
  j = tiny(true);
  j["normalizer"] = {{"type", "Lowercase"}};
  CHECK(error_of([&] { Tokenizer::from_json(j, nullptr); }).find("normalizer 'Lowercase' is not supported") != std::string::npos);
  j = tiny(true);
  j["model"]["type"] = "WordPiece";
  CHECK(error_of([&] { Tokenizer::from_json(j, nullptr); }).find("model 'WordPiece' is not supported") != std::string::npos);
  j = tiny(true);
  j["decoder"] = {{"type", "CTC"}};
  CHECK(error_of([&] { Tokenizer::from_json(j, nullptr); }).find("decoder 'CTC' is not supported") != std::string::npos);
  j = tiny(true);
  j["post_processor"] = {{"type", "Weird"}};
  CHECK(error_of([&] { Tokenizer::from_json(j, nullptr); }).find("post-processor 'Weird' is not supported") != std::string::npos);
  CHECK(error_of([] { Tokenizer::load("/nonexistent/tok"); }).find("no such file") != std::string::npos);
}

TEST_CASE("offsets map tokens back to bytes of the input") {
  Tokenizer t = Tokenizer::byte_level({"<|im_end|>"});
  Encoding e = t.encode_with_offsets("ab<|im_end|>c");
  REQUIRE(e.ids.size() == 4);
  CHECK(e.offsets[2] == std::pair<uint32_t, uint32_t>{2, 12});
  CHECK(e.offsets[3] == std::pair<uint32_t, uint32_t>{12, 13});
}

TEST_CASE("Qwen3 tokenizer: known ids, specials in text, NFC, offsets") {
  if (!fs::exists(qwen3_dir() / "tokenizer.json")) {
    MESSAGE("SKIPPED: no Qwen3 tokenizer at " << qwen3_dir().string() << " (../shared is absent)");
    return;
  }
  Tokenizer t = Tokenizer::load(qwen3_dir());
  CHECK(t.vocab_size() == 151669);
  CHECK(t.eos_id == 151645);  // <|im_end|>
  CHECK(t.pad_id == 151643);
  CHECK(t.encode("Hello world, this is a test!") == std::vector<int32_t>{9707, 1879, 11, 419, 374, 264, 1273, 0});
  CHECK(t.encode("foo<|im_end|>") == std::vector<int32_t>{7975, 151645});
  CHECK(t.encode("x", true) == t.encode("x"));  // Qwen adds no BOS/EOS
  CHECK(t.decode(t.encode("e\xCC\x81")) == "\xC3\xA9");  // NFC: e + combining acute → é
  std::string s = "  Привет мир 你好 🙂 12345";
  CHECK(t.decode(t.encode(s)) == s);
  Encoding e = t.encode_with_offsets(s);
  CHECK(e.offsets.front().first == 0);
  CHECK(e.offsets.back().second == s.size());
  for (size_t i = 1; i < e.offsets.size(); ++i) CHECK(e.offsets[i].first == e.offsets[i - 1].second);
  CHECK(t.chat_template().find("<|im_start|>") != std::string::npos);
}
