#include "data/chat_template.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <xxhash.h>

#include "common/errors.hpp"
#include "jinja/template.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace keel {
namespace {

using jinja::Value;

// The built-ins, as Jinja: the trained part of an assistant turn (content and end-of-turn token)
// is a {% generation %} block.
struct Builtin {
  const char *name, *source;
};
const Builtin kBuiltins[] = {
    // Qwen's ChatML without a default system prompt.
    {"chatml",
     "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' }}{% if m.role == 'assistant' %}{% generation %}"
     "{{ m.content }}<|im_end|>{% endgeneration %}{% else %}{{ m.content }}<|im_end|>{% endif %}{{ '\\n' }}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
    // Meta-Llama-3-Instruct's: BOS first, contents trimmed.
    {"llama3",
     "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' }}"
     "{% if m.role == 'assistant' %}{% generation %}{{ m.content | trim }}<|eot_id|>{% endgeneration %}"
     "{% else %}{{ m.content | trim }}<|eot_id|>{% endif %}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"},
    // Mistral-Instruct's: a system message goes before the next user message.
    {"mistral",
     "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] "
     "{% if not loop.first and messages[loop.index0 - 1].role == 'system' %}"
     "{{ messages[loop.index0 - 1].content + '\\n\\n' }}{% endif %}{{ m.content }} [/INST]"
     "{% elif m.role == 'assistant' %}{% generation %}{{ m.content }}{{ eos_token }}{% endgeneration %}{% endif %}"
     "{% endfor %}"},
    // No markers: each message on its own line, an assistant turn ends with EOS.
    {"plain",
     "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{{ eos_token }}"
     "{% endgeneration %}{% if not loop.last %}{{ '\\n' }}{% endif %}{% else %}{{ m.content + '\\n' }}{% endif %}"
     "{% endfor %}"},
};

std::string read_text(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(fmt::format("chat template {}: no such file or not readable", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One message as transformers hands it to the template: keys whose value is null dropped, the
// reasoning aliased under `thinking` and `reasoning_content`.
Value message_value(const Message &m) {
  Value v = Value::make_dict();
  if (m.fields.is_object()) {
    for (auto it = m.fields.begin(); it != m.fields.end(); ++it)
      if (!it->is_null()) v.obj->items.emplace_back(it.key(), Value::from_json(*it));
  } else {
    v.obj->set("role", Value::string(m.role));
    v.obj->set("content", Value::string(m.content));
  }
  for (const char *k : {"reasoning_content", "thinking", "reasoning"}) {
    const Value *r = v.obj->find(k);
    if (!r || r->is_none()) continue;
    Value reasoning = *r;
    Value out = Value::make_dict();
    out.obj->set("thinking", reasoning);
    for (auto &kv : v.obj->items) out.obj->set(kv.first, kv.second);
    out.obj->set("reasoning_content", reasoning);
    return out;
  }
  return v;
}

}  // namespace

struct ChatTemplate::Impl {
  jinja::Template tmpl;
  Value base;  // special tokens, then kwargs
  std::string name, fingerprint;

  // Renders messages[0..count) with the context apply_chat_template builds.
  jinja::Rendered render(const jinja::List &messages, size_t count, bool add_generation_prompt,
                         const ChatExtras &extras) const {
    Value ctx = Value::make_dict();
    ctx.obj->items = base.obj->items;
    ctx.obj->set("messages", Value::make_list(jinja::List(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(count))));
    ctx.obj->set("tools", extras.tools.is_null() ? Value::none() : Value::from_json(extras.tools));
    ctx.obj->set("documents", extras.documents.is_null() ? Value::none() : Value::from_json(extras.documents));
    ctx.obj->set("add_generation_prompt", Value::boolean(add_generation_prompt));
    for (const auto &kv : base.obj->items)  // kwargs win over the defaults above, as in transformers
      if (kv.first == "tools" || kv.first == "documents" || kv.first == "add_generation_prompt") ctx.obj->set(kv.first, kv.second);
    try {
      return tmpl.render(ctx);
    } catch (const jinja::Error &e) {
      if (e.raised) throw UserError(fmt::format("chat template {} raised at line {}, column {}: {}", name, e.line, e.column, e.what()));
      throw UserError(fmt::format("chat template {}, line {}, column {}: {}", name, e.line, e.column, e.what()));
    }
  }
};

ChatTemplate ChatTemplate::resolve(std::string_view name_in, const Tokenizer &tok, const nlohmann::json &kwargs,
                                   std::string_view template_name) {
  ChatTemplate t;
  const std::string n(name_in);
  std::string source, origin;
  for (const Builtin &b : kBuiltins)
    if (n == b.name) {
      source = b.source;
      origin = b.name;
    }
  if (origin.empty()) {
    if (n == "auto") {
      source = tok.chat_template(template_name);
      if (source.empty()) {
        if (template_name != "default" && !tok.chat_templates().empty()) {
          std::string names;
          for (const auto &kv : tok.chat_templates()) names += (names.empty() ? "" : ", ") + kv.first;
          throw UserError(fmt::format("[model] chat_template_name = \"{}\": the tokenizer has no such template "
                                      "(it has {})",
                                      template_name, names));
        }
        return t;  // unresolved: rendering says why
      }
      origin = tok.chat_template_file();
      if (template_name != "default") origin += fmt::format(" (template '{}')", template_name);
    } else if (n.size() > 6 && n.compare(n.size() - 6, 6, ".jinja") == 0) {
      source = read_text(n);
      origin = n;
    } else {
      throw UserError(fmt::format("unknown chat template '{}', expected auto, a .jinja file, chatml, llama3, mistral or plain", n));
    }
  }
  auto impl = std::make_shared<Impl>();
  try {
    impl->tmpl = jinja::Template::parse(source);
  } catch (const jinja::Error &e) {
    throw UserError(fmt::format("chat template {}, line {}, column {}: {}", origin, e.line, e.column, e.what()));
  }
  impl->name = origin;
  impl->base = Value::make_dict();
  for (const auto &[k, v] : tok.special_tokens()) impl->base.obj->set(k, Value::string(v));
  if (kwargs.is_object())
    for (auto it = kwargs.begin(); it != kwargs.end(); ++it) impl->base.obj->set(it.key(), Value::from_json(*it));
  std::string key = source + '\0' + (kwargs.is_null() ? std::string() : kwargs.dump());
  for (const auto &[k, v] : tok.special_tokens()) key += '\0' + k + '=' + v;
  XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  impl->fingerprint = fmt::format("{}-{:016x}{:016x}", origin, h.high64, h.low64);
  t.impl_ = std::move(impl);
  return t;
}

bool ChatTemplate::resolved() const { return impl_ != nullptr; }

const std::string &ChatTemplate::name() const {
  static const std::string none = "none";
  return impl_ ? impl_->name : none;
}

const std::string &ChatTemplate::fingerprint() const { return impl_ ? impl_->fingerprint : name(); }

const char *ChatTemplate::mask_method() const {
  return impl_ && impl_->tmpl.has_generation() ? "{% generation %} blocks" : "rendering the conversation prefix by prefix";
}

ChatTemplate::Rendered ChatTemplate::render(const std::vector<Message> &messages, bool add_generation_prompt,
                                            const ChatExtras &extras, bool with_spans) const {
  if (!impl_)
    throw UserError("the model has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json); "
                    "set [model] chat_template to a .jinja file or to chatml, llama3, mistral or plain");
  jinja::List msgs;
  msgs.reserve(messages.size());
  std::vector<int> assistants;
  for (size_t i = 0; i < messages.size(); ++i) {
    msgs.push_back(message_value(messages[i]));
    if (messages[i].role == "assistant") assistants.push_back(static_cast<int>(i));
  }
  jinja::Rendered full = impl_->render(msgs, msgs.size(), add_generation_prompt, extras);
  Rendered out{std::move(full.text), {}};
  if (!with_spans) return out;
  if (impl_->tmpl.has_generation()) {
    // The k-th block is the k-th assistant message's when the counts agree.
    const bool matched = full.generation.size() == assistants.size();
    for (size_t k = 0; k < full.generation.size(); ++k) {
      auto [b, e] = full.generation[k];
      if (e > b) out.trained.push_back({b, e, matched ? assistants[k] : -1});
    }
    return out;
  }
  // No generation blocks. An assistant message's span is what rendering it adds after the prompt
  // that precedes it (the conversation up to it, with the generation prompt), where the template
  // renders the conversation prefix by prefix: the prompt may differ from the longer rendering in
  // trailing whitespace only, and the span ends before the whitespace that follows the turn.
  // Templates that render the last turn differently from earlier ones (Qwen 3's think blocks,
  // dates, tool preambles) break that; for such a message the span is its content, found in the
  // whole rendering after the previous span, through the end-of-turn text the template writes
  // after it.
  auto rstrip = [](const std::string &s) {
    size_t e = s.size();
    while (e > 0 && (s[e - 1] == '\n' || s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
    return e;
  };
  size_t cursor = 0;
  for (int i : assistants) {
    std::string prompt = impl_->render(msgs, static_cast<size_t>(i), true, extras).text;
    std::string upto = impl_->render(msgs, static_cast<size_t>(i) + 1, false, extras).text;
    const size_t p = rstrip(prompt), u = rstrip(upto);
    if (upto.compare(0, p, prompt, 0, p) == 0 && out.text.compare(0, u, upto, 0, u) == 0) {
      size_t begin = p;
      while (begin < prompt.size() && begin < upto.size() && prompt[begin] == upto[begin]) ++begin;
      if (u > begin) out.trained.push_back({begin, u, i});
      cursor = std::max(cursor, u);
      continue;
    }
    std::string content(utf8::trim(messages[static_cast<size_t>(i)].content));
    if (content.empty()) continue;  // nothing of it to find: an empty turn trains nothing here
    size_t in_upto = upto.rfind(content);
    size_t at = out.text.find(content, cursor);
    if (in_upto == std::string::npos || at == std::string::npos) {
      // Templates that drop an earlier turn's reasoning keep what follows its </think>.
      size_t think = content.rfind("</think>");
      if (think != std::string::npos) {
        content = std::string(utf8::trim(std::string_view(content).substr(think + 8)));
        in_upto = content.empty() ? std::string::npos : upto.rfind(content);
        at = content.empty() ? std::string::npos : out.text.find(content, cursor);
      }
    }
    if (in_upto == std::string::npos || at == std::string::npos)
      throw UserError(fmt::format(
          "chat template {} renders messages[{}] differently alone and in the whole conversation, and its content "
          "cannot be found in the rendering, so its assistant tokens cannot be found; use a template with "
          "{{% generation %}} blocks, or train_on = \"all\"",
          impl_->name, i));
    std::string eot = upto.substr(in_upto + content.size(), u > in_upto + content.size() ? u - in_upto - content.size() : 0);
    size_t end = at + content.size();
    if (!eot.empty() && out.text.compare(end, eot.size(), eot) == 0) end += eot.size();
    out.trained.push_back({at, end, i});
    cursor = end;
  }
  return out;
}

std::string ChatTemplate::generation_prompt(const std::vector<Message> &messages, const ChatExtras &extras) const {
  return render(messages, true, extras, false).text;
}

std::string ChatTemplate::generation_prompt(std::string_view user_text) const {
  return generation_prompt(std::vector<Message>{{"user", std::string(user_text), nullptr}});
}

}  // namespace keel
