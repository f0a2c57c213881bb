"""Forgetting and the best checkpoint (issue 19): [eval.NAME] held-out sets each give eval_loss.NAME;
[run] keep_best keeps the checkpoint where a metric was best, on a run whose loss goes down then up
(a gentle LR, then a destructive one); export_best makes final/ that model; the report plots the sets.

usage: keep_best.py KEEL WORKDIR
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from e2e import Checks, fresh_workdir, tiny_model  # noqa: E402

try:
    from safetensors.numpy import load_file
except ImportError as e:
    print(f"SKIP: {e}")
    sys.exit(77)

KEEL, WORK = sys.argv[1], sys.argv[2]
fresh_workdir(WORK)
tiny_model(KEEL, seed=4)
rows = [{"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"I say {i}, always {i}."}]}
        for i in range(24)]
open("task.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in rows[:16]))
open("task_heldout.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in rows[16:]))
open("general.jsonl", "w").write("".join(json.dumps({"text": f"The river {w} runs to the sea at dawn."}) + "\n"
                                         for w in ("north", "south", "east", "west")))
PIPELINE = """
[run]
name = "{name}"
steps = 10
batch_size = 4
seq_len = 64
checkpoint_every = 100
keep_last = 1
eval_every = 1
keep_best = "eval_loss.task"
export_best = {export_best}
[optim]
lr = 1.0
[model]
path = "model"
chat_template = "chatml"
[data.target]
path = "task.jsonl"
[eval.task]
data = "task_heldout.jsonl"
[eval.general]
data = "general.jsonl"
[[pipeline]]
plugin = "staged_lr"
stages = [{{ until = 5, lr = 3e-3 }}, {{ lr = 0.3 }}]
"""


def train(name, export_best="false"):
    open(f"{name}.toml", "w").write(PIPELINE.format(name=name, export_best=export_best))
    return subprocess.run([KEEL, "train", f"{name}.toml", "--no-progress"], capture_output=True, text=True)


check = Checks()
r = train("best")
check(r.returncode == 0, f"a run with two [eval.NAME] sets and keep_best trains (exit {r.returncode}) {r.stderr[-300:]}")
evals = [x for x in map(json.loads, open("runs/best/metrics.jsonl")) if x.get("eval")]
check(len(evals) == 11 and all("eval_loss.task" in e and "eval_loss.general" in e for e in evals),
      f"eval_loss.task and eval_loss.general at every evaluation ({len(evals)} evaluations)")
task = {e["step"]: e["eval_loss.task"] for e in evals}
best = min(task, key=task.get)
check(0 < best < 10 and task[10] > task[best], f"the task loss goes down then up: best at step {best} "
      f"({task[0]:.3f} -> {task[best]:.3f} -> {task[10]:.3f})")
kept = sorted(os.listdir("runs/best/checkpoints"))
check(kept == [f"step-{best:06d}", "step-000010"], f"keep_best keeps step {best} beside the last: {kept}")
state = json.load(open(f"runs/best/checkpoints/step-{best:06d}/trainer_state.json"))
check(state["best"]["step"] == best and abs(state["best"]["value"] - task[best]) < 1e-12, "its state records the best value")
W_best = load_file(f"runs/best/checkpoints/step-{best:06d}/model.safetensors")
W_last = load_file("runs/best/final/model.safetensors")
check(any((W_best[k] != W_last[k]).any() for k in W_best), "without export_best, final/ is the last step's model")

r = train("exported", export_best="true")
W_exp = load_file("runs/exported/final/model.safetensors")
check(r.returncode == 0 and all((W_best[k] == W_exp[k]).all() for k in W_best) and f"step {best}" in r.stderr,
      f"export_best: final/ is the model of step {best}, bit for bit")

# rollback to = "best": an alarm on at every evaluation (shared_ngram above 0 on the probes) makes
# the rollback remedy restore the best checkpoint so far, not the newest one.
open("probes.jsonl", "w").write("".join(json.dumps({"prompt": f"Say {i}."}) + "\n" for i in range(4)))
open("rb.toml", "w").write(PIPELINE.format(name="rb", export_best="false").replace("eval_every = 1", "eval_every = 3")
                           .replace("[eval.task]", '[eval]\nprompts = "probes.jsonl"\nmax_new_tokens = 8\n[eval.task]') +
                           '[[pipeline]]\nplugin = "shared_ngram"\nn = 1\nalarm_above = 0.0\n'
                           '[[pipeline]]\nplugin = "rollback"\nto = "best"\nmax_rollbacks = 1\nmax_fires = 5\ncooldown = 0\n')
r = subprocess.run([KEEL, "train", "rb.toml", "--no-progress"], capture_output=True, text=True)
rows = [json.loads(l) for l in open("runs/rb/metrics.jsonl")]
rb = [x["rollback"] for x in rows if "rollback" in x]
evals = {x["step"]: x["eval_loss.task"] for x in rows if x.get("eval")}
best_before = min((s for s in evals if s < 3), key=evals.get)
check(r.returncode == 0 and len(rb) == 1 and rb[0]["to"] == best_before == 0,
      f"rollback to = best restores the best checkpoint (step {best_before}): {rb} {r.stderr[-300:] if r.returncode else ''}")

html = open("runs/best/report.html").read()
check("eval_loss.general" in html and "eval_loss.task" in html, "the report plots both held-out losses")

open("bad.toml", "w").write(PIPELINE.format(name="bad", export_best="false").replace("[eval.general]", "[eval.\"a/b\"]"))
r = subprocess.run([KEEL, "train", "bad.toml", "--dry-run"], capture_output=True, text=True)
check(r.returncode == 2 and "is not allowed" in r.stderr, f"an [eval.NAME] name with '/' is refused: {r.stderr.strip()[-150:]}")
open("bad2.toml", "w").write(PIPELINE.format(name="bad2", export_best="false").replace('data = "general.jsonl"', 'path = "general.jsonl"'))
r = subprocess.run([KEEL, "train", "bad2.toml", "--dry-run"], capture_output=True, text=True)
check(r.returncode == 2 and "eval.general" in r.stderr, f"an [eval.NAME] without data is refused: {r.stderr.strip()[-150:]}")
check.finish()
