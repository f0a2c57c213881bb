// The real Qwen3 tokenizer encoding untrusted text (any bytes, invalid UTF-8 included): ids are in
// the vocabulary, offsets inside the text, and decoding never fails.
#include "fuzz_common.hpp"
#include "tokenizer/tokenizer.hpp"

static const keel::Tokenizer *tok = nullptr;

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  tok = new keel::Tokenizer(keel::Tokenizer::load(keel::fuzz::shared_data("tokenizers/qwen3")));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view text = keel::fuzz::as_text(data, size);
  keel::fuzz::expect_user_error_or_success([&] {
    const auto enc = tok->encode_with_offsets(text, size % 2 == 0);
    for (int32_t id : enc.ids)
      if (id < 0 || static_cast<size_t>(id) >= tok->vocab_size()) std::abort();
    for (const auto &[b, e] : enc.offsets)
      if (b > e || e > size) std::abort();
    (void)tok->decode(enc.ids, size % 3 == 0);
  });
  return 0;
}
