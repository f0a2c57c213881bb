"""Activation checkpointing end to end (issue 19): the same losses step by step as without it (the
gradients are checked to 1e-6 in tests/unit/test_model.cpp), and a lower peak memory per step
(metrics.jsonl peak_rss_mb) on a model whose activations dominate its memory.

usage: activation_checkpointing.py KEEL WORKDIR
"""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from e2e import Checks, fresh_workdir  # noqa: E402

KEEL, WORK = sys.argv[1], sys.argv[2]
fresh_workdir(WORK)
json.dump({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 288, "hidden_size": 128,
           "intermediate_size": 512, "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 4,
           "max_position_embeddings": 1024, "tie_word_embeddings": True}, open("config.json", "w"))
subprocess.run([KEEL, "init-model", "--config", "config.json", "--out", "model", "--tokenizer", "byte"], check=True,
               capture_output=True)
r = random.Random(0)
open("d.jsonl", "w").write("".join(json.dumps({"text": "".join(r.choice("abcdefgh ") for _ in range(511))}) + "\n"
                                   for _ in range(48)))
PIPELINE = """
[run]
name = "{name}"
steps = 4
batch_size = 12
seq_len = 512
log_every = 1
eval_every = 1000
checkpoint_every = 1000
activation_checkpointing = {ac}
[optim]
lr = 1e-3
[model]
path = "model"
[data.target]
path = "d.jsonl"
[eval]
num_prompts = 1
[[pipeline]]
plugin = "dropout"
"""


def run(name, ac):
    open(f"{name}.toml", "w").write(PIPELINE.format(name=name, ac=ac))
    p = subprocess.run([KEEL, "train", f"{name}.toml", "--no-progress"], capture_output=True, text=True)
    rows = [json.loads(l) for l in open(f"runs/{name}/metrics.jsonl") if '"loss"' in l]
    return p.returncode, rows


check = Checks()
rc1, plain = run("plain", "false")
rc2, ckpt = run("ckpt", "true")
check(rc1 == 0 and rc2 == 0 and len(plain) == len(ckpt) == 4, "both runs train 4 steps")
d = max(abs(a["loss"] - b["loss"]) for a, b in zip(plain, ckpt))
check(d <= 1e-5, f"the same loss at every step, dropout on (max |diff| {d:.2e})")
p_mb, c_mb = max(x["peak_rss_mb"] for x in plain[1:]), max(x["peak_rss_mb"] for x in ckpt[1:])
check(c_mb < p_mb - 50, f"peak memory per step falls: {p_mb:.0f} MB -> {c_mb:.0f} MB")
check.finish()
