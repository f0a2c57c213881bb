// A chat template from untrusted bytes: parsed by keel's Jinja engine (refused with jinja::Error and
// a line and column) and, when it parses, rendered on a fixed conversation with tools. Rendering
// may refuse (jinja::Error); it must not crash, recurse without bound or run away in time or memory.
#include <nlohmann/json.hpp>

#include "fuzz_common.hpp"
#include "jinja/template.hpp"

static keel::jinja::Value *context = nullptr;

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  const nlohmann::json messages = nlohmann::json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi <b>there</b> \u00e9"},
    {"role": "assistant", "content": "Hello.", "tool_calls": [{"type": "function",
      "function": {"name": "get", "arguments": {"x": 1, "y": [true, null, 2.5]}}}]},
    {"role": "tool", "content": "{\"ok\": 1}"},
    {"role": "user", "content": [{"type": "text", "text": "and?"}]}])");
  const nlohmann::json tools = nlohmann::json::parse(R"([{"type": "function", "function": {"name": "get",
    "description": "d", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}])");
  context = new keel::jinja::Value(keel::jinja::Value::make_dict());
  context->obj->set("messages", keel::jinja::Value::from_json(messages));
  context->obj->set("tools", keel::jinja::Value::from_json(tools));
  context->obj->set("add_generation_prompt", keel::jinja::Value::boolean(true));
  context->obj->set("bos_token", keel::jinja::Value::string("<s>"));
  context->obj->set("eos_token", keel::jinja::Value::string("</s>"));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    const keel::jinja::Template t = keel::jinja::Template::parse(keel::fuzz::as_text(data, size));
    const keel::jinja::Rendered r = t.render(*context);
    for (const auto &[b, e] : r.generation)
      if (b > e || e > r.text.size()) std::abort();
  } catch (const keel::jinja::Error &) {
  }
  return 0;
}
