"""Chat-template rendering throughput: keel's Jinja interpreter beside transformers' apply_chat_template.

usage: python bench/chat_template/bench.py [KEEL] [TOKENIZER_DIR] [--n 2000] [--templates-dir DIR]
                                           [--templates qwen3,chujiezheng/llama-3-instruct,...] [--rounds 3]
defaults: build/bin/keel, ../shared/data/tokenizers/qwen3, 2000 conversations (tests/tokenizer/corpus.py:
optional system message, 1-3 user/assistant pairs), the templates qwen3, chujiezheng/llama-3-instruct and
llamacpp/gemma4 from ../shared/data/chat_templates.

Each template is put in a copy of the tokenizer folder (tokenizer_config.json's chat_template, bos_token
"<|endoftext|>"), and the same conversations are rendered (tokenize=False, no generation prompt):
- keel: `keel tokenize --tokenizer DIR --dataset F --render --bench` on one core (taskset), which prints
  {"conversations": N, "seconds": S} timing rendering alone;
- transformers: apply_chat_template(messages, tokenize=False) in a loop, timing the loop alone;
- jinja2 alone: the template compiled once by transformers, Template.render in a loop (no per-call
  overhead of apply_chat_template), for scale.
Best of --rounds each. Prints conversations/s and keel's ratio to apply_chat_template; the goal is >= 10x."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "tokenizer"))
sys.path.insert(0, os.path.join(ROOT, "tests", "chat_templates"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import corpus  # noqa: E402
import parity  # noqa: E402  (make_tokenizer_dir, read_source)

DEFAULT_TEMPLATES = "qwen3,chujiezheng/llama-3-instruct,llamacpp/gemma4"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("keel", nargs="?", default=os.path.join(ROOT, "build", "bin", "keel"))
    ap.add_argument("tokenizer_dir", nargs="?", default=os.path.join(ROOT, "..", "shared", "data", "tokenizers", "qwen3"))
    ap.add_argument("--templates-dir", default=os.path.join(ROOT, "..", "shared", "data", "chat_templates"))
    ap.add_argument("--templates", default=DEFAULT_TEMPLATES, help="comma-separated names (path under --templates-dir without .jinja)")
    ap.add_argument("--n", type=int, default=2000, help="conversations")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging
    from transformers.utils.chat_template_utils import _compile_jinja_template
    hf_logging.set_verbosity_error()

    convs = [c["messages"] for c in corpus.conversations(args.n, seed=11)]
    nbytes = sum(len(m["content"].encode()) for c in convs for m in c)
    taskset = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    print(f"{len(convs)} conversations, {sum(len(c) for c in convs)} messages, {nbytes / 1e6:.2f} MB of content; "
          f"best of {args.rounds}; keel {'on one core' if taskset else 'unpinned'}")
    work = tempfile.mkdtemp(prefix="keel_chat_bench_")
    try:
        ratios = []
        for name in args.templates.split(","):
            path = os.path.join(args.templates_dir, name + ".jinja")
            source = parity.read_source(path)
            tok_dir = os.path.join(work, name.replace("/", "__"))
            parity.make_tokenizer_dir(tok_dir, args.tokenizer_dir, source, as_file=False)
            data = os.path.join(tok_dir, "conversations.jsonl")
            with open(data, "w", encoding="utf-8") as f:
                for c in convs:
                    f.write(json.dumps({"messages": c}, ensure_ascii=False) + "\n")

            tok = AutoTokenizer.from_pretrained(tok_dir)
            texts = [tok.apply_chat_template(c, tokenize=False) for c in convs]  # warm-up (compiles) and the output size
            out_mb = sum(len(t.encode()) for t in texts) / 1e6
            best_hf = float("inf")
            for _ in range(args.rounds):
                t = time.perf_counter()
                for c in convs:
                    tok.apply_chat_template(c, tokenize=False)
                best_hf = min(best_hf, time.perf_counter() - t)

            compiled = _compile_jinja_template(tok.chat_template)
            specials = tok.special_tokens_map
            best_j2 = float("inf")
            for _ in range(args.rounds):
                t = time.perf_counter()
                for c in convs:
                    compiled.render(messages=c, tools=None, documents=None, add_generation_prompt=False, **specials)
                best_j2 = min(best_j2, time.perf_counter() - t)

            best_keel, n_keel = float("inf"), None
            for _ in range(args.rounds):
                p = subprocess.run(taskset + [args.keel, "tokenize", "--tokenizer", tok_dir, "--dataset", data,
                                              "--render", "--bench"], capture_output=True, text=True)
                if p.returncode != 0:
                    sys.exit(f"{name}: keel exited {p.returncode}: {p.stderr.strip()}")
                r = json.loads(p.stdout.strip().splitlines()[-1])
                best_keel, n_keel = min(best_keel, r["seconds"]), r["conversations"]
            if n_keel != len(convs):
                sys.exit(f"{name}: keel rendered {n_keel} conversations, expected {len(convs)}")

            rate_hf, rate_j2, rate_keel = len(convs) / best_hf, len(convs) / best_j2, len(convs) / best_keel
            ratios.append(rate_keel / rate_hf)
            print(f"\n{name} ({out_mb:.2f} MB rendered)")
            print(f"  transformers apply_chat_template: {rate_hf:10.0f} conversations/s")
            print(f"  jinja2 Template.render alone:     {rate_j2:10.0f} conversations/s")
            print(f"  keel:                             {rate_keel:10.0f} conversations/s")
            print(f"  ratio keel / apply_chat_template: {rate_keel / rate_hf:.1f}x (keel / jinja2 alone: "
                  f"{rate_keel / rate_j2:.1f}x); goal >= 10x: {'met' if rate_keel / rate_hf >= 10 else 'not met'}")
        print(f"\nlowest ratio: {min(ratios):.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
