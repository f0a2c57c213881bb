#include "data/example.hpp"

#include <algorithm>

#include "tokenizer/tokenizer.hpp"

namespace keel {
namespace {

// Encodes a rendered conversation and labels the tokens that overlap a trained byte span, as
// transformers' return_assistant_tokens_mask does (from the token holding the first character
// to the token holding the last). all: every token; only_message >= 0: that message's spans only.
Example encode_rendered(const ChatTemplate::Rendered &r, const Tokenizer &tok, bool all, int only_message) {
  std::vector<std::pair<size_t, size_t>> spans;
  if (all) spans.push_back({0, r.text.size()});
  else
    for (const auto &s : r.trained)
      if (only_message < 0 || s.message == only_message || (s.message < 0 && &s == &r.trained.back()))
        spans.push_back({s.begin, s.end});
  Encoding enc = tok.encode_with_offsets(r.text, false);
  Example ex;
  ex.ids = std::move(enc.ids);
  ex.labels.assign(ex.ids.size(), kIgnoreLabel);
  size_t k = 0;
  for (size_t i = 0; i < ex.ids.size(); ++i) {
    auto [a, b] = enc.offsets[i];
    while (k < spans.size() && spans[k].second <= a) ++k;
    bool hit = false;
    for (size_t q = k; q < spans.size() && spans[q].first < std::max<size_t>(b, a + 1); ++q)
      if (spans[q].second > a) hit = true;
    if (hit) ex.labels[i] = ex.ids[i];
  }
  return ex;
}

// prefix + ids + suffix, then EOS unless it is already last (as TRL appends eos_token to text).
std::vector<int32_t> with_specials(std::vector<int32_t> ids, const Tokenizer &tok) {
  std::vector<int32_t> out(tok.special_prefix());
  out.insert(out.end(), ids.begin(), ids.end());
  out.insert(out.end(), tok.special_suffix().begin(), tok.special_suffix().end());
  if (tok.eos_id && (out.empty() || out.back() != *tok.eos_id)) out.push_back(*tok.eos_id);
  return out;
}

}  // namespace

BuiltExample build_example(const Record &r, TrainOn on, const Tokenizer &tok, const ChatTemplate &tmpl) {
  BuiltExample b;
  switch (r.format) {
    case DataFormat::messages: {
      int last = -1;
      for (size_t i = 0; i < r.messages.size(); ++i)
        if (r.messages[i].role == "assistant") last = static_cast<int>(i);
      if (last < 0 && on != TrainOn::all) {
        b.why = "no assistant message, expected at least one to train on";
        return b;
      }
      b.example = encode_rendered(tmpl.render(r.messages, false, r.extras, on != TrainOn::all), tok, on == TrainOn::all,
                                  on == TrainOn::completion ? last : -1);
      std::vector<Message> before(r.messages.begin(), r.messages.begin() + (last < 0 ? r.messages.size() : last));
      b.prompt = tmpl.generation_prompt(before, r.extras);
      break;
    }
    case DataFormat::prompt_completion:
      if (r.conversational) {
        std::vector<Message> full = r.prompt;
        full.insert(full.end(), r.completion.begin(), r.completion.end());
        b.prompt = tmpl.generation_prompt(r.prompt, r.extras);
        if (on == TrainOn::completion) {  // TRL: everything after the prompt's tokens (with its assistant header)
          size_t n_prompt = tok.encode(b.prompt, false).size();
          b.example.ids = tok.encode(tmpl.render(full, false, r.extras, false).text, false);
          b.example.labels = b.example.ids;
          for (size_t i = 0; i < std::min(n_prompt, b.example.labels.size()); ++i) b.example.labels[i] = kIgnoreLabel;
        } else {
          b.example = encode_rendered(tmpl.render(full, false, r.extras, on != TrainOn::all), tok, on == TrainOn::all, -1);
        }
      } else {
        b.prompt = r.prompt_text;
        b.example.ids = with_specials(tok.encode(r.prompt_text + r.completion_text, false), tok);
        b.example.labels = b.example.ids;
        if (on == TrainOn::completion) {
          size_t n_prompt = tok.special_prefix().size() + tok.encode(r.prompt_text, false).size();
          for (size_t i = 0; i < std::min(n_prompt, b.example.labels.size()); ++i) b.example.labels[i] = kIgnoreLabel;
        }
      }
      break;
    case DataFormat::text:
      b.example.ids = with_specials(tok.encode(r.text, false), tok);
      b.example.labels = b.example.ids;
      break;
  }
  return b;
}

}  // namespace keel
