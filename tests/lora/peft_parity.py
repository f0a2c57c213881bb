"""LoRA (issue 19): keel's adapters against PEFT, the frozen base, exact resume, partial fine-tuning.

- A LoRA run exported as a PEFT folder loads in peft.PeftModel, and its log-probs equal keel's own
  (unmerged) forward of the same folder (<= 1e-5).
- A run exported merged equals PEFT's merge_and_unload of the same adapters (<= 1e-6), and every
  weight without an adapter is bit-identical to the base model.
- A checkpoint holds the adapters and their optimizer state, not the model; --resume from it ends
  bit-identical to the uninterrupted run (dropout on the adapters included).
- freeze: only the last layer trains, everything else stays bit-identical.

usage: peft_parity.py KEEL WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from e2e import Checks, fresh_workdir, tiny_model  # noqa: E402

try:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
except ImportError as e:
    print(f"SKIP: {e} (peft, transformers and torch from PyPI are the reference)")
    sys.exit(77)

KEEL, WORK = sys.argv[1], sys.argv[2]
fresh_workdir(WORK)
tiny_model(KEEL, seed=3)
BASE = os.path.abspath("model")
rows = [{"messages": [{"role": "user", "content": f"Name {i}?"}, {"role": "assistant", "content": f"It is {i * 7}."}]}
        for i in range(16)]
open("d.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in rows))
PIPELINE = """
[run]
name = "{name}"
steps = 4
batch_size = 4
seq_len = 64
checkpoint_every = 2
keep_last = 5
eval_every = 100
[optim]
lr = 2e-2
[model]
path = "model"
chat_template = "chatml"
[data.target]
path = "d.jsonl"
[[pipeline]]
plugin = "{plugin}"
{params}
"""
LORA = 'rank = 4\nalpha = 8.0\ndropout = {dropout}\ntargets = "{targets}"\nexport = "{export}"'


def train(name, plugin="lora", params="", *args):
    open(f"{name}.toml", "w").write(PIPELINE.format(name=name, plugin=plugin, params=params))
    return subprocess.run([KEEL, "train", f"{name}.toml", "--no-progress", *args], capture_output=True, text=True)


def lora(dropout=0.0, targets="q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj", export="merged"):
    return LORA.format(dropout=dropout, targets=targets, export=export)


SEQS = [[int(x) for x in torch.randint(3, 280, (n,), generator=torch.Generator().manual_seed(n))] for n in (5, 33, 60)]


def keel_logprobs(folder):
    open("seqs.jsonl", "w").write("".join(json.dumps({"ids": s}) + "\n" for s in SEQS))
    r = subprocess.run([KEEL, "perplexity", "--model", folder, "--data", "seqs.jsonl", "--dump", "dump.jsonl",
                        "--device", "cpu"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"keel perplexity {folder}: {r.stderr}")
    return [json.loads(l)["logprobs"] for l in open("dump.jsonl")]


def hf_logprobs(model):
    out = []
    with torch.no_grad():
        for s in SEQS:
            lp = model(torch.tensor([s])).logits[0].float().log_softmax(-1)
            out.append([lp[i, s[i + 1]].item() for i in range(len(s) - 1)])
    return out


def max_diff(a, b):
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


check = Checks()
base_w = load_file(os.path.join(BASE, "model.safetensors"))

# 1. PEFT export: PEFT loads it; its forward equals keel's.
r = train("peft", params=lora(export="peft"))
check(r.returncode == 0, f"a LoRA run exported as a PEFT folder trains (exit {r.returncode}) {r.stderr[-400:]}")
final = "runs/peft/final"
cfg = json.load(open(f"{final}/adapter_config.json"))
check(cfg["r"] == 4 and cfg["lora_alpha"] == 8 and sorted(cfg["target_modules"]) ==
      sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]) and
      not os.path.exists(f"{final}/model.safetensors"), f"final/ is a PEFT folder: {cfg['target_modules']}")
adapters = load_file(f"{final}/adapter_model.safetensors")
b_norm = max(float(t.abs().max()) for k, t in adapters.items() if "lora_B" in k)
check(len(adapters) == 2 * 7 * 2 and b_norm > 1e-3, f"{len(adapters)} adapter tensors, B trained (max |B| {b_norm:.3g})")
hf_base = AutoModelForCausalLM.from_pretrained(BASE, torch_dtype=torch.float32)
peft_model = PeftModel.from_pretrained(hf_base, final).eval()
ref = hf_logprobs(peft_model)
d = max_diff(ref, keel_logprobs(final))
check(d <= 1e-5, f"keel's LoRA forward equals PEFT's on the same adapters (max |diff| {d:.2e})")
d_base = max_diff(ref, hf_logprobs(AutoModelForCausalLM.from_pretrained(BASE, torch_dtype=torch.float32)))
check(d_base > 1e-3, f"... and the adapters change the model (vs base: {d_base:.2e})")

# 2. Merged export equals PEFT's merge_and_unload of the same adapters (same seed, same training).
r = train("merged", params=lora(export="merged"))
check(r.returncode == 0, f"the same run exported merged (exit {r.returncode}) {r.stderr[-300:]}")
merged = load_file("runs/merged/final/model.safetensors")
peft_merged = peft_model.merge_and_unload().state_dict()
d = max(float((merged[k] - peft_merged[k]).abs().max()) for k in merged)
check(merged.keys() <= set(peft_merged) and d <= 1e-6, f"merged export equals PEFT merge_and_unload (max |diff| {d:.2e})")

# 3. Adapters on q_proj only: every other weight of the merged export is the base, bit for bit.
r = train("qonly", params=lora(targets="q_proj", export="merged"))
q = load_file("runs/qonly/final/model.safetensors")
untouched = [k for k in q if "q_proj" not in k]
check(r.returncode == 0 and all(torch.equal(q[k], base_w[k]) for k in untouched) and
      all(not torch.equal(q[k], base_w[k]) for k in q if "q_proj" in k),
      f"with adapters on q_proj, the {len(untouched)} other tensors are bit-identical to the base; q_proj moved")

# 4. Checkpoints hold adapters and their optimizer state; resume is exact (adapter dropout on).
r = train("ref", params=lora(dropout=0.1, export="peft"))
ck = "runs/ref/checkpoints/step-000002"
files = sorted(os.listdir(ck))
check(r.returncode == 0 and "adapter_model.safetensors" in files and "model.safetensors" not in files,
      f"a LoRA checkpoint holds the adapters, not the model: {files}")
opt_mb = os.path.getsize(f"{ck}/optimizer.pt") / 1e6
base_mb = os.path.getsize(os.path.join(BASE, "model.safetensors")) / 1e6
check(opt_mb < base_mb, f"optimizer state of the adapters only ({opt_mb:.3f} MB; the model is {base_mb:.3f} MB)")
shutil.copytree("runs/ref", "runs/res")
shutil.rmtree("runs/res/final")
shutil.rmtree("runs/res/checkpoints/step-000004")
open("res.toml", "w").write(open("ref.toml").read().replace('name = "ref"', 'name = "res"'))
r = subprocess.run([KEEL, "train", "res.toml", "--no-progress", "--resume"], capture_output=True, text=True)
a, b = load_file("runs/ref/final/adapter_model.safetensors"), load_file("runs/res/final/adapter_model.safetensors")
check(r.returncode == 0 and "resumed from" in r.stderr and a.keys() == b.keys() and
      all(torch.equal(a[k], b[k]) for k in a), f"--resume from step 2 ends bit-identical to the uninterrupted run {r.stderr[-300:]}")

# 5. A checkpoint of adapters does not resume a pipeline without them, and says why.
open("nolora.toml", "w").write(open("res.toml").read().split("[[pipeline]]")[0])
r = subprocess.run([KEEL, "train", "nolora.toml", "--no-progress", "--resume"], capture_output=True, text=True)
check(r.returncode == 2 and "holds LoRA adapters, but this pipeline has no lora" in r.stderr,
      f"resuming adapters without lora: exit 2 with the reason ({r.returncode}: {r.stderr.strip()[-200:]})")

# 6. Bad settings: exit 2 with the reason.
r = train("badtarget", params=lora(targets="no_such_proj"))
check(r.returncode == 2 and "match no projection" in r.stderr, f"targets matching nothing: exit 2 ({r.stderr.strip()[-160:]})")
r = train("badextra", params=lora(export="peft") + '\ntrain_extra = "norm"')
check(r.returncode == 2 and "PEFT adapter folder cannot carry" in r.stderr, "train_extra with a PEFT export: exit 2")

# 7. train_extra: the norms train beside the adapters (merged export), the rest of the base does not.
r = train("extra", params=lora(targets="v_proj") + '\ntrain_extra = "norm"')
e = load_file("runs/extra/final/model.safetensors")
check(r.returncode == 0 and all(not torch.equal(e[k], base_w[k]) for k in e if "norm" in k) and
      all(torch.equal(e[k], base_w[k]) for k in e if "norm" not in k and "v_proj" not in k),
      "train_extra = norm: the norms train, the other base weights stay bit-identical")

# 8. freeze: only the last layer trains.
r = train("freeze", plugin="freeze", params="last_layers = 1")
f = load_file("runs/freeze/final/model.safetensors")
moved = sorted(k for k in f if not torch.equal(f[k], base_w[k]))
check(r.returncode == 0 and moved and all(k.startswith("model.layers.1.") for k in moved),
      f"freeze last_layers = 1: only layer 1 moved ({len(moved)} tensors) {r.stderr[-200:]}")
check.finish()
