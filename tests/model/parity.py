"""Parity of keel's model with Hugging Face transformers, for each supported architecture.

For every case: transformers builds a small random model (weights widened so outputs are far from
uniform) and saves it; keel must give the same per-token log-probs (fp32, max abs diff <= 1e-4)
and the same greedy continuation. Then keel writes a model of the same shape (keel init-model),
and transformers must load it and agree with keel the same way.

usage: parity.py KEEL WORKDIR
"""
import json
import os
import subprocess
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
KEEL, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
torch.manual_seed(0)

BASE = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
CASES = {
    "llama_tied_gqa_llama3rope": (transformers.LlamaConfig, dict(
        num_key_value_heads=2, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
    "llama_bias_untied": (transformers.LlamaConfig, dict(
        num_key_value_heads=4, attention_bias=True, mlp_bias=True, tie_word_embeddings=False)),
    "qwen2_biases_gqa": (transformers.Qwen2Config, dict(num_key_value_heads=2, tie_word_embeddings=False)),
    "qwen3_qknorm_headdim_tied": (transformers.Qwen3Config, dict(
        num_key_value_heads=2, head_dim=32, tie_word_embeddings=True)),
    "mistral_gqa": (transformers.MistralConfig, dict(num_key_value_heads=1, sliding_window=None)),
}

SEQS = [[int(x) for x in torch.randint(3, 256, (n,))] for n in (1, 7, 40, 97)]
PROMPT = SEQS[2][:12]


def widen(model):
    """HF's init (std 0.02) makes near-uniform outputs that would agree by accident."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.normal_(0, 0.25)


def hf_logprobs(model, ids):
    with torch.no_grad():
        out = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return [out[i, ids[i + 1]].item() for i in range(len(ids) - 1)]


def hf_greedy(model, ids, n):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False,
                             eos_token_id=model.config.eos_token_id, pad_token_id=0)
    toks = out[0, len(ids):].tolist()
    if model.config.eos_token_id in toks:
        toks = toks[:toks.index(model.config.eos_token_id)]
    return toks


def keel(*args):
    r = subprocess.run([KEEL, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"keel {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r.stdout


def keel_logprobs(model_dir):
    data = os.path.join(WORK, "seqs.jsonl")
    dump = os.path.join(WORK, "dump.jsonl")
    with open(data, "w") as f:
        for s in SEQS:
            f.write(json.dumps({"ids": s}) + "\n")
    keel("perplexity", "--model", model_dir, "--data", data, "--dump", dump, "--device", "cpu")
    rows = [json.loads(l) for l in open(dump)]
    assert [r["tokens"] for r in rows] == SEQS
    return [r["logprobs"] for r in rows]


def keel_greedy(model_dir, ids, n):
    out = keel("generate", "--model", model_dir, "--prompt-ids", json.dumps(ids), "--temperature", "0",
               "--max-new-tokens", str(n), "--device", "cpu")
    return json.loads(out)["tokens"]


def compare(tag, model, model_dir):
    worst = 0.0
    for s, lp in zip(SEQS, keel_logprobs(model_dir)):
        ref = hf_logprobs(model, s)
        assert len(ref) == len(lp), (tag, len(ref), len(lp))
        if ref:
            worst = max(worst, max(abs(a - b) for a, b in zip(ref, lp)))
    g_ref, g_keel = hf_greedy(model, PROMPT, 24), keel_greedy(model_dir, PROMPT, 24)
    ok = worst <= 1e-4 and g_ref == g_keel
    print(f"{'ok' if ok else 'FAIL'}: {tag}: max |dlogprob| = {worst:.2e}, greedy {len(g_keel)} tokens "
          f"{'equal' if g_ref == g_keel else f'differ: hf {g_ref} keel {g_keel}'}")
    return ok


failures = 0
for name, (cls, extra) in CASES.items():
    cfg = cls(**BASE, **extra)
    # HF -> keel
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
    widen(model)
    hf_dir = os.path.join(WORK, name + "-hf")
    model.save_pretrained(hf_dir)
    failures += not compare(name + " (saved by transformers)", model, hf_dir)
    # keel -> HF: keel writes the folder, transformers loads it
    keel_dir = os.path.join(WORK, name + "-keel")
    keel("init-model", "--config", os.path.join(hf_dir, "config.json"), "--out", keel_dir, "--seed", "3")
    loaded = AutoModelForCausalLM.from_pretrained(keel_dir, torch_dtype=torch.float32).eval()
    failures += not compare(name + " (saved by keel)", loaded, keel_dir)

print(f"{len(CASES) * 2 - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
