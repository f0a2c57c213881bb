"""End-to-end guarantees of `keel train` on a tiny model (issue 5):
exact resume after SIGTERM and after kill -9 inside a checkpoint write (weights bit-identical to an
uninterrupted run), non-finite steps skipped and counted and a stop after max_nonfinite in a row,
and TensorBoard scalars that read back equal to metrics.jsonl.

usage: train_e2e.py KEEL WORKDIR
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

from safetensors.numpy import load_file

KEEL, WORK = sys.argv[1], sys.argv[2]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
os.chdir(WORK)

CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 288, "hidden_size": 48,
          "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "max_position_embeddings": 256, "tie_word_embeddings": True}
json.dump(CONFIG, open("config.json", "w"))
subprocess.run([KEEL, "init-model", "--config", "config.json", "--out", "model", "--tokenizer", "byte", "--seed", "1"],
               check=True, capture_output=True)
r = random.Random(0)
with open("target.jsonl", "w") as f:
    for _ in range(200):
        a, b = r.randint(0, 99), r.randint(0, 99)
        f.write(json.dumps({"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                                         {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]}) + "\n")
PIPELINE = """
[run]
steps = 24
batch_size = 8
grad_accum = 2
seq_len = 64
checkpoint_every = 8
eval_every = 8
log_every = 1
max_nonfinite = 3
[optim]
lr = 3e-3
weight_decay = 0.01
[model]
path = "model"
chat_template = "chatml"
[data.target]
path = "target.jsonl"
[eval]
num_prompts = 8
max_new_tokens = 12
[[pipeline]]
plugin = "warmup_cosine"
warmup_fraction = 0.2
"""
open("p.toml", "w").write(PIPELINE)
failures = 0
passed = 0


def check(ok, what):
    global failures, passed
    failures += not ok
    passed += bool(ok)
    print(f"{'ok' if ok else 'FAIL'}: {what}", flush=True)


def train(name, *extra, env=None, background=False):
    cmd = [KEEL, "train", "p.toml", "--no-progress", "--set", f"run.name={name}", *extra]
    e = dict(os.environ, **(env or {}))
    if background:
        return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=e, capture_output=True, text=True)


def weights(path):
    return load_file(os.path.join(path, "model.safetensors"))


def same(a, b):
    return a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def rows(name):
    return [json.loads(l) for l in open(f"runs/{name}/metrics.jsonl")]


def wait_for(pred, timeout=300):
    t = time.time()
    while time.time() - t < timeout:
        if pred():
            return True
        time.sleep(0.05)
    return False


# 1. The reference: uninterrupted.
ref = train("ref")
check(ref.returncode == 0, f"uninterrupted run exits 0 ({ref.stderr[-300:] if ref.returncode else ''})")
W = weights("runs/ref/final")
check(same(W, weights("runs/ref/checkpoints/step-000024")), "final export equals the last checkpoint (no dropout)")
train_rows = [x for x in rows("ref") if "loss" in x]
check(len(train_rows) == 24 and all(k in train_rows[0] for k in ("lr", "grad_norm", "tokens_per_s")),
      "metrics.jsonl has loss, lr, grad_norm, tokens/s for every step")
check(train_rows[-1]["loss"] < train_rows[0]["loss"], f"loss falls ({train_rows[0]['loss']:.3f} -> {train_rows[-1]['loss']:.3f})")
check(sorted(os.listdir("runs/ref/samples")) == [f"step-{s:06d}.jsonl" for s in (0, 8, 16, 24)], "probe samples every eval_every")

# 2. SIGTERM: finish the step, checkpoint, exit 0; --resume ends bit-identical.
p = train("sigterm", background=True)
wait_for(lambda: os.path.exists("runs/sigterm/metrics.jsonl") and
         sum(1 for l in open("runs/sigterm/metrics.jsonl") if '"loss"' in l) >= 11)
p.send_signal(signal.SIGTERM)
out = p.communicate()[0]
ck = sorted(os.listdir("runs/sigterm/checkpoints"))
check(p.returncode == 0 and "saving a checkpoint" in out, f"SIGTERM: exit {p.returncode}, checkpoints {ck}")
res = train("sigterm", "--resume")
check(res.returncode == 0 and "resumed from" in res.stderr, "SIGTERM: --resume runs to the end")
check(same(W, weights("runs/sigterm/final")), "SIGTERM + --resume: final weights bit-identical to the uninterrupted run")

# 3. kill -9 in the middle of writing the step-16 checkpoint.
p = train("kill9", env={"KEEL_TEST_CHECKPOINT_PAUSE": "30"}, background=True)
wait_for(lambda: os.path.exists("runs/kill9/checkpoints/.tmp-step-000016/model.safetensors"))
time.sleep(0.3)
p.kill()
p.wait()
ck = sorted(os.listdir("runs/kill9/checkpoints"))
check(ck == [".tmp-step-000016", "step-000008"], f"kill -9 mid-write leaves the previous checkpoint whole: {ck}")
res = train("kill9", "--resume")
check(res.returncode == 0 and "resumed from" in res.stderr and "step 8" in res.stderr, "kill -9: --resume continues from step 8")
check(same(W, weights("runs/kill9/final")), "kill -9 + --resume: final weights bit-identical to the uninterrupted run")
check(not any(n.startswith(".tmp") for n in os.listdir("runs/kill9/checkpoints")), "the half-written folder is cleaned up")

# 4. A forced non-finite step is skipped, counted, and raises the nonfinite alarm.
nf = train("nonfinite", env={"KEEL_TEST_NONFINITE_STEPS": "5"})
rs = rows("nonfinite")
skipped = [x for x in rs if x.get("skipped") is True]
check(nf.returncode == 0 and len(skipped) == 1 and skipped[0]["step"] == 6, "a non-finite step is skipped")
check(any("nonfinite" in x.get("alarms", []) for x in rs), "it raises the nonfinite alarm")
check(rs[-1].get("summary") and rs[-1]["skipped"] == 1, "the summary counts it")
stop = train("nonfinite-stop", env={"KEEL_TEST_NONFINITE_STEPS": "4-99"})
check(stop.returncode == 1 and "3 non-finite steps in a row" in stop.stderr and
      os.path.exists("runs/nonfinite-stop/checkpoints/step-000007"),
      f"max_nonfinite in a row: saves and stops with exit 1 ({stop.returncode})")

# 5. TensorBoard reads back what metrics.jsonl says.
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator("runs/ref/tensorboard")
acc.Reload()
tb = {e.step: e.value for e in acc.Scalars("train/loss")}
js = {x["step"]: x["loss"] for x in train_rows}
check(tb.keys() == js.keys() and all(abs(tb[s] - js[s]) <= 1e-6 * max(1, abs(js[s])) for s in js),
      f"TensorBoard train/loss equals metrics.jsonl at {len(tb)} steps")
evals = {e.step for e in acc.Scalars("eval/temperature")}
check(evals == {0, 8, 16, 24}, "TensorBoard has the evaluation steps")

# 5b. Packing: several examples per row, each with its own positions and a block-diagonal mask,
# gives the same losses as one example per row (a leak between examples would change them).
for name, packing in (("unpacked", "false"), ("packed", "true")):
    train(name, "--set", "run.steps=3", "--set", "run.seq_len=256", "--set", f"run.packing={packing}")
lu = [x["loss"] for x in rows("unpacked") if "loss" in x]
lp = [x["loss"] for x in rows("packed") if "loss" in x]
ru = [x["rows"] for x in rows("unpacked") if "loss" in x]
rp = [x["rows"] for x in rows("packed") if "loss" in x]
check(all(u == 8 for u in ru) and all(p < u for p, u in zip(rp, ru)), f"packing runs fewer rows: {ru} vs {rp}")
check(len(lu) == 3 and all(abs(a - b) <= 1e-5 * abs(a) for a, b in zip(lu, lp)),
      f"packed rows give the unpacked losses: {lu} vs {lp}")

# 6. The dropout plugin: training differs from the reference, the export has no dropout and loads
# in transformers.
open("p_dropout.toml", "w").write(PIPELINE + '\n[[pipeline]]\nplugin = "dropout"\n')
dr = subprocess.run([KEEL, "train", "p_dropout.toml", "--no-progress", "--set", "run.name=dropout"], capture_output=True, text=True)
check(dr.returncode == 0 and not same(W, weights("runs/dropout/final")), "a run with dropout trains differently")
cfg = json.load(open("runs/dropout/final/config.json"))
check(cfg.get("attention_dropout", 0.0) == 0.0, "the exported config.json carries no dropout")
import torch
from transformers import AutoModelForCausalLM

hf = AutoModelForCausalLM.from_pretrained("runs/dropout/final").eval()
with torch.no_grad():
    x = torch.randint(3, 250, (1, 20))
    check(torch.equal(hf(x).logits, hf(x).logits) and hf.config.attention_dropout == 0.0,
          "the exported model loads in transformers with zero dropout")

print(f"{passed} passed, {failures} failed")
sys.exit(1 if failures else 0)
