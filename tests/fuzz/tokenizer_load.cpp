// tokenizer.json (and tokenizer_config.json) from untrusted bytes: Tokenizer::from_json refuses
// with UserError or builds a tokenizer that then encodes and decodes a fixed text.
#include <nlohmann/json.hpp>

#include "fuzz_common.hpp"
#include "tokenizer/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception &) {
    return 0;  // the loader reports a parse error before it gets here
  }
  keel::fuzz::expect_user_error_or_success([&] {
    keel::Tokenizer tok = keel::Tokenizer::from_json(j, nlohmann::json::object(), "fuzz/tokenizer.json");
    const auto ids = tok.encode("Hello, world! 123 héllo <|im_end|>\n\n", true);
    for (int32_t id : ids)
      if (id < 0 || static_cast<size_t>(id) >= tok.vocab_size()) std::abort();
    (void)tok.decode(ids);
  });
  return 0;
}
