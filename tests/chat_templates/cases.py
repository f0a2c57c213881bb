"""Deterministic conversations for chat-template parity (keel's Jinja interpreter against transformers).

`cases(source)` gives the conversations for one template: a list of {"id", "messages"[, "tools"]}, every one
JSON-able and ending with an assistant message. Templates that mention tools (the word "tool" anywhere in
their source) also get the tool cases: a top-level `tools` list of JSON-schema functions and assistant
`tool_calls` in OpenAI's format followed by "tool" messages.

An assistant message with tool calls has content "" in one case and null (None) in the other:
transformers drops None-valued message keys before rendering.

Some cases are meant to make some templates raise (roles that do not alternate): parity then means keel
fails too (exit 2), not that it renders."""
import copy


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "The city, e.g. Paris or Москва"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_docs",
            "description": "Search the documentation.\nReturns at most `limit` hits.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 50},
                    "exact": {"type": "boolean"},
                    "filters": {
                        "type": "object",
                        "properties": {"lang": {"type": "array", "items": {"type": "string"}}},
                    },
                },
                "required": ["query"],
            },
        },
    },
]


def _call(call_id, name, arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _tool_result(call_id, name, content):
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}


SYSTEM = "You are a helpful assistant. Answer briefly."

BASE = [
    {"id": "single", "messages": [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ]},
    {"id": "system_single", "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Name a prime number above 10."},
        {"role": "assistant", "content": "11 is a prime number above 10."},
    ]},
    {"id": "multi2", "messages": [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hi! How can I help you today?"},
        {"role": "user", "content": "Tell me a joke about compilers."},
        {"role": "assistant", "content": "Why did the compiler break up with the parser? Too many unresolved references."},
    ]},
    {"id": "system_multi3", "messages": [
        {"role": "system", "content": "You are a terse math tutor."},
        {"role": "user", "content": "2 + 2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And times 3?"},
        {"role": "assistant", "content": "12"},
        {"role": "user", "content": "Square root of that?"},
        {"role": "assistant", "content": "About 3.464."},
    ]},
    {"id": "cyrillic", "messages": [
        {"role": "system", "content": "Ты — полезный ассистент."},
        {"role": "user", "content": "Как дела? Расскажи про Ёжика в тумане."},
        {"role": "assistant", "content": "Хорошо, спасибо! «Ёжик в тумане» — мультфильм Юрия Норштейна (1975)."},
    ]},
    {"id": "cjk_emoji", "messages": [
        {"role": "user", "content": "你好，世界！日本語もOK？한국어도? 👋🏽"},
        {"role": "assistant", "content": "是的 ✅ — はい、大丈夫です。네! 👨‍👩‍👧‍👦 🎉 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"},
        {"role": "user", "content": "🙂"},
        {"role": "assistant", "content": "😀"},
    ]},
    {"id": "whitespace_edges", "messages": [
        {"role": "system", "content": "\tBe nice. \n"},
        {"role": "user", "content": "  hi\n"},
        {"role": "assistant", "content": "\n hello there \n\n"},
        {"role": "user", "content": "\n\n  second   question  "},
        {"role": "assistant", "content": " answer with trailing spaces   "},
    ]},
    {"id": "multiline_code", "messages": [
        {"role": "user", "content": "Write hello world in C.\r\nKeep it short.\n\n\nThanks"},
        {"role": "assistant", "content": "```c\n#include <stdio.h>\n\nint main(void) {\n    printf(\"hello, world\\n\");\n"
                                          "    return 0;\n}\n```\n\nCompile with `cc hello.c`."},
    ]},
    {"id": "special_chars", "messages": [
        {"role": "user", "content": "Quote \"this\" and 'that'; a\\b\\n is not a newline. {{ not jinja }} {% raw %} <b>&amp;</b>"},
        {"role": "assistant", "content": "Done: \"this\", 'that', a\\b\\n, {{ not jinja }}, {% raw %}, <b>&amp;</b> # ~ ` $ %"},
    ]},
    {"id": "think_blocks", "messages": [
        {"role": "user", "content": "What is 17 * 3?"},
        {"role": "assistant", "content": "<think>\n17 * 3 = 51.\n</think>\n\n17 * 3 = 51."},
        {"role": "user", "content": "And 51 / 3?"},
        {"role": "assistant", "content": "<think>\nBack to 17.\n</think>\n\nIt is 17."},
    ]},
    {"id": "reasoning_field", "messages": [
        {"role": "user", "content": "Is 91 prime?"},
        {"role": "assistant", "content": "No, 91 = 7 * 13.", "reasoning_content": "Try 7: 7 * 13 = 91."},
    ]},
    {"id": "empty_assistant", "messages": [
        {"role": "user", "content": "Say nothing."},
        {"role": "assistant", "content": ""},
    ]},
    {"id": "roles_not_alternating", "messages": [
        {"role": "user", "content": "First question."},
        {"role": "user", "content": "Second question, before any answer."},
        {"role": "assistant", "content": "Both answered."},
    ]},
]

TOOL_CASES = [
    {"id": "tools_no_call", "tools": TOOLS, "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Just say hi, no tools needed."},
        {"role": "assistant", "content": "Hi!"},
    ]},
    {"id": "tool_call", "tools": TOOLS, "messages": [
        {"role": "user", "content": "What's the weather in Moscow?"},
        {"role": "assistant", "content": "",
         "tool_calls": [_call("call_0a1b2c3d4e", "get_weather", {"city": "Москва", "unit": "celsius"})]},
        _tool_result("call_0a1b2c3d4e", "get_weather", "{\"temperature\": -3, \"conditions\": \"snow\"}"),
        {"role": "assistant", "content": "It is -3 °C and snowing in Moscow."},
    ]},
    {"id": "tool_calls_parallel", "tools": TOOLS, "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Weather in Paris, and search the docs for 'jinja'."},
        {"role": "assistant", "content": None,  # OpenAI's form; transformers drops None-valued keys
         "tool_calls": [
             _call("call_9z8y7x6w5v", "get_weather", {"city": "Paris"}),
             _call("call_1q2w3e4r5t", "search_docs",
                   {"query": "jinja", "limit": 5, "exact": True, "filters": {"lang": ["en", "ru"]}}),
         ]},
        _tool_result("call_9z8y7x6w5v", "get_weather", "{\"temperature\": 18.5, \"conditions\": \"clear\"}"),
        _tool_result("call_1q2w3e4r5t", "search_docs", "[\"docs/data.md\", \"docs/jinja.md\"]"),
        {"role": "assistant", "content": "Paris: 18.5 °C, clear. Docs: docs/data.md and docs/jinja.md."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You're welcome."},
    ]},
]


def uses_tools(source):
    return "tool" in source


def cases(source):
    """The conversations for a template whose source is `source` (a str)."""
    out = copy.deepcopy(BASE)
    if uses_tools(source):
        out += copy.deepcopy(TOOL_CASES)
    ids = [c["id"] for c in out]
    assert len(ids) == len(set(ids)), ids
    for c in out:
        assert c["messages"][-1]["role"] == "assistant", c["id"]
    return out


def last_assistant_index(messages):
    return max(i for i, m in enumerate(messages) if m["role"] == "assistant")
