// Built-in chat templates, chosen by name (chatml, llama3, mistral, plain) or detected from
// tokenizer_config.json's chat_template by their markers. A template renders a conversation as
// segments of text, each tagged with whether it is the trained part of an assistant turn (its
// content and its end-of-turn token), which is what the loss masks are built from.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace keel {

class Tokenizer;

struct Message {
  std::string role;  // system | user | assistant
  std::string content;
};

class ChatTemplate {
 public:
  enum class Kind { chatml, llama3, mistral, plain, unresolved };

  // name: chatml | llama3 | mistral | plain, or "auto" to detect it from the tokenizer's
  // chat_template. Throws UserError for an unknown name. A template "auto" cannot detect is
  // `unresolved`: it throws (with the reason) only when a conversation is rendered, so datasets of
  // plain text need no template.
  static ChatTemplate resolve(std::string_view name, const Tokenizer &tok);
  // Which built-in a Jinja chat template is, by its markers; "" when none.
  static std::string detect(std::string_view jinja);

  Kind kind() const { return kind_; }
  std::string name() const;

  struct Segment {
    std::string text;
    bool trained;  // part of an assistant turn that carries loss (content + end of turn)
    int message;   // index of the message it belongs to (-1: the generation prompt)
  };
  // Throws UserError when unresolved.
  std::vector<Segment> render(const std::vector<Message> &messages, bool add_generation_prompt) const;
  // The conversation so far followed by the assistant header: what a model sees before it answers.
  std::string generation_prompt(const std::vector<Message> &messages) const;
  std::string generation_prompt(std::string_view user_text) const;

 private:
  Kind kind_ = Kind::unresolved;
  std::string why_;  // for unresolved: the error to raise
  std::string bos_, eos_;
};

}  // namespace keel
