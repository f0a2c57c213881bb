"""Generation benchmarks (issue 3), measured side by side in one run on the same machine:

1. Decode cost per token with the KV cache is flat in context length: keel's time per decoded token
   at context 512 over context 64 (goal <= 1.5).
2. Throughput (tokens/s, batch 16, 128 new tokens, fp32, greedy) of `keel generate` against
   transformers' `generate` on the same random model (goal >= 1.5x).

usage: python bench/generate/bench.py build/bin/keel [--hidden 512 --layers 8]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import torch
import transformers

ap = argparse.ArgumentParser()
ap.add_argument("keel")
ap.add_argument("--hidden", type=int, default=512)
ap.add_argument("--layers", type=int, default=8)
ap.add_argument("--repeats", type=int, default=3)
args = ap.parse_args()
transformers.utils.logging.set_verbosity_error()
torch.manual_seed(0)
work = tempfile.mkdtemp(prefix="keel-bench-gen-")
cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=args.hidden, intermediate_size=args.hidden * 8 // 3,
                               num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64,
                               num_key_value_heads=max(1, args.hidden // 128), max_position_embeddings=1024,
                               eos_token_id=None, bos_token_id=None)
model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
model.save_pretrained(work)
print(f"model: Llama hidden {args.hidden}, {args.layers} layers, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
      f"parameters, fp32, {torch.get_num_threads()} threads")


def keel(prompts, new):
    best = None
    for _ in range(args.repeats):
        r = subprocess.run([args.keel, "generate", "--model", work, "--device", "cpu", "--temperature", "0",
                            "--max-new-tokens", str(new), "--prompt-ids", json.dumps(prompts)],
                           capture_output=True, text=True, check=True)
        t = json.loads(r.stderr.strip().splitlines()[-1])
        if best is None or t["prefill_seconds"] + t["decode_seconds"] < best["prefill_seconds"] + best["decode_seconds"]:
            best = t
    return best


ids = lambda n: [int(x) for x in torch.randint(0, 32000, (n,))]
# 1. flat decode cost
short, long_ = keel([ids(64)], 64), keel([ids(512)], 64)
per_short = short["decode_seconds"] / short["decode_steps"]
per_long = long_["decode_seconds"] / long_["decode_steps"]
print(f"decode per token: context 64 {per_short * 1e3:.2f} ms, context 512 {per_long * 1e3:.2f} ms, "
      f"ratio {per_long / per_short:.2f} (goal <= 1.5)")

# 2. throughput against transformers
batch = [ids(32) for _ in range(16)]
k = keel(batch, 128)
keel_tps = 16 * 128 / (k["prefill_seconds"] + k["decode_seconds"])
hf_best = 1e9
with torch.no_grad():
    x = torch.tensor(batch)
    for _ in range(args.repeats):
        t = time.perf_counter()
        out = model.generate(x, max_new_tokens=128, min_new_tokens=128, do_sample=False, pad_token_id=0)
        hf_best = min(hf_best, time.perf_counter() - t)
assert out.shape[1] == 32 + 128
hf_tps = 16 * 128 / hf_best
print(f"throughput, batch 16 x 128 new tokens: keel {keel_tps:.0f} tok/s, transformers {hf_tps:.0f} tok/s, "
      f"ratio {keel_tps / hf_tps:.2f}x (goal >= 1.5x)")
