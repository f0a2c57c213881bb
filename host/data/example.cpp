#include "data/example.hpp"

#include <algorithm>

#include "tokenizer/tokenizer.hpp"

namespace keel {
namespace {

// Encodes rendered segments as one text and labels the tokens that overlap a trained byte range,
// as transformers' return_assistant_tokens_mask does (from the token holding the first character
// to the token holding the last).
Example encode_segments(const std::vector<ChatTemplate::Segment> &segs, const Tokenizer &tok, bool all,
                        int only_message) {
  std::string text;
  std::vector<std::pair<uint32_t, uint32_t>> spans;
  for (const auto &s : segs) {
    bool trained = all || (s.trained && (only_message < 0 || s.message == only_message));
    if (trained && !s.text.empty()) {
      uint32_t b = static_cast<uint32_t>(text.size());
      if (!spans.empty() && spans.back().second == b) spans.back().second += static_cast<uint32_t>(s.text.size());
      else spans.push_back({b, b + static_cast<uint32_t>(s.text.size())});
    }
    text += s.text;
  }
  Encoding enc = tok.encode_with_offsets(text, false);
  Example ex;
  ex.ids = std::move(enc.ids);
  ex.labels.assign(ex.ids.size(), kIgnoreLabel);
  size_t k = 0;
  for (size_t i = 0; i < ex.ids.size(); ++i) {
    auto [a, b] = enc.offsets[i];
    while (k < spans.size() && spans[k].second <= a) ++k;
    bool hit = false;
    for (size_t q = k; q < spans.size() && spans[q].first < std::max(b, a + 1); ++q)
      if (spans[q].second > a) hit = true;
    if (hit) ex.labels[i] = ex.ids[i];
  }
  return ex;
}

std::string join(const std::vector<ChatTemplate::Segment> &segs) {
  std::string s;
  for (const auto &x : segs) s += x.text;
  return s;
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
      b.example = encode_segments(tmpl.render(r.messages, false), tok, on == TrainOn::all,
                                  on == TrainOn::completion ? last : -1);
      std::vector<Message> before(r.messages.begin(), r.messages.begin() + (last < 0 ? r.messages.size() : last));
      b.prompt = tmpl.generation_prompt(before);
      break;
    }
    case DataFormat::prompt_completion:
      if (r.conversational) {
        std::vector<Message> full = r.prompt;
        full.insert(full.end(), r.completion.begin(), r.completion.end());
        b.prompt = tmpl.generation_prompt(r.prompt);
        if (on == TrainOn::completion) {  // TRL: everything after the prompt's tokens (with its assistant header)
          size_t n_prompt = tok.encode(b.prompt, false).size();
          b.example.ids = tok.encode(join(tmpl.render(full, false)), false);
          b.example.labels = b.example.ids;
          for (size_t i = 0; i < std::min(n_prompt, b.example.labels.size()); ++i) b.example.labels[i] = kIgnoreLabel;
        } else {
          b.example = encode_segments(tmpl.render(full, false), tok, on == TrainOn::all, -1);
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
