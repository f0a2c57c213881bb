"""No run loses its checkpoints to a forgotten flag, and no name writes outside output_dir (issue 17);
a real run checks its pipeline before it loads the model (issue 14).

usage: run_safety.py KEEL WORKDIR
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from e2e import Checks, fresh_workdir, tiny_model  # noqa: E402

KEEL, WORK = sys.argv[1], sys.argv[2]
fresh_workdir(WORK)
tiny_model(KEEL, seed=2)
example = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello there."}]}
open("d.jsonl", "w").write((json.dumps(example) + "\n") * 4)
PIPELINE = """
[run]
name = "{name}"
steps = 2
batch_size = 2
seq_len = 64
checkpoint_every = 1
eval_every = 100
[optim]
lr = 1e-3
[model]
path = "{model}"
chat_template = "chatml"
[data.{source}]
path = "d.jsonl"
{extra}
"""


def pipeline(name="r", model="model", source="target", extra=""):
    open("p.toml", "w").write(PIPELINE.format(name=name, model=model, source=source, extra=extra))
    return "p.toml"


def train(*args):
    return subprocess.run([KEEL, "train", *args, "--no-progress"], capture_output=True, text=True)


check = Checks()
p = train(pipeline())
check(p.returncode == 0, f"a first run trains (exit {p.returncode})")
ckpts = sorted(os.listdir("runs/r/checkpoints"))
rows = open("runs/r/metrics.jsonl").read()

p = train(pipeline())
check(p.returncode == 2 and "runs/r has checkpoints up to step 2: --resume to continue, or --overwrite" in p.stderr,
      f"a re-run without --resume is refused: exit {p.returncode}: {p.stderr.strip()[-200:]}")
check(sorted(os.listdir("runs/r/checkpoints")) == ckpts and open("runs/r/metrics.jsonl").read() == rows,
      "its checkpoints and metrics are untouched")

p = train(pipeline(), "--overwrite")
aside = [d for d in os.listdir("runs") if d.startswith("r.replaced-")]
check(p.returncode == 0 and len(aside) == 1, f"--overwrite starts over (exit {p.returncode}), the old run moved aside: {aside}")
check(aside and sorted(os.listdir(f"runs/{aside[0]}/checkpoints")) == ckpts, "the old run keeps its checkpoints")
new_rows = [json.loads(l) for l in open("runs/r/metrics.jsonl")]
check(sum(1 for r in new_rows if "summary" in r) == 1, "the new metrics.jsonl holds one run, not two")

p = train(pipeline(name="fresh"), "--resume")
check(p.returncode == 2 and "--resume: runs/fresh has no checkpoint to continue from (looked in runs/fresh/checkpoints)" in p.stderr,
      f"--resume with nothing to resume is refused: exit {p.returncode}: {p.stderr.strip()[-200:]}")
check(not os.path.exists("runs/fresh/checkpoints"), "and starts nothing")

p = train(pipeline(), "--resume")
check(p.returncode == 0, f"--resume continues the run that has checkpoints (exit {p.returncode})")

for name, what in (("../escape", "[run] name"), ("a/b", "[run] name"), (".hidden", "[run] name")):
    p = train(pipeline(name=name))
    check(p.returncode == 2 and f"{what} '{name}' is not allowed" in p.stderr, f"run name {name!r}: exit {p.returncode}: {p.stderr.strip()[-160:]}")
check(not os.path.exists("escape") and not os.path.exists("runs/a"), "nothing was written outside runs/")
p = train(pipeline(), "--set", "run.name=../x")
check(p.returncode == 2 and "--set: [run] name '../x' is not allowed" in p.stderr, f"--set run.name=../x: {p.stderr.strip()[-160:]}")
p = train(pipeline(source='"../src"'))
check(p.returncode == 2 and "source's name '../src' is not allowed" in p.stderr, f"a source named ../src: {p.stderr.strip()[-160:]}")

# Checked before the model loads: a model path that does not exist is never reached.
two = '[data.general]\npath = "d.jsonl"\n'
p = train(pipeline(name="two", model="no-such-model", extra=two))
check(p.returncode == 2 and "2 data sources" in p.stderr and "no data plugin" in p.stderr and "data_mix" in p.stderr,
      f"two sources without a data plugin: exit {p.returncode}: {p.stderr.strip()[-200:]}")
p = train(pipeline(name="two", model="no-such-model", extra='[[pipeline]]\nplugin = "no_such_plugin"\n'))
check(p.returncode == 2 and "unknown plugin 'no_such_plugin'" in p.stderr, f"an unknown plugin before the model: {p.stderr.strip()[-160:]}")

# A plugin that fails inside a step (fixture_throws: its lr hook, at step 3) leaves no checkpoint
# for that step: the data cursors had moved, the update had not happened. The last one stands.
fixtures = os.path.join(os.path.dirname(os.path.abspath(KEEL)), "..", "tests", "fixtures")
p = subprocess.run([KEEL, "train", pipeline(name="fails", extra='[[pipeline]]\nplugin = "fixture_throws"\n'),
                    "--no-progress", "--set", "run.steps=6", "--plugin-dir", fixtures], capture_output=True, text=True)
kept = sorted(os.listdir("runs/fails/checkpoints")) if os.path.isdir("runs/fails/checkpoints") else []
check(p.returncode == 1 and "deliberate failure at step 3" in p.stderr and "step 4 is not saved" not in p.stderr and
      "that step is not saved" in p.stderr and kept[-1:] == ["step-000003"],
      f"a plugin failing inside step 4: exit {p.returncode}, checkpoints {kept}, the original error kept")
check.finish()
