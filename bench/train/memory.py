"""Peak memory of the loss at a Qwen-sized vocabulary (issue 5): a training step at vocab 151,936
and 4,096 tokens (16 x 256), with the chunked loss (keel's default) against all logits at once
(run.loss_chunk_rows = 4096, the full-logits way), measured side by side in one run as each keel
process's peak RSS. "Loss-related" peak = peak minus the peak of a run whose chunks hold a single
row (whose logits memory is negligible), so the model, optimizer and activations cancel out.
Also prints each run's median step time.

usage: python bench/train/memory.py build/bin/keel
"""
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile

keel = os.path.abspath(sys.argv[1])
work = tempfile.mkdtemp(prefix="keel-bench-mem-")
os.chdir(work)
json.dump({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936, "hidden_size": 64,
           "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
           "max_position_embeddings": 512, "tie_word_embeddings": True}, open("config.json", "w"))
subprocess.run([keel, "init-model", "--config", "config.json", "--out", "model", "--tokenizer", "byte"], check=True,
               capture_output=True)
r = random.Random(0)
with open("data.jsonl", "w") as f:
    for _ in range(16 * 4):
        f.write(json.dumps({"text": "".join(r.choice("abcdefgh ") for _ in range(255))}) + "\n")


def run(name, chunk):
    open(name + ".toml", "w").write(f"""
[run]
name = "{name}"
steps = 3
batch_size = 16
seq_len = 256
log_every = 1
eval_every = 100000
checkpoint_every = 100000
loss_chunk_rows = {chunk}
[optim]
lr = 1e-4
[model]
path = "model"
[data.target]
path = "data.jsonl"
[eval]
num_prompts = 1
""")
    p = subprocess.Popen([keel, "train", name + ".toml", "--no-progress"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    assert status == 0, name
    rows = [json.loads(l) for l in open(f"runs/{name}/metrics.jsonl") if '"tokens_per_s"' in l]
    secs = statistics.median(4096 / x["tokens_per_s"] for x in rows)
    return usage.ru_maxrss / 1024, secs  # MiB, s


base, _ = run("one_row", 1)
auto, t_auto = run("chunked", 0)
full, t_full = run("full", 4096)
print(f"vocab 151,936, 4,096 tokens per step; peak RSS: single-row chunks {base:.0f} MiB, "
      f"chunked (auto) {auto:.0f} MiB, full logits {full:.0f} MiB")
print(f"loss-related peak: chunked {auto - base:.0f} MiB, full {full - base:.0f} MiB, "
      f"ratio {(full - base) / max(1.0, auto - base):.1f}x lower (goal >= 4x)")
print(f"median step time: chunked {t_auto:.2f} s, full {t_full:.2f} s, ratio {t_auto / t_full:.2f} (goal <= 1.2)")
