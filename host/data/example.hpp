// Turns a parsed record into token ids and labels: the chat template renders it, the tokenizer
// encodes it whole, and labels keep the ids of the tokens that carry loss (-100 elsewhere).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/record.hpp"

namespace keel {

class Tokenizer;

constexpr int32_t kIgnoreLabel = -100;

// Which tokens carry loss. assistant: each assistant turn's content and end-of-turn token;
// completion: the completion (for messages: the last assistant turn); all: every token.
enum class TrainOn { assistant, completion, all };

struct Example {
  std::vector<int32_t> ids;
  std::vector<int32_t> labels;  // labels[i] = ids[i] where the loss applies, else -100 (unshifted)
};

struct BuiltExample {
  Example example;
  std::string prompt;  // what the model sees before it answers (template applied), for probes
  std::string why;     // non-empty: the record cannot be trained on (a bad line)
};

BuiltExample build_example(const Record &r, TrainOn train_on, const Tokenizer &tok, const ChatTemplate &tmpl);

}  // namespace keel
