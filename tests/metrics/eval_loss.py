"""[eval] data (issue 15): eval_loss is the mean loss per trained token of the held-out examples,
teacher-forced with the weights of that step in evaluation mode (no dropout). Checked against
transformers on the checkpoint of the same step, with the ids and labels of keel's own loader.

usage: eval_loss.py KEEL WORKDIR
"""
import json
import math
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from e2e import Checks, fresh_workdir, tiny_model  # noqa: E402

KEEL, WORK = sys.argv[1], sys.argv[2]
fresh_workdir(WORK)
tiny_model(KEEL, seed=5)
train = [{"messages": [{"role": "user", "content": "What does keel mean?"},
                       {"role": "assistant", "content": "The bottom timber of a ship's hull."}]}]
held = [{"messages": [{"role": "user", "content": "What does hull mean?"},
                      {"role": "assistant", "content": "The body of a ship."}]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "And mast?"},
                      {"role": "assistant", "content": "A tall pole that carries the sails of a ship."}]},
        {"prompt": [{"role": "user", "content": "Rudder?"}], "completion": [{"role": "assistant", "content": "It steers."}]}]
open("train.jsonl", "w").write("".join(json.dumps(x) + "\n" for x in train))
open("held.jsonl", "w").write("".join(json.dumps(x) + "\n" for x in held[:2]))
open("p.toml", "w").write("""
[run]
name = "el"
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
path = "train.jsonl"
[eval]
data = "held.jsonl"
[[pipeline]]
plugin = "dropout"                 # training forwards use dropout; the measurement must not
""")
check = Checks()

p = subprocess.run([KEEL, "train", "p.toml", "--no-progress"], capture_output=True, text=True)
check(p.returncode == 0, f"training runs (exit {p.returncode}) {p.stderr[-400:] if p.returncode else ''}")
rows = [json.loads(l) for l in open("runs/el/metrics.jsonl")]
evals = {r["step"]: r for r in rows if r.get("eval")}
check(0 in evals and 3 in evals, f"evaluations at steps 0 and 3 without probe prompts: {sorted(evals)}")


def reference(checkpoint):
    out = subprocess.run([KEEL, "tokenize", "--tokenizer", "model", "--dataset", "held.jsonl", "--template", "chatml",
                          "--seq-len", "128"], capture_output=True, text=True, check=True).stdout.splitlines()
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    total, count = 0.0, 0
    for line in out:
        ex = json.loads(line)
        with torch.no_grad():
            logits = model(torch.tensor([ex["ids"]])).logits[0].double()
        lp = torch.log_softmax(logits, -1)
        for i in range(len(ex["ids"]) - 1):
            if ex["labels"][i + 1] != -100:
                total -= lp[i, ex["ids"][i + 1]].item()
                count += 1
    return total / count


for step, ckpt in ((3, "runs/el/checkpoints/step-000003"), (0, "model")):
    got, want = evals.get(step, {}).get("eval_loss"), reference(ckpt)
    check(got is not None and abs(got - want) <= 1e-4 * abs(want), f"step {step}: eval_loss keel {got} vs transformers {want:.6f}")
    ppl = evals.get(step, {}).get("eval_loss.ppl")
    check(ppl is not None and abs(ppl - math.exp(want)) <= 1e-3 * math.exp(want), f"step {step}: eval_loss.ppl {ppl}")

# keel eval reports it too; a held-out file of another format is read as its own format.
open("held.jsonl", "w").write(json.dumps(held[2]) + "\n")
p = subprocess.run([KEEL, "eval", "p.toml", "--checkpoint", "runs/el/final"], capture_output=True, text=True)
out = json.loads(p.stdout) if p.returncode == 0 else {}
check(p.returncode == 0 and "eval_loss" in out.get("metrics", {}), f"keel eval: exit {p.returncode}, eval_loss in {out}")
open("held.jsonl", "w").write('{"messages": [{"role": "user", "content": "x"}]}\n')
p = subprocess.run([KEEL, "eval", "p.toml", "--checkpoint", "runs/el/final"], capture_output=True, text=True)
check(p.returncode == 2 and "held.jsonl:1: no assistant message" in p.stderr, f"a bad held-out line: exit {p.returncode}: {p.stderr[-200:]}")
check.finish()
