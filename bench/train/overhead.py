"""Plugin overhead (issue 5): median step time of the full technique pipeline (metrics off) against
no plugins, same model, data and seed, side by side in one run. A second variant keeps every hook
but makes the techniques do no numeric work (dropout 0, label smoothing epsilon 0, NEFTune alpha 0),
separating what the plugin mechanism costs from what the techniques compute.

The three take turns over 3 rounds (a slow spell on a shared machine hits all of them); each
figure is the median of all timed steps of its variant.

usage: python bench/train/overhead.py build/bin/keel [--steps 30]
"""
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile

keel = os.path.abspath(sys.argv[1])
steps = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--steps" else 30
work = tempfile.mkdtemp(prefix="keel-bench-overhead-")
os.chdir(work)
json.dump({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 288, "hidden_size": 256,
           "intermediate_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
           "max_position_embeddings": 512}, open("config.json", "w"))
subprocess.run([keel, "init-model", "--config", "config.json", "--out", "model", "--tokenizer", "byte"], check=True,
               capture_output=True)
r = random.Random(0)
for name in ("target", "general"):
    with open(name + ".jsonl", "w") as f:
        for _ in range(400):
            f.write(json.dumps({"text": "".join(r.choice("abcdefgh ") for _ in range(255))}) + "\n")
BASE = f"""
[run]
steps = {steps}
batch_size = 8
seq_len = 256
log_every = 1
eval_every = 100000
checkpoint_every = 100000
[optim]
lr = 1e-4
[model]
path = "model"
[data.target]
path = "target.jsonl"
[data.general]
path = "general.jsonl"
[eval]
num_prompts = 1
"""
TECH = """
[[pipeline]]
plugin = "staged_lr"
[[pipeline]]
plugin = "warmup_cosine"
[[pipeline]]
plugin = "dropout"
{dropout}
[[pipeline]]
plugin = "label_smoothing"
epsilon = {eps}
[[pipeline]]
plugin = "data_mix"
sources = {{ target = 0.9, general = 0.1 }}
[[pipeline]]
plugin = "neftune"
alpha = {alpha}
"""


def step_times(name, text):
    open(name + ".toml", "w").write(f'[run]\nname = "{name}"\n' + text.replace("[run]\n", "", 1))
    shutil.rmtree(f"runs/{name}", ignore_errors=True)
    subprocess.run([keel, "train", name + ".toml", "--no-progress"], check=True, capture_output=True)
    rows = [json.loads(l) for l in open(f"runs/{name}/metrics.jsonl") if '"tokens_per_s"' in l]
    return [2048 / x["tokens_per_s"] for x in rows[3:]]


variants = {"none": BASE, "full": BASE + TECH.format(dropout="", eps=0.1, alpha=5),
            "hooks": BASE + TECH.format(dropout="embedding = 0.0\nattention = 0.0\nffn = 0.0", eps=0.0, alpha=0)}
times = {k: [] for k in variants}
for _ in range(3):
    for k, text in variants.items():
        times[k] += step_times(k, text)
none, full, hooks = (statistics.median(times[k]) for k in ("none", "full", "hooks"))
print(f"hidden 256, 4 layers, batch 8 x 256, {steps} steps x 3 rounds: median step time, no plugins {none * 1e3:.1f} ms, "
      f"full technique pipeline {full * 1e3:.1f} ms ({100 * (full / none - 1):+.1f}%), "
      f"same hooks doing no numeric work {hooks * 1e3:.1f} ms ({100 * (hooks / none - 1):+.1f}%; goal <= 2%)")
