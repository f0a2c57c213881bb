#include "data/chat_template.hpp"

#include <fmt/format.h>

#include "common/errors.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace keel {

std::string ChatTemplate::detect(std::string_view j) {
  if (j.find("<|im_start|>") != std::string_view::npos) return "chatml";
  if (j.find("<|start_header_id|>") != std::string_view::npos) return "llama3";
  // Llama 2 also uses [INST], but with <<SYS>> blocks and other spacing: not Mistral's.
  if (j.find("[INST]") != std::string_view::npos && j.find("<<SYS>>") == std::string_view::npos) return "mistral";
  return "";
}

ChatTemplate ChatTemplate::resolve(std::string_view name, const Tokenizer &tok) {
  ChatTemplate t;
  t.bos_ = tok.bos_token;
  t.eos_ = tok.eos_token;
  std::string n(name);
  if (n == "auto") {
    if (tok.chat_template().empty()) {
      t.why_ = "the tokenizer has no chat_template to detect a template from; set [model] chat_template to "
               "chatml, llama3, mistral or plain";
      return t;
    }
    n = detect(tok.chat_template());
    if (n.empty()) {
      t.why_ = "tokenizer_config.json's chat_template is none keel knows (chatml, llama3, mistral, plain); set "
               "[model] chat_template to the one that matches";
      return t;
    }
  }
  if (n == "chatml") t.kind_ = Kind::chatml;
  else if (n == "llama3") t.kind_ = Kind::llama3;
  else if (n == "mistral") t.kind_ = Kind::mistral;
  else if (n == "plain") t.kind_ = Kind::plain;
  else throw UserError(fmt::format("unknown chat template '{}', expected auto, chatml, llama3, mistral or plain", n));
  return t;
}

std::string ChatTemplate::name() const {
  switch (kind_) {
    case Kind::chatml: return "chatml";
    case Kind::llama3: return "llama3";
    case Kind::mistral: return "mistral";
    case Kind::plain: return "plain";
    default: return "unresolved";
  }
}

std::vector<ChatTemplate::Segment> ChatTemplate::render(const std::vector<Message> &msgs, bool gen) const {
  if (kind_ == Kind::unresolved) throw UserError(why_);
  std::vector<Segment> out;
  auto add = [&](std::string text, bool trained, int m) {
    if (text.empty()) return;
    if (!out.empty() && out.back().trained == trained && out.back().message == m) out.back().text += text;
    else out.push_back({std::move(text), trained, m});
  };
  for (size_t i = 0; i < msgs.size(); ++i) {
    const Message &m = msgs[i];
    const int mi = static_cast<int>(i);
    const bool asst = m.role == "assistant";
    switch (kind_) {
      case Kind::chatml:  // Qwen's: <|im_start|>role\ncontent<|im_end|>\n, no default system prompt
        add("<|im_start|>" + m.role + "\n", false, mi);
        add(m.content + "<|im_end|>", asst, mi);
        add("\n", false, mi);
        break;
      case Kind::llama3:  // Meta-Llama-3-Instruct's: content trimmed, BOS before the first message
        add((i == 0 ? bos_ : "") + "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n", false, mi);
        add(std::string(utf8::trim(m.content)) + "<|eot_id|>", asst, mi);
        break;
      case Kind::mistral:  // Mistral-Instruct's: a system message is put before the next user message
        if (i == 0) add(bos_, false, mi);
        if (m.role == "system") break;
        if (m.role == "user") {
          std::string sys = i > 0 && msgs[i - 1].role == "system" ? msgs[i - 1].content + "\n\n" : "";
          add("[INST] " + sys + m.content + " [/INST]", false, mi);
        } else {
          add(m.content + eos_, true, mi);
        }
        break;
      case Kind::plain:  // no markers: each message on its own line, an assistant turn ends with EOS
        if (asst) {
          add(m.content + eos_, true, mi);
          if (i + 1 < msgs.size()) add("\n", false, mi);
        } else {
          add(m.content + "\n", false, mi);
        }
        break;
      default: break;
    }
  }
  if (gen) {
    switch (kind_) {
      case Kind::chatml: add("<|im_start|>assistant\n", false, -1); break;
      case Kind::llama3: add((msgs.empty() ? bos_ : "") + "<|start_header_id|>assistant<|end_header_id|>\n\n", false, -1); break;
      case Kind::mistral: if (msgs.empty()) add(bos_, false, -1); break;
      default: break;
    }
  }
  return out;
}

std::string ChatTemplate::generation_prompt(const std::vector<Message> &messages) const {
  std::string s;
  for (const Segment &seg : render(messages, true)) s += seg.text;
  return s;
}

std::string ChatTemplate::generation_prompt(std::string_view user_text) const {
  return generation_prompt(std::vector<Message>{{"user", std::string(user_text)}});
}

}  // namespace keel
