#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from the real files the tests use: make_seeds.py OUT_DIR.

OUT_DIR/<target>/ gets small valid inputs (and a few near-misses); libFuzzer mutates from there.
Plain Python only (no torch): safetensors files are written byte by byte."""
import glob
import json
import os
import struct
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
shared = os.environ.get("KEEL_SHARED_DATA", os.path.join(os.path.dirname(root), "shared", "data"))
out = sys.argv[1]


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors):
    header, blob = {"__metadata__": {"format": "pt"}}, b""
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + nbytes]}
        blob += bytes(range(nbytes % 256)) + b"\0" * (nbytes - nbytes % 256)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


put("safetensors_header", "one", safetensors({"w": ("F32", [2, 3], 24)}))
put("safetensors_header", "three", safetensors({"a": ("BF16", [4], 8), "b": ("F16", [1, 2, 2], 8), "c": ("F32", [], 4)}))
put("safetensors_header", "empty", safetensors({}))
put("safetensors_header", "index", json.dumps({"metadata": {"total_size": 8},
    "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))

have_shared = os.path.isdir(shared)
if not have_shared:
    print(f"make_seeds: {shared} is absent: no seeds from the real tokenizer and templates")

# tokenizer.json: the real Qwen3 one cut to its first 300 tokens and the merges among them, with
# its normalizer, pre-tokenizer, decoder and added tokens; and variants of those parts.
tok = json.load(open(os.path.join(shared, "tokenizers/qwen3/tokenizer.json"))) if have_shared else None
if tok:
    vocab = {k: v for k, v in tok["model"]["vocab"].items() if v < 300}
    merges = []
    for m in tok["model"]["merges"]:
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        if a in vocab and b in vocab and a + b in vocab:
            merges.append([a, b])
    small = dict(tok)
    small["model"] = dict(tok["model"], vocab=vocab, merges=merges)
    small["added_tokens"] = [dict(t, id=300 + i) for i, t in enumerate(tok["added_tokens"][:4])]
    put("tokenizer_load", "qwen3_small.json", json.dumps(small))
    put("tokenizer_load", "no_normalizer.json", json.dumps(dict(small, normalizer=None)))
    put("tokenizer_load", "bytelevel_only.json", json.dumps(dict(small, pre_tokenizer={"type": "ByteLevel",
        "add_prefix_space": True, "trim_offsets": True, "use_regex": True})))
    put("tokenizer_load", "string_merges.json", json.dumps(dict(small, model=dict(small["model"],
        merges=[" ".join(m) for m in merges]))))

texts = ["Hello, world!", "  leading spaces\n\n\ttabs", "héllo wörld Ünïcödé", "日本語のテキスト",
         "emoji 👍🏽 family 👨‍👩‍👧", "<|im_start|>user\nhi<|im_end|>\n", "a" * 300, "1234567890 3.14159",
         "e\u0301 composed?", "\x00\x01\x7f"]
for i, t in enumerate(texts):
    put("tokenizer_encode", f"text{i}", t)
put("tokenizer_encode", "invalid_utf8", b"ab\xff\xfe\xc3(\xe2\x82")

for f in sorted(glob.glob(os.path.join(root, "configs/*.toml")) + glob.glob(os.path.join(root, "tests/cli/pipelines/*.toml"))):
    put("pipeline_config", os.path.basename(f), open(f, "rb").read())
put("pipeline_config", "with_set", open(os.path.join(root, "configs/demo.toml")).read() +
    "\n#--set\noptim.lr=3e-4\nrun.name=x\npipeline.0.enabled=false\n")

lines = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello."}]},
    {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4",
                   "reasoning_content": "add"}, {"role": "user", "content": "and 3+3?"},
                  {"role": "assistant", "content": "6"}]},
    {"prompt": "Say yes.", "completion": "Yes."},
    {"prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}]},
    {"text": "plain text to train on"},
    {"messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "",
                   "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": {"city": "Oslo"}}}]},
                  {"role": "tool", "content": "cold"}, {"role": "assistant", "content": "Cold."}],
     "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]},
]
put("jsonl_dataset", "lines.jsonl", "\n".join(json.dumps(l) for l in lines) + "\n")
for i, l in enumerate(lines):
    put("jsonl_dataset", f"line{i}.jsonl", json.dumps(l))
for f in glob.glob(os.path.join(root, "examples/smollm2/*.jsonl")):
    put("jsonl_dataset", os.path.basename(f), b"".join(open(f, "rb").readlines()[:20]))

for f in sorted(glob.glob(os.path.join(shared, "chat_templates/**/*.jinja"), recursive=True)):
    put("chat_template", os.path.relpath(f, shared).replace("/", "_"), open(f, "rb").read())
for i, l in enumerate(open(os.path.join(root, "tests/jinja/cases.jsonl"))):
    case = json.loads(l)
    if isinstance(case.get("template"), str):
        put("chat_template", f"case{i}.jinja", case["template"])

put("plugin_descriptor", "zeros", b"\0" * 64)
put("plugin_descriptor", "ones", b"\xff" * 256)
