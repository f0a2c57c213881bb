// Chat templates, loss masks, dataset formats, bad lines, overflow and the tokenised-data cache,
// on the byte-level tokenizer (so every id is a byte and masks are easy to read).
#include <doctest/doctest.h>

#include "temp_path.hpp"

#include <filesystem>
#include <fstream>

#include "common/errors.hpp"
#include "data/chat_template.hpp"
#include "data/dataset.hpp"
#include "tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;
using namespace keel;

namespace {

Tokenizer byte_tok() { return Tokenizer::byte_level({"<|endoftext|>", "<|im_start|>", "<|im_end|>"}); }

fs::path write_file(const std::string &name, const std::string &text) {
  fs::path p = temp_path("test-data-" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

// The trained part of an example, decoded.
std::string trained_text(const Tokenizer &t, const Example &e) {
  std::vector<int32_t> ids;
  for (int32_t l : e.labels)
    if (l != kIgnoreLabel) ids.push_back(l);
  return t.decode(ids);
}

Dataset load(const fs::path &p, const Tokenizer &t, const std::string &tmpl, int64_t seq_len = 4096,
             toml::table extra = {}, const fs::path &cache = {}) {
  extra.insert_or_assign("path", p.string());
  return load_dataset("t", extra, t, ChatTemplate::resolve(tmpl, t), seq_len, cache);
}

std::string error_of(const std::function<void()> &f) {
  try {
    f();
  } catch (const UserError &e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a model without a chat template is an error when a conversation is rendered, never a guess") {
  Tokenizer t = byte_tok();  // no chat_template
  ChatTemplate none = ChatTemplate::resolve("auto", t);
  CHECK_FALSE(none.resolved());
  CHECK(error_of([&] { none.generation_prompt("hi"); }).find("set [model] chat_template") != std::string::npos);
  CHECK(error_of([&] { ChatTemplate::resolve("vicuna", t); }).find("unknown chat template 'vicuna'") != std::string::npos);
}

TEST_CASE("chatml and llama3 render as their Jinja templates do") {
  Tokenizer t = byte_tok();
  std::vector<Message> m = {{"system", "S"}, {"user", "U"}, {"assistant", " A \n"}};
  CHECK(ChatTemplate::resolve("chatml", t).generation_prompt(m) ==
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n A \n<|im_end|>\n"
        "<|im_start|>assistant\n");
  Tokenizer l = Tokenizer::byte_level({"<|begin_of_text|>", "<|eot_id|>"}, "<|begin_of_text|>", "<|eot_id|>");
  CHECK(ChatTemplate::resolve("llama3", l).generation_prompt(m) ==
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user"
        "<|end_header_id|>\n\nU<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
  CHECK(ChatTemplate::resolve("mistral", l).generation_prompt(std::vector<Message>{{"system", "S"}, {"user", "U"}}) ==
        "<|begin_of_text|>[INST] S\n\nU [/INST]");
}

TEST_CASE("messages: loss on each assistant turn's content and end-of-turn token only") {
  Tokenizer t = byte_tok();
  fs::path p = write_file("msgs.jsonl",
                          R"({"messages":[{"role":"user","content":"Q1"},{"role":"assistant","content":"A1"},)"
                          R"({"role":"user","content":"Q2"},{"role":"assistant","content":"A2"}]})"
                          "\n");
  Dataset d = load(p, t, "chatml");
  REQUIRE(d.examples.size() == 1);
  const Example &e = d.examples[0];
  CHECK(e.ids.size() == e.labels.size());
  CHECK(trained_text(t, e) == "A1<|im_end|>A2<|im_end|>");
  CHECK(d.prompts[0] ==
        "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
        "<|im_start|>assistant\n");
  toml::table last{{"train_on", "completion"}};
  CHECK(trained_text(t, load(p, t, "chatml", 4096, last).examples[0]) == "A2<|im_end|>");
  toml::table all{{"train_on", "all"}};
  CHECK(trained_text(t, load(p, t, "chatml", 4096, all).examples[0]) == t.decode(e.ids));
}

TEST_CASE("prompt/completion: loss on the completion and EOS; text: on everything and EOS") {
  Tokenizer t = byte_tok();
  fs::path p = write_file("pc.jsonl", R"({"prompt":"The sky is","completion":" blue."})" "\n");
  Dataset d = load(p, t, "chatml");
  CHECK(trained_text(t, d.examples[0]) == " blue.<|endoftext|>");
  CHECK(d.prompts[0] == "The sky is");
  fs::path c = write_file("pcc.jsonl", R"({"prompt":[{"role":"user","content":"Hi"}],"completion":[{"role":"assistant","content":"Yo"}]})" "\n");
  Dataset dc = load(c, t, "chatml");
  CHECK(trained_text(t, dc.examples[0]) == "Yo<|im_end|>\n");  // TRL: all after the prompt's tokens
  CHECK(dc.prompts[0] == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  fs::path x = write_file("text.jsonl", R"({"text":"abc"})" "\n");
  Dataset dx = load(x, t, "auto");  // text needs no template
  CHECK(trained_text(t, dx.examples[0]) == "abc<|endoftext|>");
  fs::path txt = write_file("plain.txt", "line one\n\nline two\n");
  Dataset dt = load(txt, t, "auto");
  CHECK(dt.examples.size() == 2);
  CHECK(dt.stats.lines == 2);
}

TEST_CASE("bad lines stop the load with file:line, or are skipped and counted") {
  Tokenizer t = byte_tok();
  std::string ok = R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})";
  fs::path p = write_file("bad.jsonl", ok + "\n" + R"({"messages":[{"role":"robot","content":"x"}]})" + "\nnot json\n" + ok + "\n");
  std::string err = error_of([&] { load(p, t, "chatml"); });
  CHECK(err.find("bad.jsonl:2: messages[0]: unknown role 'robot'") != std::string::npos);
  toml::table skip{{"skip_bad_lines", true}};
  Dataset d = load(p, t, "chatml", 4096, skip);
  CHECK(d.stats.lines == 4);
  CHECK(d.stats.bad_lines == 2);
  CHECK(d.stats.examples == 2);
}

TEST_CASE("hostile lines are bad lines with a reason: deep nesting, number overflow") {
  Tokenizer t = byte_tok();
  const std::string deep = std::string(20000, '[') + std::string(20000, ']');
  fs::path p = write_file("hostile.jsonl",
                          R"({"messages":[{"role":"user","content":"q","x":)" + deep + R"(},{"role":"assistant","content":"a"}]})" +
                              "\n" + R"({"text": "a", "n": 1e999999})" + "\n" + R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})" + "\n");
  std::string err = error_of([&] { load(p, t, "chatml"); });
  CHECK(err.find("hostile.jsonl:1: JSON nested 20003 levels deep, expected at most 64") != std::string::npos);
  toml::table skip{{"skip_bad_lines", true}};
  Dataset d = load(p, t, "chatml", 4096, skip);
  CHECK(d.stats.bad_lines == 2);  // the second: nlohmann's out_of_range for 1e999999, not a crash
  CHECK(d.stats.examples == 1);
}

TEST_CASE("over-long examples are truncated or dropped, and counted") {
  Tokenizer t = byte_tok();
  fs::path p = write_file("long.jsonl", R"({"text":"0123456789012345678901234567890123456789"})" "\n" R"({"text":"ab"})" "\n");
  Dataset tr = load(p, t, "auto", 10);
  CHECK(tr.stats.truncated == 1);
  CHECK(tr.examples[0].ids.size() == 10);
  CHECK(tr.stats.tokens == 10 + 3);
  toml::table drop{{"overflow", "drop"}};
  Dataset dr = load(p, t, "auto", 10, drop);
  CHECK(dr.stats.dropped == 1);
  CHECK(dr.examples.size() == 1);
}

TEST_CASE("the tokenised-data cache is reused, and a changed file invalidates it") {
  Tokenizer t = byte_tok();
  fs::path cache = temp_path("test-data-cache");
  fs::remove_all(cache);
  fs::path p = write_file("cached.jsonl", R"({"prompt":"a","completion":"b"})" "\n");
  Dataset first = load(p, t, "chatml", 4096, {}, cache);
  CHECK(!first.from_cache);
  Dataset second = load(p, t, "chatml", 4096, {}, cache);
  CHECK(second.from_cache);
  CHECK(second.examples[0].ids == first.examples[0].ids);
  CHECK(second.examples[0].labels == first.examples[0].labels);
  CHECK(second.prompts == first.prompts);
  CHECK(second.stats.tokens == first.stats.tokens);
  CHECK(!load(p, t, "chatml", 100, {}, cache).from_cache);  // another seq_len is another key
  write_file("cached.jsonl", R"({"prompt":"a","completion":"c"})" "\n");
  Dataset changed = load(p, t, "chatml", 4096, {}, cache);
  CHECK(!changed.from_cache);
  CHECK(changed.examples[0].ids != first.examples[0].ids);
}
