// Chat templates: the model's own Jinja template (chat_template.jinja or tokenizer_config.json's
// chat_template, as transformers finds it), a .jinja file, or a built-in by name (chatml, llama3,
// mistral, plain; themselves Jinja sources). Rendering goes through host/jinja with the context
// transformers' apply_chat_template gives (messages, tools, documents, add_generation_prompt, the
// tokenizer's special tokens, extra kwargs). It also says which bytes are the trained part of each
// assistant turn: a template's {% generation %} blocks where it has them, else the span each
// assistant message adds when the conversation is rendered prefix by prefix.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace keel {

class Tokenizer;

struct Message {
  std::string role;     // system | user | assistant | tool
  std::string content;  // the content when it is a string ("" otherwise)
  // The message object as the dataset gives it (tool_calls, reasoning_content, content parts...);
  // null: {role, content}.
  nlohmann::ordered_json fields;
};

// Tools and documents a conversation is rendered with (null: none, as transformers' default).
struct ChatExtras {
  nlohmann::ordered_json tools, documents;
};

class ChatTemplate {
 public:
  // name: "auto" (the model's own template: chat_template.jinja, else tokenizer_config.json's
  // chat_template, the entry `template_name` of a list), a path ending in .jinja, or a built-in
  // (chatml, llama3, mistral, plain). kwargs: extra variables for the template
  // ([model] template_kwargs). Throws UserError for an unknown name or a template that does not
  // parse (file, line, column). A model without a template under "auto" is `resolved() == false`:
  // rendering throws, with the reason, so datasets of plain text need none.
  static ChatTemplate resolve(std::string_view name, const Tokenizer &tok, const nlohmann::json &kwargs = {},
                              std::string_view template_name = "default");

  bool resolved() const;
  // "chatml", or where the model's template came from ("models/x/chat_template.jinja").
  const std::string &name() const;
  // A hash of the template's source and kwargs, for caches of rendered data.
  const std::string &fingerprint() const;
  // How trained spans are found: "generation blocks" or "prefix rendering".
  const char *mask_method() const;

  struct Span {
    size_t begin, end;  // bytes of the rendered text
    int message;        // the assistant message it belongs to (-1: not known)
  };
  struct Rendered {
    std::string text;
    std::vector<Span> trained;
  };
  // Throws UserError (template error, a template that does not preserve prefixes when spans are
  // asked for). with_spans = false skips finding them (what `train_on = all` needs).
  Rendered render(const std::vector<Message> &messages, bool add_generation_prompt, const ChatExtras &extras = {},
                  bool with_spans = true) const;
  // The conversation so far followed by the assistant header: what a model sees before it answers.
  std::string generation_prompt(const std::vector<Message> &messages, const ChatExtras &extras = {}) const;
  std::string generation_prompt(std::string_view user_text) const;

 private:
  struct Impl;
  ChatTemplate() = default;
  std::shared_ptr<const Impl> impl_;  // immutable once resolved, so copies share it
};

}  // namespace keel
