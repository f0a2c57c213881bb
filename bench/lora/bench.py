"""LoRA against full fine-tuning, and keel's LoRA against PEFT + transformers (issue 19), side by side
in one run: peak memory per step and tokens/s of a training step.

- keel full fine-tuning vs keel LoRA (rank 16 on every projection): peak RSS during a step (metrics
  row `peak_rss_mb`, the process's VmHWM reset at each step). Goal: >= 2.5x lower for the 0.5B shape.
- keel LoRA vs an eager PyTorch loop on transformers + PEFT with the same rank, alpha, targets,
  dropout, batch and AdamW: tokens/s, medians of the timed steps; the two take turns over --rounds
  rounds so a slow spell on a shared machine hits both. Goal: >= 1.1x.

Shapes: "smollm2" (SmolLM2-135M: hidden 576, 30 layers, vocab 49,152, tied) and "qwen0.5b"
(Qwen2.5-0.5B: hidden 896, 24 layers, 14/2 heads, vocab 151,936, tied, q/k/v biases), random weights,
byte-level texts of exactly --seq tokens. fp32, CPU.

usage: python bench/lora/bench.py build/bin/keel [--shapes smollm2,qwen0.5b] [--batch 4] [--seq 128]
                                  [--steps 4] [--rounds 2]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("keel")
ap.add_argument("--shapes", default="smollm2,qwen0.5b")
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--steps", type=int, default=4)
ap.add_argument("--rounds", type=int, default=2)
a = ap.parse_args()
a.keel = os.path.abspath(a.keel)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SHAPES = {
    "smollm2": {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 49152, "hidden_size": 576,
                "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "max_position_embeddings": 2048, "tie_word_embeddings": True, "rope_theta": 100000.0},
    "qwen0.5b": {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936, "hidden_size": 896,
                 "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
                 "max_position_embeddings": 2048, "tie_word_embeddings": True, "rope_theta": 1000000.0},
}

# The PEFT side runs in its own process, so its memory is its own.
PEFT_LOOP = r'''
import json, statistics, sys, time
import torch, transformers
from peft import LoraConfig, get_peft_model
steps, batch, seq = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
transformers.utils.logging.set_verbosity_error()
model = transformers.AutoModelForCausalLM.from_pretrained("model", torch_dtype=torch.float32)
model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=%s, task_type="CAUSAL_LM"))
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
rows = [json.loads(l) for l in open("ids.jsonl")]
times, peaks = [], []
for s in range(steps):
    x = torch.tensor(rows[s * batch:(s + 1) * batch])
    open("/proc/self/clear_refs", "w").write("5")
    t = time.perf_counter()
    loss = model(input_ids=x, labels=x).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad()
    times.append(time.perf_counter() - t)
    peaks.append(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024)
print(json.dumps({"tps": batch * seq / statistics.median(times[1:]), "peak_mb": max(peaks[1:])}))
''' % json.dumps(TARGETS)


def keel_run(name, lora):
    open(f"{name}.toml", "w").write(f"""
[run]
name = "{name}"
steps = {a.steps}
batch_size = {a.batch}
seq_len = {a.seq}
log_every = 1
eval_every = 100000
checkpoint_every = 100000
[optim]
lr = 1e-4
[model]
path = "model"
[data.target]
path = "data.jsonl"
[eval]
num_prompts = 1
""" + ('[[pipeline]]\nplugin = "lora"\nrank = 16\nalpha = 32\ndropout = 0.05\n' if lora else ""))
    shutil.rmtree(f"runs/{name}", ignore_errors=True)
    subprocess.run([a.keel, "train", f"{name}.toml", "--no-progress"], check=True, capture_output=True)
    rows = [json.loads(l) for l in open(f"runs/{name}/metrics.jsonl") if '"tokens_per_s"' in l]
    timed = [x for x in rows if x["step"] > 1]
    return statistics.median(x["tokens_per_s"] for x in timed), max(x["peak_rss_mb"] for x in timed)


def peft_run():
    out = subprocess.run([sys.executable, "-c", PEFT_LOOP, str(a.steps), str(a.batch), str(a.seq)], check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["tps"], r["peak_mb"]


import torch  # noqa: E402  (only for the thread count line)

print(f"batch {a.batch} x {a.seq} tokens, {a.steps} steps (first not timed), fp32 CPU, {torch.get_num_threads()} threads")
for shape in a.shapes.split(","):
    work = tempfile.mkdtemp(prefix=f"keel-bench-lora-{shape}-")
    os.chdir(work)
    json.dump(SHAPES[shape], open("config.json", "w"))
    subprocess.run([a.keel, "init-model", "--config", "config.json", "--out", "model", "--tokenizer", "byte"], check=True,
                   capture_output=True)
    r = random.Random(0)
    texts = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz   ") for _ in range(a.seq - 1)) for _ in range(a.batch * a.steps)]
    with open("data.jsonl", "w") as f, open("ids.jsonl", "w") as g:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
            g.write(json.dumps(list(t.encode()) + [256]) + "\n")  # the byte tokenizer's ids, EOS 256
    full_tps, full_mb = keel_run("full", lora=False)
    keel_tps, peft_tps, keel_mb, peft_mb = [], [], [], []
    for _ in range(a.rounds):
        k, km = keel_run("lora", lora=True)
        p, pm = peft_run()
        keel_tps.append(k)
        peft_tps.append(p)
        keel_mb.append(km)
        peft_mb.append(pm)
    k, p = statistics.median(keel_tps), statistics.median(peft_tps)
    print(f"{shape}: keel full FT {full_tps:.0f} tok/s, peak {full_mb:.0f} MB | keel LoRA {k:.0f} tok/s, peak "
          f"{max(keel_mb):.0f} MB | PEFT LoRA {p:.0f} tok/s, peak {max(peft_mb):.0f} MB")
    print(f"{shape}: peak memory full / LoRA {full_mb / max(keel_mb):.2f}x"
          f"{' (goal >= 2.5x)' if shape == 'qwen0.5b' else ''}; LoRA tokens/s keel / PEFT {k / p:.2f}x "
          f"(rounds: {', '.join(f'{x / y:.2f}' for x, y in zip(keel_tps, peft_tps))}; goal >= 1.1x)")
    os.chdir("/")
    shutil.rmtree(work, ignore_errors=True)
