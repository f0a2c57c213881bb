// JSONL dataset lines from untrusted bytes, each parsed as keel's dataset reader does and, when it
// is a record, rendered with the real Qwen3 template and tokenized (build_example): a bad line is
// refused with a reason (or UserError), never a crash; labels match ids.
#include <optional>

#include "data/chat_template.hpp"
#include "data/example.hpp"
#include "data/record.hpp"
#include "fuzz_common.hpp"
#include "tokenizer/tokenizer.hpp"

static const keel::Tokenizer *tok = nullptr;
static const keel::ChatTemplate *tmpl = nullptr;

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  tok = new keel::Tokenizer(keel::Tokenizer::load(keel::fuzz::shared_data("tokenizers/qwen3")));
  tmpl = new keel::ChatTemplate(keel::ChatTemplate::resolve(keel::fuzz::shared_data("chat_templates/qwen3.jinja"), *tok));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view all = keel::fuzz::as_text(data, size);
  for (size_t p = 0; p < all.size();) {
    size_t nl = all.find('\n', p);
    if (nl == std::string_view::npos) nl = all.size();
    const std::string_view line = all.substr(p, nl - p);
    p = nl + 1;
    std::string why;
    const std::optional<keel::Record> r = keel::parse_jsonl_record(line, std::nullopt, why);
    if (!r) {
      if (why.empty()) std::abort();  // refused without a reason
      continue;
    }
    for (keel::TrainOn on : {keel::TrainOn::assistant, keel::TrainOn::completion, keel::TrainOn::all})
      keel::fuzz::expect_user_error_or_success([&] {
        const keel::BuiltExample b = keel::build_example(*r, on, *tok, *tmpl);
        if (b.example.ids.size() != b.example.labels.size()) std::abort();
      });
  }
  return 0;
}
