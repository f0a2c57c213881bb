"""Data parallelism on c10d (issue 16), Gloo on loopback: 2 processes train as 1 does on the same
global batch (data_mix's shares, the teacher-forced entropy, eval_loss), a 2-process checkpoint
resumes in 1 process, a two-node launch (two torchrun invocations) trains together, a killed or
hung rank stops the job within the timeout with the newest checkpoint usable, SIGTERM stops every
rank at the same step, and rank 0's refusals reach every rank.

usage: data_parallel.py KEEL WORKDIR
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from e2e import Checks, fresh_workdir, tiny_model  # noqa: E402

try:
    import numpy as np
    from safetensors.numpy import load_file
except ImportError as e:
    print(f"SKIP: {e}")
    sys.exit(77)

KEEL, WORK = sys.argv[1], sys.argv[2]
TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
if not os.path.exists(TORCHRUN):
    print(f"SKIP: no torchrun beside {sys.executable} (torch is not installed there)")
    sys.exit(77)
fresh_workdir(WORK)
tiny_model(KEEL, seed=3)
rows = [{"messages": [{"role": "user", "content": f"Count to {i}."},
                      {"role": "assistant", "content": " ".join(str(k) for k in range(i % 7 + 2))}]} for i in range(40)]
open("task.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in rows[:31]))
open("heldout.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in rows[31:]))  # 9: two uneven batches
open("general.jsonl", "w").write("".join(json.dumps({"text": f"The river {w} runs to the sea at dawn, {w} again."}) + "\n"
                                         for w in ("north", "south", "east", "west", "up", "down")))
open("p.toml", "w").write("""
[run]
name = "dp"
steps = 6
batch_size = 8
seq_len = 64
checkpoint_every = 3
eval_every = 3
log_every = 1
[optim]
lr = 1e-2
[model]
path = "model"
chat_template = "chatml"
[data.target]
path = "task.jsonl"
[data.general]
path = "general.jsonl"
[eval]
data = "heldout.jsonl"
max_new_tokens = 8
num_prompts = 4
[dist]
timeout_s = 20
[[pipeline]]
plugin = "data_mix"
sources = { target = 0.75, general = 0.25 }
[[pipeline]]
plugin = "distinct_ngrams"
[[pipeline]]
plugin = "entropy"
source = "teacher_forced"
""")
check = Checks()
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(name, *extra, procs=1, timeout=300):
    cmd = [KEEL, "train", "p.toml", "--no-progress", "--set", f"run.name={name}", *extra]
    if procs > 1:
        cmd = [TORCHRUN, "--nproc-per-node", str(procs), "--master-port", str(free_port()), "--no-python", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)


def spawn(name, rank, world, port, *extra):
    """One rank, started as any launcher would: the five variables, no torchrun."""
    env = dict(ENV, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port))
    return subprocess.Popen([KEEL, "train", "p.toml", "--no-progress", "--set", f"run.name={name}", *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows_of(name):
    return [json.loads(line) for line in open(f"runs/{name}/metrics.jsonl")]


def losses(name):
    return [r["loss"] for r in rows_of(name) if "loss" in r]


def evals(name, key):
    return [r[key] for r in rows_of(name) if r.get("eval") and key in r]


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12))) if a.size and a.shape == b.shape else float("inf")


def weights_rel(x, y):
    a, b = load_file(f"runs/{x}/final/model.safetensors"), load_file(f"runs/{y}/final/model.safetensors")
    if a.keys() != b.keys():
        return float("inf")
    return max(float(np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(a[k]), 1e-12)) for k in a)


def newest_checkpoint(name):
    d = f"runs/{name}/checkpoints"
    steps = sorted(n for n in os.listdir(d) if n.startswith("step-")) if os.path.isdir(d) else []
    return steps[-1] if steps else None


# ---- 1 process against 2, same global batch --------------------------------------------------------
one = train("one")
check(one.returncode == 0, f"one process trains (rc {one.returncode}) {one.stderr[-300:]}")
two = train("two", procs=2)
check(two.returncode == 0, f"torchrun --nproc-per-node 2 trains (rc {two.returncode}) {two.stderr[-500:]}")
if one.returncode or two.returncode:
    check.finish()
check("data parallel: 2 processes (gloo)" in two.stdout + two.stderr, "rank 0 says it runs 2 processes on gloo")
l1, l2 = losses("one"), losses("two")
check(len(l1) == 6 and rel(l1, l2) <= 1e-5, f"per-step losses agree within 1e-5 relative (max {rel(l1, l2):.2e})")
g1 = [r["grad_norm"] for r in rows_of("one") if "grad_norm" in r]
g2 = [r["grad_norm"] for r in rows_of("two") if "grad_norm" in r]
check(rel(g1, g2) <= 1e-5, f"gradient norms agree: the ranks' gradients were summed (max {rel(g1, g2):.2e})")
w = weights_rel("one", "two")
check(w <= 1e-5, f"final weights agree within 1e-5 relative (max per tensor {w:.2e})")
for key in ("eval_loss", "entropy"):
    a, b = evals("one", key), evals("two", key)
    check(len(a) >= 2 and rel(a, b) <= 1e-5,
          f"{key} at every evaluation agrees ({a} vs {b}): held-out batches split over ranks, the entropy "
          f"plugin sums its share through all_reduce_sum")
mix1 = [r for r in rows_of("one") if "data_mix.general" in r]
mix2 = [r for r in rows_of("two") if "data_mix.general" in r]
check(mix1 == mix2 or not mix1, "data_mix's shares are those of the single process")
check(sorted(os.listdir("runs/two")) == sorted(os.listdir("runs/one")), "the 2-process run folder holds what a 1-process one does")

# ---- a 2-process checkpoint resumes in 1 process ------------------------------------------------------
half = train("half", "--set", "run.steps=3", procs=2)
check(half.returncode == 0 and newest_checkpoint("half") == "step-000003", f"2 processes stop at a checkpoint of step 3 "
      f"(rc {half.returncode})")
rest = train("half", "--resume", "--set", "run.steps=6")
check(rest.returncode == 0, f"1 process resumes it (rc {rest.returncode}) {rest.stderr[-300:]}")
lh = losses("half")
check(rel(l1, lh) <= 1e-5 and weights_rel("one", "half") <= 1e-5,
      f"and ends as the uninterrupted run (losses {rel(l1, lh):.2e}, weights {weights_rel('one', 'half'):.2e})")

# ---- two nodes, simulated: two torchrun invocations on localhost ------------------------------------
port = free_port()
nodes = [subprocess.Popen([TORCHRUN, "--nnodes", "2", "--node-rank", str(r), "--nproc-per-node", "1", "--master-addr",
                           "127.0.0.1", "--master-port", str(port), "--no-python", KEEL, "train", "p.toml", "--no-progress",
                           "--set", "run.name=nodes"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
         for r in (0, 1)]
codes = [p.wait(timeout=300) for p in nodes]
check(codes == [0, 0], f"torchrun --nnodes 2 --node-rank 0/1 train together (rc {codes})")
if codes == [0, 0]:
    check(rel(l1, losses("nodes")) <= 1e-5, "with the single process's losses")

# ---- faults ---------------------------------------------------------------------------------------------
LONG = ["--set", "run.steps=100000", "--set", "run.checkpoint_every=20", "--set", "run.eval_every=100000"]


def wait_for_checkpoint(name, procs, limit=120):
    t0 = time.time()
    while time.time() - t0 < limit and all(p.poll() is None for p in procs):
        if newest_checkpoint(name) and newest_checkpoint(name) >= "step-000040":
            return True
        time.sleep(0.2)
    return False


for fault in ("kill", "hang"):
    name = f"fault-{fault}"
    port = free_port()
    procs = [spawn(name, r, 2, port, *LONG) for r in (0, 1)]
    ok = wait_for_checkpoint(name, procs)
    check(ok, f"{fault}: the job runs past its second checkpoint")
    os.kill(procs[1].pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
    t0 = time.time()
    try:
        rc = procs[0].wait(timeout=20 + 40)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        rc = None
    took = time.time() - t0
    err = procs[0].stderr.read()
    procs[1].kill()
    procs[1].wait()
    check(rc not in (None, 0), f"{fault} rank 1: rank 0 stops non-zero (rc {rc}) after {took:.1f} s (timeout_s 20)")
    check("data-parallel group failed" in err, f"{fault}: and says why: {err.strip().splitlines()[-1][:300] if err.strip() else ''}")
    ckpt = newest_checkpoint(name)
    resumed = train(name, "--resume", "--set", f"run.steps={int(ckpt[5:]) + 2}")
    check(resumed.returncode == 0, f"{fault}: the newest checkpoint ({ckpt}) resumes in one process (rc {resumed.returncode}) "
          f"{resumed.stderr[-300:]}")

# SIGTERM to every process of the job: all stop at the same step, rank 0 saves it, all exit 0.
port = free_port()
procs = [spawn("term", r, 2, port, *LONG) for r in (0, 1)]
check(wait_for_checkpoint("term", procs), "SIGTERM: the job runs")
for p in procs:
    p.send_signal(signal.SIGTERM)
    time.sleep(0.05)
codes = [p.wait(timeout=60) for p in procs]
check(codes == [0, 0], f"SIGTERM: every rank exits 0 (rc {codes})")
stopped = [r for r in rows_of("term") if r.get("summary")]
check(stopped and newest_checkpoint("term") == f"step-{stopped[0]['steps']:06d}",
      f"SIGTERM: rank 0 saved the step the ranks stopped at ({newest_checkpoint('term')})")

# ---- refusals --------------------------------------------------------------------------------------------
again = train("two", procs=2)
check(again.returncode != 0 and again.stderr.count("has checkpoints up to step 6") >= 1
      and "rank 0 refused the run" in again.stderr,
      f"a re-run without --resume is refused on every rank (rc {again.returncode})")
odd = train("odd", "--set", "run.batch_size=7", procs=2)
check(odd.returncode != 0 and "must be a multiple of grad_accum 1 x 2 processes" in odd.stderr,
      "a batch the ranks cannot share equally is refused")
ac = train("ac", "--set", "run.activation_checkpointing=true", procs=2)
check(ac.returncode != 0 and "activation_checkpointing is not supported with several processes" in ac.stderr,
      "activation checkpointing with several processes is refused, not run wrongly")
bad = subprocess.run([KEEL, "train", "p.toml", "--set", "run.name=bad"], env=dict(ENV, WORLD_SIZE="2", RANK="5"),
                     capture_output=True, text=True)
check(bad.returncode == 2 and "needs RANK in 0..1" in bad.stderr, f"an inconsistent launcher environment exits 2: {bad.stderr.strip()[:200]}")
check.finish()
