// One line of a dataset, parsed and checked: TRL's three formats ({"messages"}, {"prompt",
// "completion"} as strings or message lists, {"text"}). What is wrong with a bad line is returned
// as a reason, so the loader can either stop with file:line or skip and count it.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/chat_template.hpp"

namespace keel {

enum class DataFormat { messages, prompt_completion, text };
const char *format_name(DataFormat f);

struct Record {
  DataFormat format = DataFormat::text;
  std::vector<Message> messages;           // messages
  bool conversational = false;             // prompt/completion given as message lists
  std::vector<Message> prompt, completion;  // conversational prompt/completion
  std::string prompt_text, completion_text;  // string prompt/completion
  std::string text;                          // text
  ChatExtras extras;                         // the line's "tools" and "documents", for the template
};

// Parses a JSONL line. `expected` (when set) is the source's format: a line of another format is
// bad. On failure returns nullopt and sets `why`.
std::optional<Record> parse_jsonl_record(std::string_view line, std::optional<DataFormat> expected, std::string &why);

}  // namespace keel
