"""entropy with source = "teacher_forced" (issue 7): the mean next-token entropy over the label
positions of the last training batch, with the weights of that step in evaluation mode. Checked
against transformers on the checkpoint of the same step: every row of the batch is the same
example, so the batch mean is that example's mean over its trained positions.

usage: teacher_forced_entropy.py KEEL WORKDIR
"""
import json
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from e2e import Checks, fresh_workdir, tiny_model  # noqa: E402

KEEL, WORK = sys.argv[1], sys.argv[2]
fresh_workdir(WORK)
tiny_model(KEEL, seed=3)
example = {"messages": [{"role": "user", "content": "What does keel mean?"},
                        {"role": "assistant", "content": "The bottom timber of a ship's hull."}]}
open("one.jsonl", "w").write(json.dumps(example) + "\n")
open("probe.jsonl", "w").write('{"prompt": "What does hull mean?"}\n')
open("p.toml", "w").write("""
[run]
name = "tf"
steps = 3
batch_size = 4
seq_len = 128
eval_every = 3
checkpoint_every = 3
log_every = 1
[optim]
lr = 1e-2
[model]
path = "model"
chat_template = "chatml"
[data.target]
path = "one.jsonl"
[eval]
prompts = "probe.jsonl"
max_new_tokens = 4
[[pipeline]]
plugin = "dropout"                 # training forwards use dropout; the measurement must not
[[pipeline]]
plugin = "entropy"
source = "teacher_forced"
""")
check = Checks()


p = subprocess.run([KEEL, "train", "p.toml", "--no-progress"], capture_output=True, text=True)
check(p.returncode == 0, f"training runs (exit {p.returncode}) {p.stderr[-400:] if p.returncode else ''}")
rows = [json.loads(l) for l in open("runs/tf/metrics.jsonl")]
evals = {r["step"]: r for r in rows if r.get("eval")}
check(0 in evals and "entropy" not in evals[0], "no value at step 0: no training batch yet")
check("no training batch here" in p.stderr, "and the plugin says why")
got = evals.get(3, {}).get("entropy")

# The reference: transformers on the step-3 checkpoint, the example's ids and labels from keel's loader.
ex = json.loads(subprocess.run([KEEL, "tokenize", "--tokenizer", "model", "--dataset", "one.jsonl", "--template", "chatml",
                                "--seq-len", "128"], capture_output=True, text=True, check=True).stdout.splitlines()[0])
model = AutoModelForCausalLM.from_pretrained("runs/tf/checkpoints/step-000003", torch_dtype=torch.float32).eval()
with torch.no_grad():
    logits = model(torch.tensor([ex["ids"]])).logits[0]
lp = torch.log_softmax(logits.double(), -1)
ent = -(lp.exp() * lp).sum(-1)
pos = [i for i in range(len(ex["ids"]) - 1) if ex["labels"][i + 1] != -100]
want = ent[pos].mean().item()
check(got is not None and abs(got - want) <= 1e-4 * abs(want),
      f"step 3: keel {got} vs transformers {want:.6f} over {len(pos)} label positions")
check(evals.get(3, {}).get("entropy.baseline") == got, "the first measured value is the baseline")

# keel eval has no training batch: a warning, no value, exit 0.
p = subprocess.run([KEEL, "eval", "p.toml", "--checkpoint", "runs/tf/final"], capture_output=True, text=True)
out = json.loads(p.stdout) if p.returncode == 0 else {}
check(p.returncode == 0 and "entropy" not in out.get("metrics", {}), f"keel eval: exit {p.returncode}, no entropy value")

check.finish()
