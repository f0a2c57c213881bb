#include "data/record.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tokenizer/utf8.hpp"

using json = nlohmann::ordered_json;  // key order reaches templates (tojson of tools, tool calls)

namespace keel {

const char *format_name(DataFormat f) {
  switch (f) {
    case DataFormat::messages: return "messages";
    case DataFormat::prompt_completion: return "prompt/completion";
    default: return "text";
  }
}

namespace {

std::string type_of(const json &j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a number";
  }
}

// A list of {role, content} messages; `what` names it in reasons ("messages", "prompt", ...).
bool parse_messages(const json &j, const char *what, std::vector<Message> &out, std::string &why) {
  if (!j.is_array()) {
    why = fmt::format("'{}' must be an array of {{\"role\", \"content\"}} objects, got {}", what, type_of(j));
    return false;
  }
  if (j.empty()) {
    why = fmt::format("empty conversation: '{}' has no messages, expected at least one", what);
    return false;
  }
  for (size_t i = 0; i < j.size(); ++i) {
    const json &m = j[i];
    if (!m.is_object()) {
      why = fmt::format("{}[{}] must be an object with \"role\" and \"content\", got {}", what, i, type_of(m));
      return false;
    }
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      why = fmt::format("{}[{}].role must be a string, got {}", what, i, role == m.end() ? "nothing" : type_of(*role));
      return false;
    }
    const std::string &r = role->get_ref<const std::string &>();
    if (r != "system" && r != "user" && r != "assistant" && r != "tool") {
      why = fmt::format("{}[{}]: unknown role '{}', expected system, user, assistant or tool", what, i, r);
      return false;
    }
    // content: a string, a list of content parts, or (a tool call's turn) absent or null.
    auto content = m.find("content");
    bool absent_ok = m.contains("tool_calls") && (content == m.end() || content->is_null());
    if (!absent_ok && (content == m.end() || !(content->is_string() || content->is_array()))) {
      why = fmt::format("{}[{}].content must be a string or a list of content parts, got {}", what, i,
                        content == m.end() ? "nothing" : type_of(*content));
      return false;
    }
    out.push_back({r, content != m.end() && content->is_string() ? content->get<std::string>() : std::string(), m});
  }
  return true;
}

// The deepest bracket nesting of JSON text (brackets inside strings do not count). Templates walk
// the values recursively, so a line nested without bound would overflow the stack.
size_t json_nesting(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t k = 0; k < text.size(); ++k) {
    const char c = text[k];
    if (in_string) {
      if (c == '\\') ++k;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

constexpr size_t kMaxNesting = 64;

}  // namespace

std::optional<Record> parse_jsonl_record(std::string_view line, std::optional<DataFormat> expected, std::string &why) {
  if (size_t bad = utf8::find_invalid(line); bad != std::string_view::npos) {
    why = fmt::format("invalid UTF-8 at byte {}, expected UTF-8 text", bad + 1);
    return std::nullopt;
  }
  if (size_t d = json_nesting(line); d > kMaxNesting) {
    why = fmt::format("JSON nested {} levels deep, expected at most {}", d, kMaxNesting);
    return std::nullopt;
  }
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception &e) {
    std::string msg = e.what();
    if (auto p = msg.find("parse error"); p != std::string::npos) msg = msg.substr(p);
    why = fmt::format("malformed JSON ({}), expected one JSON object per line", msg);
    return std::nullopt;
  }
  if (!j.is_object()) {
    why = fmt::format("expected a JSON object, got {}", type_of(j));
    return std::nullopt;
  }
  Record r;
  if (j.contains("messages")) r.format = DataFormat::messages;
  else if (j.contains("prompt") || j.contains("completion")) r.format = DataFormat::prompt_completion;
  else if (j.contains("text")) r.format = DataFormat::text;
  else {
    why = "no 'messages', 'prompt'/'completion' or 'text' key, expected one of TRL's formats";
    return std::nullopt;
  }
  if (expected && *expected != r.format) {
    why = fmt::format("a {} line in a {} dataset, expected every line in one format", format_name(r.format),
                      format_name(*expected));
    return std::nullopt;
  }
  for (const char *k : {"tools", "documents"}) {
    if (!j.contains(k) || j[k].is_null()) continue;
    if (!j[k].is_array()) {
      why = fmt::format("'{}' must be an array, got {}", k, type_of(j[k]));
      return std::nullopt;
    }
    (k[0] == 't' ? r.extras.tools : r.extras.documents) = j[k];
  }
  switch (r.format) {
    case DataFormat::messages:
      if (!parse_messages(j["messages"], "messages", r.messages, why)) return std::nullopt;
      break;
    case DataFormat::text:
      if (!j["text"].is_string()) {
        why = fmt::format("'text' must be a string, got {}", type_of(j["text"]));
        return std::nullopt;
      }
      r.text = j["text"].get<std::string>();
      break;
    case DataFormat::prompt_completion: {
      if (!j.contains("prompt") || !j.contains("completion")) {
        why = fmt::format("'{}' without '{}', expected both", j.contains("prompt") ? "prompt" : "completion",
                          j.contains("prompt") ? "completion" : "prompt");
        return std::nullopt;
      }
      const json &p = j["prompt"], &c = j["completion"];
      if (p.is_string() && c.is_string()) {
        r.prompt_text = p.get<std::string>();
        r.completion_text = c.get<std::string>();
      } else if (p.is_array() && c.is_array()) {
        r.conversational = true;
        if (!parse_messages(p, "prompt", r.prompt, why) || !parse_messages(c, "completion", r.completion, why))
          return std::nullopt;
      } else {
        why = fmt::format("'prompt' is {} and 'completion' is {}, expected two strings or two message lists", type_of(p),
                          type_of(c));
        return std::nullopt;
      }
      break;
    }
  }
  return r;
}

}  // namespace keel
