"""Remedies end to end (issue 8): a tiny model trained at a high LR on a dataset whose every answer
is the same sentence collapses; the alarms fire and every remedy acts, visibly in metrics.jsonl.
Also: rollback restores the checkpoint's weights bit-equal, cooldown and max_fires hold, a remedy
whose host call fails stops the run cleanly (checkpoint saved, plugin named), and a run resumed
after a rollback ends exactly where an uninterrupted one does.

usage: remedies_e2e.py KEEL WORKDIR
"""
import json
import os
import subprocess
import sys

from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import collapse_data  # noqa: E402
from e2e import Checks, fresh_workdir, tiny_model  # noqa: E402

KEEL, WORK = sys.argv[1], sys.argv[2]
fresh_workdir(WORK)
tiny_model(KEEL)
collapse_data.write("collapse.jsonl")

BASE = """
[run]
steps = 80
batch_size = 8
seq_len = 128
checkpoint_every = 4
eval_every = 4
log_every = 4
keep_last = 100
[optim]
lr = 3e-3
[model]
path = "model"
chat_template = "chatml"
[data.target]
path = "collapse.jsonl"
[eval]
num_prompts = 8
max_new_tokens = 12
[[pipeline]]
plugin = "mode_share"
[[pipeline]]
plugin = "distinct_ngrams"
[[pipeline]]
plugin = "lr_cut"
on = ["mode_share"]
cooldown = 8
max_fires = 2
duration = 8
[[pipeline]]
plugin = "embedding_noise"
cooldown = 4
[[pipeline]]
plugin = "reshuffle"
cooldown = 4
[[pipeline]]
plugin = "temperature"
cooldown = 4
[[pipeline]]
plugin = "rollback"
cooldown = 4
"""
check = Checks()


def train(name, text, *extra):
    open(name + ".toml", "w").write(text)
    return subprocess.run([KEEL, "train", name + ".toml", "--no-progress", *extra], capture_output=True, text=True)


def rows(name):
    return [x for x in map(json.loads, open(f"runs/{name}/metrics.jsonl")) if not x.get("summary")]


def weights(path):
    return load_file(os.path.join(path, "model.safetensors"))


def same(a, b):
    return a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


# 1. Collapse, alarms, every remedy, rollbacks up to the limit, then a clean stop.
res = train("collapse", BASE + "max_rollbacks = 2\n")
rs = rows("collapse")
fired = [f for x in rs for f in x.get("remedies", [])]
names = {f["remedy"] for f in fired}
check(res.returncode == 0, f"the collapsing run ends cleanly ({res.stderr[-400:] if res.returncode else ''})")
check(any("mode_share" in x.get("alarms", []) for x in rs), "the collapse raises the mode_share alarm")
check(names == {"lr_cut", "embedding_noise", "reshuffle", "temperature", "rollback"}, f"every remedy fired: {sorted(names)}")
lr_cuts = [f["step"] for f in fired if f["remedy"] == "lr_cut"]
check(len(lr_cuts) <= 2 and all(b - a >= 8 for a, b in zip(lr_cuts, lr_cuts[1:])), f"lr_cut's max_fires 2 and cooldown 8 hold: {lr_cuts}")
temps = [x["temperature"] for x in rs if x.get("eval")]
check(temps[0] == 0.7 and max(temps) > 0.7 and max(temps) <= 1.2 + 1e-9, f"metrics.jsonl records the temperature: {sorted(set(temps))}")
rb = [x["rollback"] for x in rs if "rollback" in x]
check(len(rb) == 2 and "rollback limit (2) reached" in res.stderr, f"two rollbacks, then the run stops: {rb}")
healthy = rb[-1]["to"]
check(same(weights(f"runs/collapse/checkpoints/step-{healthy:06d}"), weights("runs/collapse/final")),
      f"rollback restores the weights of checkpoint {healthy} bit-equal (the export after the last one)")

# 2. A remedy whose host call fails stops the run cleanly, names the plugin, saves a checkpoint.
bad = BASE.replace('plugin = "embedding_noise"', 'plugin = "embedding_noise"\nparameter = "model.no_such.weight"')
res = train("failing", bad)
step = next((x["step"] for x in rows("failing") if x.get("alarms")), None)
check(res.returncode == 1 and "plugin 'embedding_noise' failed in on_alarm" in res.stderr and
      "no parameter 'model.no_such.weight'" in res.stderr, "a failing host call stops the run naming the plugin")
check(step is not None and os.path.exists(f"runs/failing/checkpoints/step-{step:06d}"), f"with a checkpoint at step {step}")

# 3. Resume after a rollback continues exactly: stop at 72 (after the first rollback), resume to 80.
steady = BASE + "max_rollbacks = 10\n"
train("whole", steady)
whole_rb = [x for x in rows("whole") if "rollback" in x]
train("split", steady, "--set", "run.steps=72")
split_rb = [x for x in rows("split") if "rollback" in x]
res = train("split", steady, "--resume")
check(whole_rb and split_rb and split_rb[0]["step"] < 72, f"the split run rolled back before step 72: {[x['step'] for x in split_rb]}")
check(res.returncode == 0 and same(weights("runs/whole/final"), weights("runs/split/final")),
      "resumed after a rollback, the run ends bit-identical to the uninterrupted one")

# 4. keel eval reproduces, from a checkpoint, the metrics a run logged at that step (a run with
# metrics and no remedies, so nothing changes the model or the sampling after the evaluation).
metrics_only = BASE[:BASE.index('plugin = "lr_cut"') - len("[[pipeline]]\n")].replace("steps = 80", "steps = 8")
train("metrics", metrics_only)
r = subprocess.run([KEEL, "eval", "metrics.toml", "--checkpoint", "runs/metrics/checkpoints/step-000008"],
                   capture_output=True, text=True)
ev = json.loads(r.stdout) if r.returncode == 0 else {}
logged = next(x for x in rows("metrics") if x.get("eval") and x["step"] == 8)
check(ev.get("step") == 8 and all(ev["metrics"].get(k) == logged[k] for k in ev.get("metrics", {})) and
      len(ev.get("metrics", {})) >= 2 and ev["alarms"] == logged["alarms"],
      f"keel eval on the step-8 checkpoint reproduces the logged metrics: {ev.get('metrics')}")

check.finish()
