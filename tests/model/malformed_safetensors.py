"""Malformed and malicious safetensors files: each must give exit 2 and a clear message, never a
crash or an out-of-bounds read. The valid base is a tiny model keel itself writes.

usage: malformed_safetensors.py KEEL WORKDIR
"""
import json
import os
import shutil
import struct
import subprocess
import sys

KEEL, WORK = sys.argv[1], sys.argv[2]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=32, hidden_size=16,
           intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
           max_position_embeddings=64, tie_word_embeddings=True, eos_token_id=2)
with open(os.path.join(WORK, "config.json"), "w") as f:
    json.dump(cfg, f)
base = os.path.join(WORK, "base")
subprocess.run([KEEL, "init-model", "--config", os.path.join(WORK, "config.json"), "--out", base], check=True,
               capture_output=True)
raw = open(os.path.join(base, "model.safetensors"), "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
with open(os.path.join(WORK, "ids.jsonl"), "w") as f:
    f.write('{"ids": [1, 2, 3]}\n')


def pack(h, d=None, length=None):
    hb = json.dumps(h).encode()
    return struct.pack("<Q", len(hb) if length is None else length) + hb + (data if d is None else d)


def edit(fn):
    h = json.loads(json.dumps(header))
    fn(h)
    return pack(h)


emb = "model.embed_tokens.weight"
q = "model.layers.0.self_attn.q_proj.weight"
cases = {
    "empty file": (b"", "truncated"),
    "truncated header length": (raw[:5], "truncated"),
    "huge header length": (struct.pack("<Q", 1 << 40) + raw[8:], "exceeds the 100 MB limit"),
    "header past end of file": (struct.pack("<Q", len(raw)) + raw[8:], "runs past the end of the file"),
    "header not JSON": (struct.pack("<Q", 10) + b"{not json}" + data, "not valid JSON"),
    "header not an object": (pack([1, 2, 3]), "not a JSON object"),
    "truncated data": (raw[:len(raw) - 100], "run past the end of the data"),
    "offsets past the end": (edit(lambda h: h[emb].__setitem__("data_offsets", [0, len(data) + 4096])), "run past the end"),
    "overlapping tensors": (edit(lambda h: h[q].__setitem__(
        "data_offsets", [h[emb]["data_offsets"][0] + 512, h[emb]["data_offsets"][0] + 512 + 1024])), "overlaps"),
    "wrong byte size for shape": (edit(lambda h: h[emb].__setitem__("shape", [32, 17])), "bytes but its shape and dtype need"),
    "unsupported dtype": (edit(lambda h: h[emb].__setitem__("dtype", "I64")), "dtype I64 is not supported"),
    "negative dimension": (edit(lambda h: h[emb].__setitem__("shape", [-32, 16])), "negative or non-integer"),
    "offsets reversed": (edit(lambda h: h[emb].__setitem__("data_offsets", [100, 50])), "begin after they end"),
    "missing tensor": (edit(lambda h: h.pop(q)), f"tensor '{q}' is missing"),
    "wrong shape": (None, "has shape [16, 32], config.json implies [32, 16]"),
}


def wrong_shape():
    # A real, self-consistent file whose embedding is transposed: valid safetensors, wrong model.
    h = json.loads(json.dumps(header))
    h[emb]["shape"] = [16, 32]
    return pack(h)


failures = 0
for name, (blob, expect) in cases.items():
    d = os.path.join(WORK, name.replace(" ", "_"))
    shutil.copytree(base, d)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(wrong_shape() if blob is None else blob)
    r = subprocess.run([KEEL, "perplexity", "--model", d, "--data", os.path.join(WORK, "ids.jsonl"), "--device", "cpu"],
                       capture_output=True, text=True)
    lines = [l for l in r.stderr.splitlines() if l.startswith("keel: ")]
    ok = r.returncode == 2 and len(lines) == 1 and expect in lines[0]
    failures += not ok
    print(f"{'ok' if ok else 'FAIL'}: {name}: exit {r.returncode}: {r.stderr.strip()[:200]}")
print(f"{len(cases) - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
